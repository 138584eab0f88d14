package io.syncline.cli;

import io.syncline.node.config.ConfigDocs;
import picocli.CommandLine.Command;

/** {@code syncline config-keys}: prints the configuration key table used in docs/configuration.md. */
@Command(name = "config-keys", mixinStandardHelpOptions = true, description = "Print every configuration key as a Markdown table.")
final class ConfigDocsCommand implements Runnable {
    @Override
    public void run() {
        System.out.print(ConfigDocs.keyTable());
    }
}
