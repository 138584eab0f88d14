package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.dialect.postgres.PostgresDialect;
import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.math.BigDecimal;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A hub and three sites, each on its own real PostgreSQL database, over real HTTP: two push sites and one pull
 * site, overlapping keys folded into one hub table, existing rows at registration, every change kind and every
 * value type of the canonical format.
 */
class PostgresClusterTest {
    private static final String TYPES_TABLE = """
            CREATE TABLE item (
              id BIGINT PRIMARY KEY, small SMALLINT, num INT, amount NUMERIC(30,10), price NUMERIC(12,2), label TEXT,
              note VARCHAR(50), flag BOOLEAN, day DATE, at_time TIME, local_ts TIMESTAMP, zoned_ts TIMESTAMPTZ, blob BYTEA,
              uid UUID, doc JSONB, raw JSON)""";
    private static EmbeddedPostgres pg;

    @BeforeAll
    static void startPostgres() throws Exception {
        pg = EmbeddedPostgres.builder().start();
        for (String db : List.of("hq", "s1", "s2", "s3", "alt_hq", "alt_s", "dist_hq", "dist_a", "ref_hq", "ref_s")) {
            exec("postgres", "CREATE DATABASE " + db);
        }
    }

    @AfterAll
    static void stopPostgres() throws Exception {
        pg.close();
    }

    private static String url(String db) {
        return pg.getJdbcUrl("postgres", db);
    }

    private static void exec(String db, String... sql) throws SQLException {
        try (Connection c = DriverManager.getConnection(url(db)); Statement s = c.createStatement()) {
            for (String q : sql) {
                s.execute(q);
            }
        }
    }

