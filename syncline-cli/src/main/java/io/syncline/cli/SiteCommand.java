package io.syncline.cli;

import io.syncline.node.SiteNode;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.nio.file.Path;
import java.time.Clock;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code syncline site --config site.yaml}. */
@Command(name = "site", mixinStandardHelpOptions = true, description = "Run a site: captures local changes and delivers them to the hub.")
final class SiteCommand implements Callable<Integer> {
    @Option(names = {"-c", "--config"}, required = true, description = "YAML configuration file (see docs/configuration.md).")
    Path config;

    @Override
    public Integer call() {
        NodeConfig cfg = NodeConfig.load(config, Role.SITE, System.getenv());
        SiteNode site = SiteNode.start(cfg, Clock.systemUTC());
        System.out.println("site " + cfg.nodeId() + " started; listener " + site.listenerUrl());
        return NodeRunner.runUntilStopped(site);
    }
}
