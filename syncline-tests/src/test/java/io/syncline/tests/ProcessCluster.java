package io.syncline.tests;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * Starts hubs and sites as separate JVMs for one test and cleans up after it. Register per test:
 * {@code @RegisterExtension final ProcessCluster cluster = new ProcessCluster();}. Configuration files and
 * logs live in a temporary directory; when the test fails, the tail of every node's log is printed and the
 * directory is kept, otherwise it is deleted.
 *
 * <pre>
 * NodeProcess hub = cluster.hub("hub", hubDb, ProcessCluster.ITEM_CHANNEL).startAndAwait();
 * NodeProcess s1 = cluster.site("s1", s1Db, hub, "").startAndAwait();
 * hub.kill(); hub.startAndAwait();
 * </pre>
 */
public final class ProcessCluster implements BeforeEachCallback, AfterEachCallback, TestExecutionExceptionHandler {
    /** Enrollment token of every hub started here. */
    public static final String TOKEN = "it-enrollment-token";
    /** A channel with table {@code item} aggregated at the hub by {@code site_id}. */
    public static final String ITEM_CHANNEL = """
            channels:
              - name: items
                tables: [{name: item, hubColumn: site_id}]
            """;

    private final List<NodeProcess> nodes = new ArrayList<>();
    private Path dir;
    private boolean failed;

    @Override
    public void beforeEach(ExtensionContext context) throws IOException {
        dir = Files.createTempDirectory("syncline-it-" + context.getRequiredTestMethod().getName() + "-");
    }

    /** The test's temporary directory (configuration files, logs, heap dumps). */
    public Path dir() {
        return dir;
    }

    /**
     * A hub (not started) on a fixed free port, so sites reach it again after a restart. {@code yaml} is added to
     * the generated configuration (channels, sites, sync, transport ...).
     */
    public NodeProcess hub(String id, String databaseUrl, String yaml, String... jvmOptions) {
        int port = PgServer.freePort();
        String cfg = """
                node: {id: %s}
                database: {url: "%s", poolSize: 6}
                http: {host: 127.0.0.1, port: %d}
                enrollment: {token: %s}
                sync: {interval: 200ms}
                """.formatted(id, databaseUrl, port, TOKEN) + yaml;
        NodeProcess p = node("hub", id, cfg, jvmOptions);
        p.hubUrlHint = "http://127.0.0.1:" + port;
        return p;
    }

    /**
     * A site (not started) of {@code hub} with its listener on a fixed free port, unless {@code yaml} has its own
     * {@code http:} line; {@code yaml} is added to its configuration.
     */
    public NodeProcess site(String id, String databaseUrl, NodeProcess hub, String yaml, String... jvmOptions) {
        return site(id, databaseUrl, hub.hubUrlHint, yaml, jvmOptions);
    }

    /** A site (not started) that reaches its hub at {@code hubUrl} (a proxy in front of the hub, say). */
    public NodeProcess site(String id, String databaseUrl, String hubUrl, String yaml, String... jvmOptions) {
        String http = yaml.lines().anyMatch(l -> l.startsWith("http:")) ? "" : "http: {host: 127.0.0.1, port: " + PgServer.freePort() + "}\n";
        String cfg = """
                node: {id: %s}
                database: {url: "%s", poolSize: 4}
                hub: {url: "%s", token: %s}
                capture: {interval: 100ms}
                """.formatted(id, databaseUrl, hubUrl, TOKEN) + http + yaml;
        return node("site", id, cfg, jvmOptions);
    }

    private NodeProcess node(String role, String id, String cfg, String... jvmOptions) {
        if (dir == null) {
            throw new IllegalStateException("ProcessCluster must be registered with @RegisterExtension");
        }
        Path config = dir.resolve(role + "-" + id + ".yaml");
        try {
            Files.writeString(config, cfg);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        List<String> opts = new ArrayList<>(Arrays.asList(jvmOptions));
        if (opts.stream().noneMatch(o -> o.startsWith("-Xmx"))) {
            opts.add("-Xmx384m");
        }
        opts.add("-XX:+UseSerialGC");
        NodeProcess p = new NodeProcess(role, id, config, dir.resolve(role + "-" + id + ".log"), opts);
        nodes.add(p);
        return p;
    }

    /** The port a hub made here listens on. */
    public static int hubPort(NodeProcess hub) {
        return java.net.URI.create(hub.hubUrlHint).getPort();
    }

    /** The tails of every node's log. */
    public String tails(int lines) {
        StringBuilder sb = new StringBuilder();
        for (NodeProcess n : nodes) {
            sb.append(n.tail(lines));
        }
        return sb.toString();
    }

    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        failed = true;
        System.err.println("Test " + context.getDisplayName() + " failed; node logs are in " + dir);
        System.err.println(tails(80));
        throw throwable;
    }

    @Override
    public void afterEach(ExtensionContext context) throws IOException {
        for (NodeProcess n : nodes) {
            n.kill();
        }
        if (!failed && context.getExecutionException().isEmpty() && dir != null) {
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        } else if (dir != null) {
            System.err.println("kept node logs of " + context.getDisplayName() + " in " + dir);
        }
    }
}
