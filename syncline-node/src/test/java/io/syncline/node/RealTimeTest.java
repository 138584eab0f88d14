package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real time: with capture and exchange intervals of a minute, a commit still reaches the other side within seconds,
 * because the database reports it (PostgreSQL LISTEN/NOTIFY, the H2 trigger in-process), the site pushes at once and
 * the hub answers a waiting fetch (long poll) as soon as it seals.
 */
class RealTimeTest {
    /** Far below the one-minute intervals: only the real-time path can deliver in time. */
    private static final Duration PROMPTLY = Duration.ofSeconds(10);
    private static EmbeddedPostgres pg;

    @TempDir
    Path dir;

    @BeforeAll
    static void startPostgres() throws Exception {
        pg = EmbeddedPostgres.builder().start();
        for (String db : new String[] {"rt_hq", "rt_s1"}) {
            try (Connection c = DriverManager.getConnection(pg.getJdbcUrl("postgres", "postgres")); Statement s = c.createStatement()) {
                s.execute("CREATE DATABASE " + db);
            }
        }
    }

    @AfterAll
    static void stopPostgres() throws Exception {
        pg.close();
    }

    @Test
    void shouldCarryCommitsBothWaysWithinSecondsOnH2() throws Exception {
        H2Files h2 = new H2Files(dir);
        shouldCarryCommitsBothWays(h2.url("hq"), h2.url("s1"), "");
    }

    @Test
    void shouldCarryCommitsBothWaysWithinSecondsOnPostgres() throws Exception {
        shouldCarryCommitsBothWays(pg.getJdbcUrl("postgres", "rt_hq"), pg.getJdbcUrl("postgres", "rt_s1"), "user: postgres");
    }

