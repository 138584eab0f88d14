package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import io.syncline.transport.wire.WireFormat;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Two-way channels between real nodes on H2 over HTTP: changes from every side reach every other, and conflicts settle. */
class TwoWayTest {
    private static final String ITEM = "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), qty INT)";

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

    private TableChecksum.Result sum(String db, String table) throws SQLException {
        return new H2Files(dir).sum(db, table, null, null);
    }

    private boolean converged(String table, String... sites) throws SQLException {
        TableChecksum.Result hub = sum("hq", table);
        for (String s : sites) {
            if (!sum(s, table).equals(hub)) {
                return false;
            }
        }
        return true;
    }

    private NodeConfig hub(String policy) {
        return NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s"}
                enrollment: {token: secret-token}
                sync: {interval: 100ms}
                capture: {interval: 100ms}
                sites:
                  b: {mode: pull, interval: 100ms}
                channels:
                  - name: stock
                    direction: two-way
                    conflict: {policy: %s}
                    tables: [{name: item}]
                """.formatted(url("hq"), policy), Role.HUB, Map.of());
    }

    private NodeConfig site(String id, String hubUrl) {
        return NodeConfig.parse("""
                node: {id: %s}
                database: {url: "%s"}
                hub: {url: "%s", token: secret-token}
                capture: {interval: 100ms}
                """.formatted(id, url(id), hubUrl), Role.SITE, Map.of());
    }

    @Test
    void shouldCarryChangesFromEveryNodeToEveryOtherWithoutLooping() throws Exception {
        for (String n : new String[] {"hq", "a", "b"}) {
            exec(n, ITEM);
        }
        exec("a", "INSERT INTO item VALUES (1, 'from a', 1)");
        try (HubNode hub = HubNode.start(hub("last-writer-wins"), Clock.systemUTC());
             SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC());
             SiteNode b = SiteNode.start(site("b", hub.url()), Clock.systemUTC())) {
            await().atMost(Duration.ofSeconds(30)).until(() -> count("b", "SELECT count(*) FROM item") == 1 && converged("item", "a", "b"));
            exec("hq", "INSERT INTO item VALUES (2, 'from hq', 2)");
            exec("b", "INSERT INTO item VALUES (3, 'from b', 3)", "UPDATE item SET qty = 10 WHERE id = 1");
            exec("a", "DELETE FROM item WHERE id = 1");
            await().atMost(Duration.ofSeconds(30)).until(() -> count("hq", "SELECT count(*) FROM item WHERE id IN (2, 3)") == 2
                    && converged("item", "a", "b"));
            // Quiet: what a node applied is not sent on again, so once every node is level the batch numbers stop moving
            // (an echo loop would seal a batch every interval, 100 ms).
            String sealed = "SELECT CAST(CAST(v AS VARCHAR(20)) AS INT) FROM sync_state WHERE k = 'batch.next.stock'";
            java.util.concurrent.atomic.AtomicReference<List<Long>> last = new java.util.concurrent.atomic.AtomicReference<>(List.of());
            await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(10)).until(() -> {
                List<Long> now = List.of(count("hq", sealed), count("a", sealed), count("b", sealed));
                return now.equals(last.getAndSet(now));
            });
            assertThat(converged("item", "a", "b")).isTrue();
            // Whether the delete at a raced the update at b or not, every conflict is recorded and the nodes agree.
            assertThat(hub.status().conflicts()).isEqualTo(count("hq", "SELECT count(*) FROM sync_conflict"));
        }
    }

    @Test
    void shouldNeverSendASiteItsOwnChangesBack() throws Exception {
        for (String n : new String[] {"hq", "a", "b"}) {
            exec(n, ITEM);
        }
        exec("hq", "INSERT INTO item VALUES (1, 'from hq', 1)");
        String applied = "SELECT COALESCE(SUM(rows_applied), 0) FROM sync_incoming WHERE source = 'hq'";
        try (HubNode hub = HubNode.start(hub("last-writer-wins"), Clock.systemUTC());
             SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC());
             SiteNode b = SiteNode.start(site("b", hub.url()), Clock.systemUTC())) {
            await().atMost(Duration.ofSeconds(30)).until(() -> count("a", "SELECT count(*) FROM item") == 1
                    && count("b", "SELECT count(*) FROM item") == 1);
            long aBefore = count("a", applied);
            long bBefore = count("b", applied);
            // a (pushing) changes 50 rows, b (pulled by the hub) 1: each gets only the other's.
            for (int i = 0; i < 50; i++) {
                exec("a", "INSERT INTO item VALUES (" + (100 + i) + ", 'from a', " + i + ")");
            }
            exec("b", "UPDATE item SET qty = 7 WHERE id = 1");
            await().atMost(Duration.ofSeconds(30)).until(() -> count("hq", "SELECT count(*) FROM item") == 51
                    && count("hq", "SELECT qty FROM item WHERE id = 1") == 7 && converged("item", "a", "b"));
            await().atMost(Duration.ofSeconds(10)).until(() -> count("a", applied) - aBefore == 1 && count("b", applied) - bBefore == 50);
            await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(10)).until(() -> count("a", applied) - aBefore == 1
                    && count("b", applied) - bBefore == 50);
            assertThat(count("a", "SELECT count(*) FROM sync_guard")).as("every guard of a released by the hub's marks").isZero();
            assertThat(hub.status().conflicts()).isZero();
            // The hub's batches go once both sites have them and the hub has read them for its own edits.
            await().atMost(Duration.ofSeconds(10)).until(() -> count("hq", "SELECT count(*) FROM sync_batch WHERE channel = 'stock'") == 0);
        }
    }

    @Test
    void shouldLetASiteEditMadeAfterAnEditAtTheHubWinLastWriterWins() throws Exception {
        for (String n : new String[] {"hq", "a"}) {
            exec(n, ITEM);
        }
        exec("hq", "INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
        try (HubNode hub = HubNode.start(hub("last-writer-wins"), Clock.systemUTC())) {
            try (SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC())) {
                await().atMost(Duration.ofSeconds(30)).until(() -> a.isDrained() && converged("item", "a")
                        && count("a", "SELECT count(*) FROM item") == 2);
            }
            // HQ edits rows 1 and 2 while site a is away; the hub records when (it seals them within capture.interval).
            exec("hq", "UPDATE item SET name = 'hq' WHERE id IN (1, 2)");
            await().atMost(Duration.ofSeconds(10)).until(() -> count("hq", "SELECT count(*) FROM sync_row_stamp WHERE writer = 'hq'") == 2);
            // Later, site a edits row 1 (based on the version before HQ's edit); row 2 it leaves alone.
            exec("a", "UPDATE item SET name = 'a' WHERE id = 1");
            try (SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC())) {
                await().atMost(Duration.ofSeconds(30)).until(() -> count("hq", "SELECT count(*) FROM sync_conflict") == 1 && a.isDrained()
                        && converged("item", "a"));
                assertThat(count("hq", "SELECT count(*) FROM item WHERE id = 1 AND name = 'a'")).as("the later edit, the site's, wins").isEqualTo(1);
                assertThat(count("hq", "SELECT count(*) FROM item WHERE id = 2 AND name = 'hq'")).isEqualTo(1);
            }
        }
    }

    @Test
    void shouldStartOverAndConvergeWhenASitesDatabaseIsRestoredFromABackup() throws Exception {
        for (String n : new String[] {"hq", "a"}) {
            exec(n, ITEM);
        }
        exec("hq", "INSERT INTO item VALUES (1, 'from hq', 1)");
        Path db = dir.resolve("a.mv.db");
        Path backup = dir.resolve("a-backup.mv.db");
        try (HubNode hub = HubNode.start(hub("last-writer-wins"), Clock.systemUTC())) {
            try (SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC())) {
                exec("a", "INSERT INTO item VALUES (2, 'from a', 2)");
                await().atMost(Duration.ofSeconds(30)).until(() -> a.isDrained() && converged("item", "a")
                        && count("hq", "SELECT count(*) FROM item") == 2);
            }
            java.nio.file.Files.copy(db, backup);
            try (SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC())) {
                for (int i = 3; i <= 5; i++) { // batches the hub takes in after the backup
                    exec("a", "INSERT INTO item VALUES (" + i + ", 'after the backup', " + i + ")");
                    int n = i;
                    await().atMost(Duration.ofSeconds(30)).until(() -> a.isDrained() && count("hq", "SELECT count(*) FROM item") == n);
                }
            }
            java.nio.file.Files.copy(backup, db, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            // Written into the restored database before the site runs again, under batch numbers the hub already has.
            exec("a", "INSERT INTO item VALUES (100, 'after the restore', 100)", "UPDATE item SET qty = 7 WHERE id = 1");
            try (SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC())) {
                // The site starts over: it loads its rows again, as full copies (R), and takes a new copy of the channel.
                // A full copy of row 1 that differs from the hub's is a conflict the hub's row wins (rule "copy").
                await().atMost(Duration.ofSeconds(30)).until(() -> count("hq", "SELECT count(*) FROM item WHERE id = 100") == 1
                        && a.isDrained() && converged("item", "a"));
                assertThat(count("hq", "SELECT count(*) FROM sync_conflict WHERE policy = 'copy' AND row_key = '{\"id\":1}'")).isEqualTo(1);
                await().atMost(Duration.ofSeconds(10)).until(() -> count("a", "SELECT count(*) FROM sync_guard") == 0);
                assertThat(count("a", "SELECT count(*) FROM item")).as("the hub's rows, those taken in after the backup included")
                        .isEqualTo(6);
            }
        }
    }

    @Test
    void shouldSettleTheOldEditsOfASiteThatWasOfflineAndLetAnOperatorPickTheFinalVersion() throws Exception {
        for (String n : new String[] {"hq", "a", "b"}) {
            exec(n, ITEM);
        }
        exec("hq", "INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2)");
        try (HubNode hub = HubNode.start(hub("manual"), Clock.systemUTC())) {
            SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC());
            try (SiteNode b = SiteNode.start(site("b", hub.url()), Clock.systemUTC())) {
                await().atMost(Duration.ofSeconds(30)).until(() -> count("a", "SELECT count(*) FROM item") == 2 && converged("item", "a", "b"));
                a.close(); // a goes offline and keeps working: its triggers still capture
                exec("a", "UPDATE item SET name = 'offline edit' WHERE id = 1", "UPDATE item SET qty = 20 WHERE id = 2");
                exec("b", "UPDATE item SET name = 'edit at b' WHERE id = 1");
                await().atMost(Duration.ofSeconds(30)).until(() -> count("hq", "SELECT count(*) FROM item WHERE name = 'edit at b'") == 1);

                a = SiteNode.start(site("a", hub.url()), Clock.systemUTC()); // back, with its old edits
                await().atMost(Duration.ofSeconds(30)).until(() -> hub.status().conflicts() == 1 && count("hq", "SELECT qty FROM item WHERE id = 2") == 20
                        && converged("item", "a", "b"));
                NodeStatus st = hub.status();
                assertThat(st.openConflicts()).isEqualTo(1);
                assertThat(st.sites()).filteredOn(s -> s.site().equals("a")).singleElement().satisfies(s -> assertThat(s.conflicts()).isEqualTo(1));

                HttpClient http = HttpClient.newHttpClient();
                HttpResponse<String> list = http.send(HttpRequest.newBuilder(URI.create(hub.url() + "/v1/conflicts?open=true"))
                        .header("Authorization", "Bearer secret-token").GET().build(), HttpResponse.BodyHandlers.ofString());
                assertThat(list.statusCode()).isEqualTo(200);
                JsonNode conflict = WireFormat.MAPPER.readTree(list.body()).path("conflicts").get(0);
                assertThat(conflict.path("site").asText()).isEqualTo("a");
                assertThat(conflict.path("kind").asText()).isEqualTo("UPDATE_UPDATE");
                assertThat(conflict.path("siteRow").asText()).contains("offline edit");
                assertThat(conflict.path("hubRow").asText()).contains("edit at b");

                HttpResponse<String> refused = http.send(HttpRequest.newBuilder(URI.create(hub.url() + "/v1/conflicts/settle"))
                        .header("Authorization", "Bearer secret-token")
                        .POST(HttpRequest.BodyPublishers.ofString("{\"id\": " + conflict.path("id").asLong() + ", \"take\": \"mine\"}")).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertThat(refused.statusCode()).isEqualTo(400);
                assertThat(refused.body()).contains("'take' must be 'site', 'hub' or 'row'");

                String body = "{\"id\": " + conflict.path("id").asLong() + ", \"take\": \"row\", \"by\": \"alice\", "
                        + "\"row\": {\"id\": 1, \"name\": \"agreed\", \"qty\": 1}}";
                HttpResponse<String> settled = http.send(HttpRequest.newBuilder(URI.create(hub.url() + "/v1/conflicts/settle"))
                        .header("Authorization", "Bearer secret-token").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertThat(settled.statusCode()).as(settled.body()).isEqualTo(200);
                assertThat(WireFormat.MAPPER.readTree(settled.body()).path("status").asText()).isEqualTo("settled");
                await().atMost(Duration.ofSeconds(30)).until(() -> count("a", "SELECT count(*) FROM item WHERE name = 'agreed'") == 1
                        && converged("item", "a", "b"));
                assertThat(hub.status().openConflicts()).isZero();
            } finally {
                a.close();
            }
        }
    }

    @Test
    void shouldGiveAUniqueValueTakenByTwoSitesAtOnceToOneRowEverywhere() throws Exception {
        String sku = "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), qty INT, sku VARCHAR(20) UNIQUE)";
        for (String n : new String[] {"hq", "a", "b"}) {
            exec(n, sku);
        }
        try (HubNode hub = HubNode.start(hub("last-writer-wins"), Clock.systemUTC())) {
            SiteNode a = SiteNode.start(site("a", hub.url()), Clock.systemUTC());
            SiteNode b = SiteNode.start(site("b", hub.url()), Clock.systemUTC());
            await().atMost(Duration.ofSeconds(30)).until(() -> count("a", "SELECT count(*) FROM sync_state WHERE k = 'route.stock'") == 1
                    && count("b", "SELECT count(*) FROM sync_state WHERE k = 'route.stock'") == 1);
            a.close();
            b.close();
            // Both sites, offline, give the new SKU-7 to a product of their own.
            exec("a", "INSERT INTO item VALUES (10, 'from a', 1, 'SKU-7')");
            exec("b", "INSERT INTO item VALUES (20, 'from b', 1, 'SKU-7')");
            a = SiteNode.start(site("a", hub.url()), Clock.systemUTC());
            b = SiteNode.start(site("b", hub.url()), Clock.systemUTC());
            try {
                // The hub's order gives the SKU to the row that reached it first; the other site's row gives way there.
                await().atMost(Duration.ofSeconds(30)).until(() -> count("hq", "SELECT count(*) FROM sync_conflict") == 1
                        && converged("item", "a", "b"));
                // One of the two rows holds the SKU at every node; the other is gone everywhere, and recorded.
                assertThat(count("hq", "SELECT count(*) FROM item WHERE sku = 'SKU-7'")).isEqualTo(1);
                assertThat(count("hq", "SELECT count(*) FROM item")).isEqualTo(1);
                assertThat(count("hq", "SELECT count(*) FROM sync_conflict WHERE kind = 'UNIQUE_TAKEN' AND policy = 'unique'")).isEqualTo(1);
            } finally {
                a.close();
                b.close();
            }
        }
    }
}
