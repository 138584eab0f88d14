package io.syncline.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import io.syncline.node.config.NodeConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code syncline demo}: a hub and 46 sites in one process on embedded H2 databases. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run a hub and many sites in this process on embedded H2 databases, with a product-management workload "
                + "at every site; at the end compare every site with the hub and exit 0 only if all match.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--sites", defaultValue = "46", description = "Number of sites (default: ${DEFAULT-VALUE}).")
    int sites;

    @Option(names = "--duration", defaultValue = "60s", description = "How long the workload runs (default: ${DEFAULT-VALUE}).")
    String duration;

    @Option(names = "--rate", defaultValue = "5", description = "Transactions per second at each site (default: ${DEFAULT-VALUE}).")
    int rate;

    @Option(names = "--dir", description = "Folder for the databases (default: a new temporary folder, deleted at the end).")
    Path dir;

    @Option(names = "--verbose", description = "Log at INFO level instead of WARN.")
    boolean verbose;

    @Override
    public Integer call() throws Exception {
        if (!verbose) {
            ((Logger) LoggerFactory.getLogger("io.syncline")).setLevel(Level.WARN);
        }
        if (sites < 1 || sites > 500) {
            System.err.println("--sites must be between 1 and 500, was " + sites);
            return 2;
        }
        boolean temporary = dir == null;
        Path root = temporary ? Files.createTempDirectory("syncline-demo-") : Files.createDirectories(dir);
        try {
            return new Demo(root, sites, NodeConfig.parseDuration(duration), Math.max(1, rate), System.out).run() ? 0 : 1;
        } finally {
            if (temporary) {
                Demo.deleteTree(root);
            }
        }
    }
}
