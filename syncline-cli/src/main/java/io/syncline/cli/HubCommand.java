package io.syncline.cli;

import io.syncline.node.HubNode;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.nio.file.Path;
import java.time.Clock;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code syncline hub --config hub.yaml}. */
@Command(name = "hub", mixinStandardHelpOptions = true, description = "Run the hub: registers sites and applies their changes.")
final class HubCommand implements Callable<Integer> {
    @Option(names = {"-c", "--config"}, required = true, description = "YAML configuration file (see docs/configuration.md).")
    Path config;

    @Override
    public Integer call() {
        NodeConfig cfg = NodeConfig.load(config, Role.HUB, System.getenv());
        HubNode hub = HubNode.start(cfg, Clock.systemUTC());
        System.out.println("hub " + cfg.nodeId() + " listening on " + hub.url());
        return NodeRunner.runUntilStopped(hub);
    }
}
