package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Orders and their lines, with foreign keys at the target, listed in the channel child first: loads, reloads and
 * batches are written so that the keys hold (H2; PostgresClusterTest does the same on PostgreSQL).
 */
class ReferencesTest {
    static final String ORDERS = "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(50))";
    static final String LINES = "CREATE TABLE order_line (id INT PRIMARY KEY, order_id INT NOT NULL REFERENCES orders (id), "
            + "item VARCHAR(50))";

    @TempDir
    Path dir;

    private String url(String name) {
        return new H2Files(dir).url(name);
    }

    private void exec(String db, String... sql) throws SQLException {
        new H2Files(dir).exec(db, sql);
    }

    private boolean same(String a, String b, String table) throws SQLException {
        try (Connection x = DriverManager.getConnection(url(a)); Connection y = DriverManager.getConnection(url(b))) {
            return TableChecksum.of(x, new H2Dialect(), table).equals(TableChecksum.of(y, new H2Dialect(), table));
        }
    }

    private NodeConfig site(String id, String hubUrl) {
        return NodeConfig.parse("""
                node: {id: %s}
                database: {url: "%s"}
                hub: {url: "%s", token: tok}
                capture: {interval: 100ms}
                load: {chunkSize: 7}
                """.formatted(id, url(id), hubUrl), Role.SITE, Map.of());
    }

    @Test
    void shouldKeepForeignKeysAtTheSitesThroughReloadsAndBatchesFromTheHub() throws Exception {
        exec("hq", ORDERS, LINES);
        exec("hq", "INSERT INTO orders SELECT x, 'customer ' || x FROM system_range(1, 20)",
                "INSERT INTO order_line SELECT x, 1 + MOD(x, 20), 'item ' || x FROM system_range(1, 60)");
        exec("s1", ORDERS, LINES);
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s"}
                enrollment: {token: tok}
                sync: {interval: 100ms}
                capture: {interval: 100ms}
                channels:
                  - name: orders
                    direction: hub-to-sites
                    tables: [{name: order_line}, {name: orders}]
                """.formatted(url("hq")), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC()); SiteNode s1 = SiteNode.start(site("s1", hub.url()), Clock.systemUTC())) {
            await().atMost(Duration.ofSeconds(30)).until(() -> same("hq", "s1", "orders") && same("hq", "s1", "order_line"));
            // One transaction: a new order with its lines, lines moved to it, an old order and its lines removed.
            try (Connection c = DriverManager.getConnection(url("hq")); Statement s = c.createStatement()) {
                c.setAutoCommit(false);
                s.execute("INSERT INTO orders VALUES (100, 'new customer')");
                s.execute("INSERT INTO order_line VALUES (1000, 100, 'first'), (1001, 100, 'second')");
                s.execute("UPDATE order_line SET order_id = 100 WHERE order_id = 2");
                s.execute("DELETE FROM order_line WHERE order_id = 3");
                s.execute("DELETE FROM orders WHERE id = 3");
                c.commit();
            }
            await().atMost(Duration.ofSeconds(30)).until(() -> same("hq", "s1", "orders") && same("hq", "s1", "order_line"));
            assertThat(s1.status().node()).isEqualTo("s1");
        }
    }

    @Test
    void shouldLoadReferencedTablesFirstWhenASiteJoinsWithData() throws Exception {
        exec("hub", "CREATE TABLE orders (site_id VARCHAR(64), id INT, customer VARCHAR(50), PRIMARY KEY (site_id, id))",
                "CREATE TABLE order_line (site_id VARCHAR(64), id INT, order_id INT NOT NULL, item VARCHAR(50), PRIMARY KEY (site_id, id), "
                        + "FOREIGN KEY (site_id, order_id) REFERENCES orders (site_id, id))");
        exec("s2", ORDERS, LINES);
        exec("s2", "INSERT INTO orders SELECT x, 'customer ' || x FROM system_range(1, 30)",
                "INSERT INTO order_line SELECT x, 1 + MOD(x, 30), 'item ' || x FROM system_range(1, 90)");
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hub}
                database: {url: "%s"}
                enrollment: {token: tok}
                sync: {interval: 100ms}
                channels:
                  - name: orders
                    tables: [{name: order_line, hubColumn: site_id}, {name: orders, hubColumn: site_id}]
                """.formatted(url("hub")), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC()); SiteNode s2 = SiteNode.start(site("s2", hub.url()), Clock.systemUTC())) {
            await().atMost(Duration.ofSeconds(30)).until(s2::isDrained);
            try (Connection h = DriverManager.getConnection(url("hub")); Connection s = DriverManager.getConnection(url("s2"))) {
                assertThat(TableChecksum.of(h, new H2Dialect(), "order_line", "site_id", "s2"))
                        .isEqualTo(TableChecksum.of(s, new H2Dialect(), "order_line"));
                assertThat(TableChecksum.of(h, new H2Dialect(), "orders", "site_id", "s2")).isEqualTo(TableChecksum.of(s, new H2Dialect(), "orders"));
            }
            assertThat(hub.status().sites()).allSatisfy(st -> assertThat(st.lastError()).isNull());
        }
    }
}
