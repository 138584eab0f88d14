package io.syncline.cli;

import io.syncline.api.SyncException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code syncline} command. */
@Command(name = "syncline", mixinStandardHelpOptions = true, version = "syncline 0.1.0",
        description = "Data synchronization between a hub and its sites.",
        subcommands = {HubCommand.class, SiteCommand.class, StatusCommand.class, ConflictsCommand.class, DemoCommand.class, ConfigDocsCommand.class})
public final class Main implements Runnable {
    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (for tests). */
    public static int run(String... args) {
        return new CommandLine(new Main())
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setExecutionExceptionHandler((e, cmd, parsed) -> {
                    if (e instanceof SyncException) {
                        // Expected failures (bad configuration, unreachable database) get their message, not a stack trace.
                        cmd.getErr().println("syncline " + cmd.getCommandName() + ": " + e.getMessage());
                        return 2;
                    }
                    throw e;
                })
                .execute(args);
    }

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }
}
