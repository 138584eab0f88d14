package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Hub-to-sites channels on H2: routing by site attributes, row filters, rows moving between sites, reloads. */
class DistributionTest {
    private static final String TASK = "CREATE TABLE task (id INT PRIMARY KEY, site_id VARCHAR(20), what VARCHAR(50))";

    @TempDir
    Path dir;

    private String url(String name) {
        return new H2Files(dir).url(name);
    }

    private void exec(String db, String... sql) throws SQLException {
        new H2Files(dir).exec(db, sql);
    }

    private long count(String db, String sql) throws SQLException {
        return new H2Files(dir).count(db, sql);
    }

    /** Checksum of a table at a node, optionally of the rows where {@code column = value} (without that column). */
    private TableChecksum.Result sum(String db, String table, String column, String value) throws SQLException {
        return new H2Files(dir).sum(db, table, column, value);
    }

    private NodeConfig hub(String db, int port, String northOneRegion) {
        return NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s"}
                http: {port: %d}
                enrollment: {token: secret-token}
                sync: {interval: 100ms}
                capture: {interval: 100ms, schemaCheckInterval: 300ms}
                sites:
                  north1: {attributes: {region: %s, type: store}}
                  north2: {mode: pull, interval: 100ms, attributes: {region: north, type: outlet}}
                  south1: {attributes: {region: south, type: store}}
                channels:
                  - name: catalog
                    direction: hub-to-sites
                    tables: [{name: product}]
                  - name: prices
                    direction: hub-to-sites
                    sites: "type = 'store'"
                    tables: [{name: price, target: hub_price, filter: "region = :site.region"}]
                  - name: tasks
                    direction: hub-to-sites
                    sites: "id IN ('north1', 'south1')"
                    tables: [{name: task, filter: "site_id = :site.id"}]
                """.formatted(url(db), port, northOneRegion), Role.HUB, Map.of());
    }

    private NodeConfig site(String id, String hubUrl) {
        return NodeConfig.parse("""
                node: {id: %s}
                database: {url: "%s"}
                hub: {url: "%s", token: secret-token}
                capture: {interval: 100ms}
                """.formatted(id, url(id), hubUrl), Role.SITE, Map.of());
    }

    /** Every row of a query, for failure messages. */
    private String rows(String db, String sql) throws SQLException {
        StringBuilder out = new StringBuilder();
        try (java.sql.Connection c = java.sql.DriverManager.getConnection(url(db)); java.sql.Statement st = c.createStatement();
             java.sql.ResultSet rs = st.executeQuery(sql)) {
            while (rs.next()) {
                out.append('[');
                for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
                    out.append(i > 1 ? " " : "").append(rs.getString(i));
                }
                out.append(']');
            }
        }
        return out.toString();
    }

    private static int freePort() {
        return io.syncline.testkit.FreePorts.take(); // (not bind(0) and release: see FreePorts)
    }

    /** Whether each site holds exactly its share of the hub's rows. */
    private boolean converged(String hubDb, String northOneRegion) throws SQLException {
        TableChecksum.Result products = sum(hubDb, "product", null, null);
        for (String site : new String[] {"north1", "north2", "south1"}) {
            if (!sum(site, "product", null, null).equals(products)) {
                return false;
            }
        }
        return holdsShare("north1", hubDb, northOneRegion) && holdsShare("south1", hubDb, "south")
                && count("north2", "SELECT count(*) FROM price") == 0;
    }

    /** The site's price table holds exactly the hub's rows of {@code region}. */
    private boolean holdsShare(String site, String hubDb, String region) throws SQLException {
        TableChecksum.Result share = sum(hubDb, "hub_price", "region", region);
        return sum(site, "price", "region", region).equals(share) && count(site, "SELECT count(*) FROM price") == share.rows();
    }

    @Test
    void shouldDeliverToEachSiteTheRowsItsRoutingSelectsAndMoveRowsBetweenSites() throws Exception {
        exec("hq", "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))",
                "CREATE TABLE hub_price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK,
                "INSERT INTO product VALUES (1, 'widget'), (2, 'gadget'), (3, 'gizmo')",
                "INSERT INTO hub_price VALUES (1, 'north', 1.10), (2, 'north', 2.20), (3, 'south', 3.30), (4, NULL, 4.40)");
        for (String s : new String[] {"north1", "north2", "south1"}) {
            exec(s, "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))",
                    "CREATE TABLE price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK);
        }
        // A row the hub never had: the first load replaces the site's copy whole, so it goes.
        exec("north1", "INSERT INTO price VALUES (99, 'north', 9.99)", "INSERT INTO product VALUES (99, 'stale')");
        try (HubNode hub = HubNode.start(hub("hq", 0, "north"), Clock.systemUTC());
             SiteNode n1 = SiteNode.start(site("north1", hub.url()), Clock.systemUTC());
             SiteNode n2 = SiteNode.start(site("north2", hub.url()), Clock.systemUTC());
             SiteNode s1 = SiteNode.start(site("south1", hub.url()), Clock.systemUTC())) {
            await().atMost(Duration.ofSeconds(30)).until(() -> converged("hq", "north"));
            assertThat(count("north1", "SELECT count(*) FROM price")).isEqualTo(2);
            assertThat(count("north1", "SELECT count(*) FROM product WHERE id = 99")).isZero();

            exec("hq", "INSERT INTO product VALUES (4, 'new')", "UPDATE product SET name = 'widget v2' WHERE id = 1",
                    "DELETE FROM product WHERE id = 2",
                    "INSERT INTO hub_price VALUES (5, 'north', 5.50)",
                    "UPDATE hub_price SET region = 'north', amount = 3.35 WHERE id = 3",  // moves from south1 to north1
                    "UPDATE hub_price SET region = 'south' WHERE id = 1",                 // moves from north1 to south1
                    "UPDATE hub_price SET region = 'south' WHERE id = 4",                 // from nowhere to south1
                    "DELETE FROM hub_price WHERE id = 2",
                    "UPDATE hub_price SET amount = 5.55 WHERE id = 5");
            await().atMost(Duration.ofSeconds(30)).until(() -> converged("hq", "north"));
            assertThat(count("north1", "SELECT count(*) FROM price WHERE id IN (3, 5)")).isEqualTo(2);
            assertThat(count("south1", "SELECT count(*) FROM price WHERE id IN (1, 4)")).isEqualTo(2);
            assertThat(count("south1", "SELECT count(*) FROM price WHERE id = 3")).isZero();

            // Rows addressed to one site by its id; a task handed over to another site moves with it.
            exec("hq", "INSERT INTO task VALUES (1, 'north1', 'count stock'), (2, 'south1', 'clean windows'), (3, 'north2', 'nobody')",
                    "UPDATE task SET site_id = 'south1' WHERE id = 1");
            await().atMost(Duration.ofSeconds(30)).until(() -> count("south1", "SELECT count(*) FROM task") == 2
                    && count("north1", "SELECT count(*) FROM task") == 0);
            exec("hq", "UPDATE task SET site_id = 'north1' WHERE id = 2");
            await().atMost(Duration.ofSeconds(30)).until(() -> count("south1", "SELECT count(*) FROM task WHERE id = 1") == 1
                    && count("south1", "SELECT count(*) FROM task") == 1 && count("north1", "SELECT count(*) FROM task WHERE id = 2") == 1);
            assertThat(count("north2", "SELECT count(*) FROM task")).as("north2 is not chosen by the channel's selector").isZero();
            // Every routed site has acknowledged everything: the hub's outbox is purged, and status shows nothing pending.
            await().atMost(Duration.ofSeconds(30)).until(() -> count("hq", "SELECT count(*) FROM sync_batch") == 0
                    && count("hq", "SELECT count(*) FROM sync_outbox") == 0);
            assertThat(hub.status().sites()).extracting(NodeStatus.SiteStatus::pendingToSite).containsOnly(0L);
            // Three sites took catalog batches and two took price batches, yet each batch was read from the outbox once.
            long sealed = count("hq", "SELECT COALESCE(SUM(CAST(CAST(v AS VARCHAR(20)) AS BIGINT) - 1), 0) FROM sync_state WHERE k LIKE 'batch.next.%'");
            assertThat(sealed).isPositive();
            assertThat(hub.outboxReads()).isBetween(1L, sealed);
        }
    }

    @Test
    void shouldReloadASiteWhoseAttributesChangedAndOneThatJoinsAfterBatchesWerePurged() throws Exception {
        exec("hq2", "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))",
                "CREATE TABLE hub_price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK,
                "INSERT INTO hub_price VALUES (1, 'north', 1), (2, 'south', 2)");
        for (String s : new String[] {"north1", "north2", "south1"}) {
            exec(s, "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))",
                    "CREATE TABLE price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK);
        }
        int port = freePort();
        HubNode hub = HubNode.start(hub("hq2", port, "north"), Clock.systemUTC());
        try (SiteNode n1 = SiteNode.start(site("north1", hub.url()), Clock.systemUTC());
             SiteNode n2 = SiteNode.start(site("north2", hub.url()), Clock.systemUTC())) {
            for (int i = 10; i < 15; i++) { // batches that north1 and north2 acknowledge, so the hub purges them
                exec("hq2", "INSERT INTO product VALUES (" + i + ", 'p" + i + "')", "INSERT INTO hub_price VALUES (" + i + ", 'south', " + i + ")");
                int n = i;
                await().atMost(Duration.ofSeconds(20)).until(() -> count("north2", "SELECT count(*) FROM product WHERE id = " + n) == 1);
            }
            try {
                await().atMost(Duration.ofSeconds(20)).until(() -> count("hq2", "SELECT count(*) FROM sync_batch") == 0);
            } catch (org.awaitility.core.ConditionTimeoutException e) {
                throw new AssertionError("the hub kept batches: " + rows("hq2", "SELECT channel, batch_seq FROM sync_batch") + "; acknowledged: "
                        + rows("hq2", "SELECT * FROM sync_ack"), e);
            }
            try (SiteNode s1 = SiteNode.start(site("south1", hub.url()), Clock.systemUTC())) {
                await().atMost(Duration.ofSeconds(30)).until(() -> converged("hq2", "north"));
                assertThat(count("south1", "SELECT count(*) FROM product")).isEqualTo(5);

                // north1 moves to the south: the hub restarts with its new attributes, and north1 gets the south's rows.
                hub.close();
                hub = HubNode.start(hub("hq2", port, "south"), Clock.systemUTC());
                await().atMost(Duration.ofSeconds(30)).until(() -> converged("hq2", "south"));
                assertThat(count("north1", "SELECT count(*) FROM price WHERE region = 'north'")).isZero();
            }
            // A site that stops fetching: the hub's status counts what waits for it.
            n2.close();
            exec("hq2", "INSERT INTO product VALUES (99, 'while north2 is away')");
            HubNode h = hub;
            await().atMost(Duration.ofSeconds(20)).until(() -> h.status().sites().stream()
                    .filter(st -> st.site().equals("north2")).findFirst().orElseThrow().pendingToSite() == 1);
        } finally {
            hub.close();
        }
    }

    @Test
    void shouldReloadWhenAHubTableGainsAColumnAndStopServingAFilterWhoseColumnWasDropped() throws Exception {
        exec("hq3", "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))",
                "CREATE TABLE hub_price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK,
                "INSERT INTO product VALUES (1, 'one'), (2, 'two')", "INSERT INTO hub_price VALUES (1, 'north', 1), (2, 'south', 2)");
        for (String s : new String[] {"north1", "north2", "south1"}) {
            exec(s, "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100), note VARCHAR(20))",
                    "CREATE TABLE price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK);
        }
        try (HubNode hub = HubNode.start(hub("hq3", 0, "north"), Clock.systemUTC());
             SiteNode n1 = SiteNode.start(site("north1", hub.url()), Clock.systemUTC());
             SiteNode n2 = SiteNode.start(site("north2", hub.url()), Clock.systemUTC());
             SiteNode s1 = SiteNode.start(site("south1", hub.url()), Clock.systemUTC())) {
            // (every site has its share before the filter's column goes: the end asserts they keep it)
            await().atMost(Duration.ofSeconds(30)).until(() -> count("north2", "SELECT count(*) FROM product") == 2
                    && count("north1", "SELECT count(*) FROM price") == 1 && count("south1", "SELECT count(*) FROM price") == 1);
            // The hub's product table gains a column that the sites already have; rows written before the hub's capture
            // notices it would travel without it. The reload the new signature causes brings every value.
            exec("hq3", "ALTER TABLE product ADD COLUMN note VARCHAR(20)", "UPDATE product SET note = 'noted'");
            await().atMost(Duration.ofSeconds(30)).until(() -> count("north2", "SELECT count(*) FROM product WHERE note = 'noted'") == 2
                    && count("south1", "SELECT count(*) FROM product WHERE note = 'noted'") == 2);
            // The column the prices filter reads is dropped at the hub: the channel is not served, and the sites keep
            // their rows instead of seeing every row leave their share.
            exec("hq3", "ALTER TABLE hub_price DROP COLUMN region");
            await().atMost(Duration.ofSeconds(30)).until(() -> hub.status().sites().stream()
                    .anyMatch(st -> st.site().equals("north1") && st.lastError() != null && st.lastError().contains("does not serve channel 'prices'")));
            assertThat(count("north1", "SELECT count(*) FROM price")).isEqualTo(1);
            assertThat(count("south1", "SELECT count(*) FROM price")).isEqualTo(1);
        }
    }

    @Test
    void shouldReloadASiteWhenTheHubDatabaseWasRestoredFromABackupAndSealedAsManyBatchesAgain() throws Exception {
        exec("hq5", "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))",
                "CREATE TABLE hub_price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK);
        exec("north2", "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))",
                "CREATE TABLE price (id INT PRIMARY KEY, region VARCHAR(20), amount DECIMAL(10,2))", TASK);
        int port = freePort();
        Path db = dir.resolve("hq5.mv.db");
        Path backup = dir.resolve("hq5-backup.mv.db");
        HubNode hub = HubNode.start(hub("hq5", port, "north"), Clock.systemUTC());
        try {
            exec("hq5", "INSERT INTO product VALUES (1, 'before the backup')");
            try (SiteNode n2 = SiteNode.start(site("north2", hub.url()), Clock.systemUTC())) {
                await().atMost(Duration.ofSeconds(20)).until(() -> count("north2", "SELECT count(*) FROM product") == 1);
                hub.close();
                java.nio.file.Files.copy(db, backup);
                hub = HubNode.start(hub("hq5", port, "north"), Clock.systemUTC());
                for (int i = 2; i <= 4; i++) { // batches the restored hub will not have
                    exec("hq5", "INSERT INTO product VALUES (" + i + ", 'lost with the restore')");
                    int n = i;
                    await().atMost(Duration.ofSeconds(20)).until(() -> count("north2", "SELECT count(*) FROM product") == n);
                }
            }
            hub.close();
            java.nio.file.Files.copy(backup, db, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            hub = HubNode.start(hub("hq5", port, "north"), Clock.systemUTC());
            // The restored hub seals as many batches again, under the same numbers, while the site is away: by number
            // alone the site would look up to date and miss them.
            String next = "SELECT CAST(CAST(v AS VARCHAR(20)) AS BIGINT) FROM sync_state WHERE k = 'batch.next.catalog'";
            for (int i = 10; i <= 15; i++) {
                long before = count("hq5", next); // read first: in real time the insert is sealed at once
                exec("hq5", "INSERT INTO product VALUES (" + i + ", 'after the restore')");
                await().atMost(Duration.ofSeconds(20)).until(() -> count("hq5", next) > before);
            }
            try (SiteNode n2 = SiteNode.start(site("north2", hub.url()), Clock.systemUTC())) {
                await().atMost(Duration.ofSeconds(30)).until(() -> sum("north2", "product", null, null).equals(sum("hq5", "product", null, null)));
                assertThat(count("north2", "SELECT count(*) FROM product WHERE id BETWEEN 2 AND 4")).isZero();
                assertThat(count("north2", "SELECT count(*) FROM product WHERE id >= 10")).isEqualTo(6);
            }
        } finally {
            hub.close();
        }
    }

    @Test
    void shouldStopKeepingChangesForASiteAwayLongerThanRetentionWarnBeforeAndCopyItWhenItReturns() throws Exception {
        exec("hq6", "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))", "INSERT INTO product VALUES (1, 'one')");
        for (String s : new String[] {"north1", "south1"}) {
            exec(s, "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100))");
        }
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s"}
                enrollment: {token: secret-token}
                sync: {interval: 100ms}
                capture: {interval: 100ms, schemaCheckInterval: 200ms}
                retention: {maxAge: 3s}
                channels:
                  - {name: catalog, direction: hub-to-sites, tables: [{name: product}]}
                """.formatted(url("hq6")), Role.HUB, Map.of());
        try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
             SiteNode n1 = SiteNode.start(site("north1", hub.url()), Clock.systemUTC())) {
            SiteNode s1 = SiteNode.start(site("south1", hub.url()), Clock.systemUTC());
            await().atMost(Duration.ofSeconds(30)).until(() -> count("south1", "SELECT count(*) FROM product") == 1
                    && count("north1", "SELECT count(*) FROM product") == 1);
            s1.close();
            for (int i = 2; i <= 4; i++) {
                exec("hq6", "INSERT INTO product VALUES (" + i + ", 'while south1 is away')");
            }
            // North1 waits in its long polls all along: present, whatever the age of its last acknowledgement.
            await().atMost(Duration.ofSeconds(20)).until(() -> retention(hub, "south1") != null
                    && retention(hub, "south1").contains("kept for it until"));
            assertThat(count("hq6", "SELECT count(*) FROM sync_batch")).as("still kept for south1").isPositive();
            await().atMost(Duration.ofSeconds(20)).until(() -> retention(hub, "south1") != null
                    && retention(hub, "south1").contains("no longer kept"));
            await().atMost(Duration.ofSeconds(20)).until(() -> count("hq6", "SELECT count(*) FROM sync_batch") == 0);
            assertThat(retention(hub, "north1")).isNull();
            exec("hq6", "UPDATE product SET name = 'after the purge' WHERE id = 1");
            try (SiteNode back = SiteNode.start(site("south1", hub.url()), Clock.systemUTC())) {
                await().atMost(Duration.ofSeconds(30)).until(() -> sum("south1", "product", null, null).equals(sum("hq6", "product", null, null)));
                await().atMost(Duration.ofSeconds(10)).until(() -> retention(hub, "south1") == null);
            }
        }
    }

    private static String retention(HubNode hub, String site) {
        return hub.status().sites().stream().filter(st -> st.site().equals(site)).findFirst().orElseThrow().retention();
    }
}