    private void shouldCarryCommitsBothWays(String hubUrl, String siteUrl, String user) throws Exception {
        for (String url : new String[] {hubUrl, siteUrl}) {
            exec(url, "CREATE TABLE sale (id INT PRIMARY KEY, qty INT)", "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(50))");
        }
        exec(siteUrl, "INSERT INTO sale VALUES (1, 1)");
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s", %s}
                enrollment: {token: secret-token}
                sync: {interval: 1m}
                capture: {interval: 1m}
                channels:
                  - {name: sales, tables: [{name: sale}]}
                  - {name: catalog, direction: hub-to-sites, tables: [{name: product}]}
                """.formatted(hubUrl, user), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
             SiteNode site = SiteNode.start(NodeConfig.parse("""
                     node: {id: s1}
                     database: {url: "%s", %s}
                     hub: {url: "%s", token: secret-token}
                     capture: {interval: 1m}
                     """.formatted(siteUrl, user, hub.url()), Role.SITE, Map.of()), Clock.systemUTC())) {
            // The first tick loads and pushes what the site held; its first fetch takes the catalog's copy.
            await().atMost(Duration.ofSeconds(30)).until(() -> count(hubUrl, "SELECT count(*) FROM sale") == 1);

            for (int i = 2; i <= 4; i++) {
                exec(siteUrl, "INSERT INTO sale VALUES (" + i + ", " + i + ")");
                int n = i;
                await().atMost(PROMPTLY).until(() -> count(hubUrl, "SELECT count(*) FROM sale") == n);

                exec(hubUrl, "INSERT INTO product VALUES (" + i + ", 'p" + i + "')");
                await().atMost(PROMPTLY).until(() -> count(siteUrl, "SELECT count(*) FROM product") == n - 1);
            }
            exec(siteUrl, "UPDATE sale SET qty = 40 WHERE id = 4");
            await().atMost(PROMPTLY).until(() -> count(hubUrl, "SELECT qty FROM sale WHERE id = 4") == 40);
            assertThat(count(siteUrl, "SELECT count(*) FROM product WHERE name = 'p4'")).isEqualTo(1);
        }
    }

    @Test
    void shouldHoldAScheduledChannelUntilItIsDueWhileARealTimeOneFlows() throws Exception {
        H2Files h2 = new H2Files(dir);
        String hubUrl = h2.url("sched_hq");
        String siteUrl = h2.url("sched_s1");
        String pulledUrl = h2.url("sched_s2");
        for (String url : new String[] {hubUrl, siteUrl, pulledUrl}) {
            exec(url, "CREATE TABLE sale (id INT PRIMARY KEY, qty INT)", "CREATE TABLE stock (id INT PRIMARY KEY, qty INT)",
                    "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(50))");
        }
        // Once a year, at midnight on the first of January: never during this test, unless asked.
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s"}
                enrollment: {token: secret-token}
                sync: {interval: 100ms}
                capture: {interval: 100ms}
                sites:
                  s2: {mode: pull, interval: 100ms}
                channels:
                  - {name: sales, tables: [{name: sale}]}
                  - {name: stock, schedule: "0 0 1 1 *", tables: [{name: stock}]}
                  - {name: catalog, direction: hub-to-sites, schedule: "0 0 1 1 *", tables: [{name: product}]}
                """.formatted(hubUrl), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
             SiteNode site = SiteNode.start(NodeConfig.parse("""
                     node: {id: s1}
                     database: {url: "%s"}
                     hub: {url: "%s", token: secret-token}
                     capture: {interval: 100ms}
                     """.formatted(siteUrl, hub.url()), Role.SITE, Map.of()), Clock.systemUTC());
             SiteNode pulled = SiteNode.start(NodeConfig.parse("""
                     node: {id: s2}
                     database: {url: "%s"}
                     hub: {url: "%s", token: secret-token}
                     capture: {interval: 100ms}
                     """.formatted(pulledUrl, hub.url()), Role.SITE, Map.of()), Clock.systemUTC())) {
            exec(siteUrl, "INSERT INTO stock VALUES (1, 10)", "INSERT INTO sale VALUES (1, 1)");
            exec(pulledUrl, "INSERT INTO stock VALUES (2, 20)", "INSERT INTO sale VALUES (2, 2)");
            exec(hubUrl, "INSERT INTO product VALUES (1, 'p1')");
            await().atMost(PROMPTLY).until(() -> count(hubUrl, "SELECT count(*) FROM sale") == 2);
            // The scheduled channels wait for their time, both ways and in pull mode, while the real-time one is delivered.
            await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(5)).until(() ->
                    count(hubUrl, "SELECT count(*) FROM stock") == 0 && count(siteUrl, "SELECT count(*) FROM product") == 0);
            site.syncNow(); // runs every schedule at once
            hub.syncNow();
            await().atMost(PROMPTLY).until(() -> count(hubUrl, "SELECT count(*) FROM stock") == 2
                    && count(siteUrl, "SELECT count(*) FROM product") == 1);
        }
    }

    @Test
    void shouldPullARealTimeChannelAsSoonAsAPullModeSiteSealsIt() throws Exception {
        H2Files h2 = new H2Files(dir);
        String hubUrl = h2.url("poke_hq");
        String siteUrl = h2.url("poke_s1");
        for (String url : new String[] {hubUrl, siteUrl}) {
            exec(url, "CREATE TABLE sale (id INT PRIMARY KEY, qty INT)");
        }
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s"}
                enrollment: {token: secret-token}
                sites:
                  s1: {mode: pull, interval: 1m}
                capture: {interval: 1m}
                channels:
                  - {name: sales, tables: [{name: sale}]}
                """.formatted(hubUrl), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
             SiteNode site = SiteNode.start(NodeConfig.parse("""
                     node: {id: s1}
                     database: {url: "%s"}
                     hub: {url: "%s", token: secret-token}
                     capture: {interval: 1m}
                     """.formatted(siteUrl, hub.url()), Role.SITE, Map.of()), Clock.systemUTC())) {
            // The hub pulls every minute; the site's poke makes it pull each commit within seconds.
            for (int i = 1; i <= 3; i++) {
                exec(siteUrl, "INSERT INTO sale VALUES (" + i + ", " + i + ")");
                int n = i;
                await().atMost(PROMPTLY).until(() -> count(hubUrl, "SELECT count(*) FROM sale") == n);
            }
        }
    }

    private static Connection connect(String url) throws SQLException {
        return url.startsWith("jdbc:h2:") ? DriverManager.getConnection(url) : DriverManager.getConnection(url, "postgres", "");
    }

    private static void exec(String url, String... sql) throws SQLException {
        try (Connection c = connect(url); Statement s = c.createStatement()) {
            for (String q : sql) {
                s.execute(q);
            }
        }
    }

    private static long count(String url, String sql) throws SQLException {
        try (Connection c = connect(url); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }
}
