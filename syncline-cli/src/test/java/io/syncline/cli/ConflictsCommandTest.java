package io.syncline.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.node.HubNode;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code syncline conflicts}: lists a hub's conflicts and settles an open one through the admin API. */
class ConflictsCommandTest {
    private static Map<String, Object> row(int id, String name) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("name", name);
        return m;
    }

    /** Runs the command with stdout and stderr captured; returns exit code and output. */
    private static Map.Entry<Integer, String> run(String... args) {
        PrintStream out = System.out;
        PrintStream err = System.err;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (PrintStream capture = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
            System.setOut(capture);
            System.setErr(capture);
            int code = Main.run(args);
            return Map.entry(code, bytes.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(out);
            System.setErr(err);
        }
    }

    @Test
    void shouldListConflictsAndSettleAnOpenOne(@TempDir Path dir) throws Exception {
        String url = "jdbc:h2:" + dir.resolve("hq").toAbsolutePath();
        try (Connection c = DriverManager.getConnection(url); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(50))");
        }
        NodeConfig cfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s"}
                enrollment: {token: cli-token}
                channels:
                  - name: stock
                    direction: two-way
                    conflict: {policy: manual}
                    tables: [{name: item}]
                """.formatted(url), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(cfg, Clock.systemUTC()); Connection c = DriverManager.getConnection(url)) {
            c.setAutoCommit(false);
            // Site b's insert, then site c's update of the version before it: one open conflict, c winning for now.
            BatchApplier applier = new BatchApplier(new H2Dialect(), Clock.systemUTC());
            TwoWay twoWay = new TwoWay("hq", new HybridClock(Clock.systemUTC()));
            var channel = cfg.channels().getFirst();
            applier.applyTwoWay(c, new BatchHeader(new BatchId("b", "stock", 1), Instant.now(), null, 100), channel,
                    List.<Change>of(new Change.Insert("item", row(1, "b's"))).iterator(), twoWay);
            applier.applyTwoWay(c, new BatchHeader(new BatchId("c", "stock", 1), Instant.now(), null, 200), channel,
                    List.<Change>of(new Change.Insert("item", row(1, "c's"))).iterator(), twoWay);

            var listed = run("conflicts", "--hub", hub.url(), "--token", "cli-token", "--open");
            assertThat(listed.getKey()).as(listed.getValue()).isZero();
            assertThat(listed.getValue()).contains("INSERT_EXISTS", "manual", "open", "{\"id\":1}");
            String id = listed.getValue().lines().skip(1).findFirst().orElseThrow().split("\\s+")[0];

            var wrong = run("conflicts", "--hub", hub.url(), "--token", "cli-token", "--settle", id);
            assertThat(wrong.getKey()).isEqualTo(2);
            assertThat(wrong.getValue()).contains("--settle needs exactly one of --take site|hub or --row JSON");
            var badToken = run("conflicts", "--hub", hub.url(), "--token", "nope");
            assertThat(badToken.getKey()).isEqualTo(2);
            assertThat(badToken.getValue()).contains("401");

            var settled = run("conflicts", "--hub", hub.url(), "--token", "cli-token", "--settle", id, "--take", "hub", "--by", "alice");
            assertThat(settled.getKey()).as(settled.getValue()).isZero();
            assertThat(settled.getValue()).contains("settled by alice", "b's");
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT name FROM item WHERE id = 1")) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getString(1)).isEqualTo("b's");
            }
            var again = run("conflicts", "--hub", hub.url(), "--token", "cli-token", "--settle", id, "--take", "site");
            assertThat(again.getKey()).isEqualTo(2);
            assertThat(again.getValue()).contains("409", "not open");
            assertThat(hub.status().openConflicts()).isZero();
        }
    }
}