    @Test
    void shouldConvergeThreeSitesIntoOneHubTableWithEveryTypeAndChangeKind() throws Exception {
        exec("hq", TYPES_TABLE.replace("id BIGINT PRIMARY KEY,", "site_id VARCHAR(64) NOT NULL, id BIGINT NOT NULL,")
                .replace("raw JSON)", "raw JSON, PRIMARY KEY (site_id, id))"));
        for (String s : List.of("s1", "s2", "s3")) {
            exec(s, TYPES_TABLE);
        }
        // s1 already holds data when it registers: it must arrive through the initial load.
        try (Connection c = DriverManager.getConnection(url("s1"))) {
            insertRows(c, 1, 3000);
        }
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s", user: postgres}
                enrollment: {token: tok}
                sync: {interval: 200ms}
                sites: {s3: {mode: pull, interval: 200ms}}
                channels:
                  - name: items
                    tables: [{name: item, hubColumn: site_id}]
                """.formatted(url("hq")), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC())) {
            List<SiteNode> sites = new ArrayList<>();
            for (String s : List.of("s1", "s2", "s3")) {
                sites.add(SiteNode.start(NodeConfig.parse("""
                        node: {id: %s}
                        database: {url: "%s", user: postgres, poolSize: 3}
                        hub: {url: "%s", token: tok}
                        capture: {interval: 100ms}
                        load: {chunkSize: 700}
                        """.formatted(s, url(s), hub.url()), Role.SITE, Map.of()), Clock.systemUTC()));
            }
            try {
                for (String s : List.of("s1", "s2", "s3")) {
                    try (Connection c = DriverManager.getConnection(url(s))) {
                        c.setAutoCommit(false);
                        insertRows(c, 5001, 5200); // the same keys at every site: folded by site_id at the hub
                        c.commit();
                        try (Statement st = c.createStatement()) {
                            st.executeUpdate("UPDATE item SET price = price * 2, label = label || ' ✓', doc = jsonb_set(doc, '{n}', '99') "
                                    + "WHERE id % 3 = 0");
                            st.executeUpdate("DELETE FROM item WHERE id % 7 = 0");
                            st.executeUpdate("UPDATE item SET id = id + 100000 WHERE id % 11 = 0");       // primary-key changes
                            st.executeUpdate("UPDATE item SET note = '' WHERE id % 13 = 0");              // empty string, not NULL
                            st.executeUpdate("UPDATE item SET note = NULL, blob = NULL WHERE id % 17 = 0");
                            st.executeUpdate("INSERT INTO item (id, label) VALUES (99, 'deleted then re-inserted')");
                            st.executeUpdate("DELETE FROM item WHERE id = 99");
                            st.executeUpdate("INSERT INTO item (id, label) VALUES (99, 'back again')");
                        }
                        c.commit();
                    }
                }
                await().atMost(Duration.ofSeconds(60)).until(() -> sites.stream().allMatch(SiteNode::isDrained));
                try (Connection h = DriverManager.getConnection(url("hq"))) {
                    for (String s : List.of("s1", "s2", "s3")) {
                        try (Connection c = DriverManager.getConnection(url(s))) {
                            TableChecksum.Result atSite = TableChecksum.of(c, new PostgresDialect(), "item");
                            TableChecksum.Result atHub = TableChecksum.of(h, new PostgresDialect(), "item", "site_id", s);
                            assertThat(atHub).as("site %s", s).isEqualTo(atSite);
                        }
                    }
                    assertThat(count(h, "SELECT count(*) FROM item WHERE site_id = 's1' AND id <= 3000")).as("rows that existed before registration (less deletions and key changes)").isGreaterThan(2000);
                    assertThat(count(h, "SELECT count(*) FROM item WHERE id = 5001")).as("overlapping key at three sites").isEqualTo(3);
                    try (PreparedStatement ps = h.prepareStatement("SELECT amount, note, zoned_ts FROM item WHERE site_id = 's2' AND id = 5018");
                         ResultSet rs = ps.executeQuery()) {
                        assertThat(rs.next()).isTrue();
                        assertThat(rs.getBigDecimal(1)).isEqualByComparingTo(new BigDecimal("12345678901234567890.0123456789").add(BigDecimal.valueOf(5018)));
                        assertThat(rs.getString(2)).isEmpty();
                    }
                }
                assertThat(hub.status().sites()).allSatisfy(st -> {
                    assertThat(st.state()).isEqualTo("ONLINE");
                    assertThat(st.pendingChanges()).isZero();
                });
            } finally {
                for (SiteNode s : sites) {
                    s.close();
                }
            }
        }
    }

    @Test
    void shouldDistributeHubTablesWithEveryTypeAndMoveFilteredRowsBetweenAPostgresAndAnH2Site(@TempDir Path dir) throws Exception {
        String offer = "CREATE TABLE offer (id INT PRIMARY KEY, region VARCHAR(20), amount NUMERIC(10,2))";
        exec("dist_hq", TYPES_TABLE, offer,
                "INSERT INTO offer SELECT g, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END, g FROM generate_series(1, 200) g");
        try (Connection c = DriverManager.getConnection(url("dist_hq"))) {
            insertRows(c, 1, 500); // present before any site: they arrive by reload
        }
        exec("dist_a", TYPES_TABLE, offer);
        String h2 = "jdbc:h2:" + dir.resolve("dist_b").toAbsolutePath() + ";DB_CLOSE_DELAY=0";
        try (Connection c = DriverManager.getConnection(h2); Statement st = c.createStatement()) {
            st.execute(offer);
        }
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s", user: postgres}
                enrollment: {token: tok}
                sync: {interval: 100ms}
                capture: {interval: 100ms}
                sites:
                  dist_a: {attributes: {region: north, engine: postgres}}
                  dist_b: {attributes: {region: south}}
                channels:
                  - name: catalog
                    direction: hub-to-sites
                    sites: "engine = 'postgres'"
                    tables: [{name: item}]
                  - name: offers
                    direction: hub-to-sites
                    tables: [{name: offer, filter: "region = :site.region"}]
                """.formatted(url("dist_hq")), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
             SiteNode a = SiteNode.start(NodeConfig.parse("""
                     node: {id: dist_a}
                     database: {url: "%s", user: postgres, poolSize: 3}
                     hub: {url: "%s", token: tok}
                     capture: {interval: 100ms}
                     """.formatted(url("dist_a"), hub.url()), Role.SITE, Map.of()), Clock.systemUTC());
             SiteNode b = SiteNode.start(NodeConfig.parse("""
                     node: {id: dist_b}
                     database: {url: "%s"}
                     hub: {url: "%s", token: tok}
                     capture: {interval: 100ms}
                     """.formatted(h2, hub.url()), Role.SITE, Map.of()), Clock.systemUTC())) {
            await().atMost(Duration.ofSeconds(60)).until(() -> distributed(h2)); // both sites loaded; what follows goes as batches
            try (Connection c = DriverManager.getConnection(url("dist_hq"))) {
                c.setAutoCommit(false);
                insertRows(c, 1001, 1200);
                try (Statement st = c.createStatement()) {
                    st.executeUpdate("UPDATE item SET price = price * 2, label = label || ' ✓', doc = jsonb_set(doc, '{n}', '99') WHERE id % 3 = 0");
                    st.executeUpdate("DELETE FROM item WHERE id % 7 = 0");
                    st.executeUpdate("UPDATE item SET id = id + 100000 WHERE id % 11 = 0");
                    st.executeUpdate("UPDATE item SET note = '', blob = NULL WHERE id % 13 = 0");
                    st.executeUpdate("UPDATE offer SET region = 'north' WHERE id % 5 = 1");      // south to north: from b to a
                    st.executeUpdate("UPDATE offer SET region = 'south' WHERE id % 10 = 4");     // north to south: from a to b
                    st.executeUpdate("UPDATE offer SET amount = amount + 0.5 WHERE id % 3 = 0"); // stays where it is
                    st.executeUpdate("DELETE FROM offer WHERE id % 7 = 0");
                    st.executeUpdate("UPDATE offer SET id = id + 1000 WHERE id % 11 = 0");       // key changes
                }
                c.commit();
            }
            await().atMost(Duration.ofSeconds(60)).until(() -> distributed(h2));
            assertThat(countIn("dist_a", "SELECT count(*) FROM item")).as("700 inserted, less the deleted").isEqualTo(600);
            assertThat(countIn("dist_a", "SELECT count(*) FROM offer WHERE id = 11")).as("moved north, then re-keyed").isZero();
            assertThat(countIn("dist_a", "SELECT count(*) FROM offer WHERE id = 1011")).as("moved north, then re-keyed").isEqualTo(1);
        }
    }

    @Test
    void shouldKeepForeignKeysAtASiteThroughAReloadAndBatchesFromTheHub() throws Exception {
        for (String db : List.of("ref_hq", "ref_s")) {
            exec(db, ReferencesTest.ORDERS, ReferencesTest.LINES);
        }
        exec("ref_hq", "INSERT INTO orders SELECT g, 'customer ' || g FROM generate_series(1, 50) g",
                "INSERT INTO order_line SELECT g, 1 + g % 50, 'item ' || g FROM generate_series(1, 200) g");
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s", user: postgres}
                enrollment: {token: tok}
                sync: {interval: 100ms}
                capture: {interval: 100ms}
                channels:
                  - name: orders
                    direction: hub-to-sites
                    tables: [{name: order_line}, {name: orders}]
                """.formatted(url("ref_hq")), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
             SiteNode site = SiteNode.start(NodeConfig.parse("""
                     node: {id: ref_s}
                     database: {url: "%s", user: postgres, poolSize: 3}
                     hub: {url: "%s", token: tok}
                     capture: {interval: 100ms}
                     """.formatted(url("ref_s"), hub.url()), Role.SITE, Map.of()), Clock.systemUTC())) {
            await().atMost(Duration.ofSeconds(60)).until(() -> sameTables("ref_hq", "ref_s", "orders", "order_line"));
            try (Connection c = DriverManager.getConnection(url("ref_hq")); Statement st = c.createStatement()) {
                c.setAutoCommit(false);
                st.execute("INSERT INTO orders VALUES (100, 'new customer')");
                st.execute("INSERT INTO order_line VALUES (1000, 100, 'first'), (1001, 100, 'second')");
                st.execute("UPDATE order_line SET order_id = 100 WHERE order_id = 2");
                st.execute("DELETE FROM order_line WHERE order_id = 3");
                st.execute("DELETE FROM orders WHERE id = 3");
                c.commit();
            }
            await().atMost(Duration.ofSeconds(60)).until(() -> sameTables("ref_hq", "ref_s", "orders", "order_line"));
            assertThat(countIn("ref_s", "SELECT count(*) FROM order_line WHERE order_id = 100")).isEqualTo(6);
        }
    }

    private static boolean sameTables(String a, String b, String... tables) throws SQLException {
        try (Connection x = DriverManager.getConnection(url(a)); Connection y = DriverManager.getConnection(url(b))) {
            for (String t : tables) {
                if (!TableChecksum.of(x, new PostgresDialect(), t).equals(TableChecksum.of(y, new PostgresDialect(), t))) {
                    return false;
                }
            }
            return true;
        }
    }

    /** dist_a holds the hub's items and north offers, dist_b (H2) the south offers, and nothing else. */
    private static boolean distributed(String h2) throws SQLException {
        try (Connection h = DriverManager.getConnection(url("dist_hq")); Connection sa = DriverManager.getConnection(url("dist_a"));
             Connection sb = DriverManager.getConnection(h2)) {
            PostgresDialect pgd = new PostgresDialect();
            io.syncline.engine.dialect.h2.H2Dialect h2d = new io.syncline.engine.dialect.h2.H2Dialect();
            // Checksums of one region leave the region column out; equal totals show nothing else is there.
            TableChecksum.Result north = TableChecksum.of(h, pgd, "offer", "region", "north");
            TableChecksum.Result south = TableChecksum.of(h, pgd, "offer", "region", "south");
            return TableChecksum.of(sa, pgd, "item").equals(TableChecksum.of(h, pgd, "item"))
                    && TableChecksum.of(sa, pgd, "offer", "region", "north").equals(north)
                    && TableChecksum.of(sa, pgd, "offer").rows() == north.rows()
                    && TableChecksum.of(sb, h2d, "offer", "region", "south").equals(south)
                    && TableChecksum.of(sb, h2d, "offer").rows() == south.rows();
        }
    }

    private static long countIn(String db, String sql) throws SQLException {
        try (Connection c = DriverManager.getConnection(url(db))) {
            return count(c, sql);
        }
    }

    private static long count(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    @Test
    void shouldUpgradeCaptureOfATableAlteredWhileTheSiteRunsAndResendWhatWasCapturedWithoutTheNewColumn() throws Exception {
        exec("alt_hq", "CREATE TABLE item (id INT PRIMARY KEY, name TEXT, color TEXT)");
        exec("alt_s", "CREATE TABLE item (id INT PRIMARY KEY, name TEXT)");
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s", user: postgres}
                enrollment: {token: tok}
                sync: {interval: 100ms}
                channels:
                  - name: items
                    tables: [{name: item}]
                """.formatted(url("alt_hq")), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
             SiteNode site = SiteNode.start(NodeConfig.parse("""
                     node: {id: s}
                     database: {url: "%s", user: postgres, poolSize: 3}
                     hub: {url: "%s", token: tok}
                     capture: {interval: 100ms, schemaCheckInterval: 300ms}
                     """.formatted(url("alt_s"), hub.url()), Role.SITE, Map.of()), Clock.systemUTC())) {
            exec("alt_s", "INSERT INTO item VALUES (1, 'before')");
            await().atMost(Duration.ofSeconds(30)).until(() -> countIn("alt_hq", "SELECT count(*) FROM item") == 1);
            // Between the ALTER and the next check, rows are captured without the new column; the check loads the table again.
            exec("alt_s", "ALTER TABLE item ADD COLUMN color TEXT",
                    "INSERT INTO item VALUES (2, 'in the gap', 'red')", "UPDATE item SET color = 'blue' WHERE id = 1");
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                try (Connection h = DriverManager.getConnection(url("alt_hq")); Connection c = DriverManager.getConnection(url("alt_s"))) {
                    assertThat(TableChecksum.of(h, new PostgresDialect(), "item")).isEqualTo(TableChecksum.of(c, new PostgresDialect(), "item"));
                    assertThat(count(h, "SELECT count(*) FROM item WHERE color IS NOT NULL")).isEqualTo(2);
                }
            });
            // A dropped column: capture is upgraded by the check; writes after it are captured again.
            exec("alt_s", "ALTER TABLE item DROP COLUMN name");
            await().atMost(Duration.ofSeconds(30)).ignoreExceptions().until(() -> {
                exec("alt_s", "INSERT INTO item VALUES (3, 'green') ON CONFLICT (id) DO NOTHING");
                return true;
            });
            await().atMost(Duration.ofSeconds(30)).until(() -> countIn("alt_hq", "SELECT count(*) FROM item WHERE id = 3") == 1);
        }
    }

    private static void insertRows(Connection c, int from, int to) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO item VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS jsonb), CAST(? AS json))")) {
            for (int i = from; i <= to; i++) {
                ps.setLong(1, i);
                ps.setShort(2, (short) (i % 30000));
                ps.setInt(3, -i);
                ps.setBigDecimal(4, new BigDecimal("12345678901234567890.0123456789").add(BigDecimal.valueOf(i)));
                ps.setBigDecimal(5, new BigDecimal("0.10").add(BigDecimal.valueOf(i, 2)));
                ps.setString(6, "Produit n°" + i + " 日本語 e\u0301 🚀");
                ps.setString(7, i % 5 == 0 ? "" : i % 5 == 1 ? null : "note " + i);
                ps.setBoolean(8, i % 2 == 0);
                ps.setObject(9, java.time.LocalDate.of(2020, 1, 1).plusDays(i % 1000));
                ps.setObject(10, java.time.LocalTime.of(i % 24, i % 60, i % 60, (i % 1000) * 1000));
                ps.setObject(11, java.time.LocalDateTime.of(2026, 3, 29, 2, 30).plusMinutes(i));
                ps.setObject(12, java.time.OffsetDateTime.of(2026, 10, 25, 1, 30, 0, 123456000, java.time.ZoneOffset.ofHoursMinutes(5, 30)).plusSeconds(i));
                ps.setBytes(13, new byte[] {0, 1, (byte) 255, (byte) i, 0});
                ps.setObject(14, java.util.UUID.nameUUIDFromBytes(("u" + i).getBytes()));
                ps.setString(15, "{\"n\": " + i + ", \"tags\": [\"a\", \"ü\"], \"nested\": {\"x\": null}}");
                ps.setString(16, "{\"b\":  1, \"a\": [1.50, 2]}");
                ps.addBatch();
            }
            ps.executeBatch();
        }
    }
}
