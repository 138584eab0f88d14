package io.syncline.node;

import static io.syncline.node.RawHubClient.batch;
import static io.syncline.node.RawHubClient.insert;
import static io.syncline.node.RawHubClient.stream;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.RawHubClient.Answer;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** One site's trouble (bad input, an unreachable listener) never stops the others. Real hub, real sites, H2, HTTP. */
class HubIsolationTest {
    private static final String TOKEN = "enroll-me";

    @TempDir
    Path dir;

    private String url(String name) {
        return "jdbc:h2:" + dir.resolve(name).toAbsolutePath() + ";DB_CLOSE_DELAY=0";
    }

    private void exec(String name, String... sql) throws SQLException {
        try (Connection c = DriverManager.getConnection(url(name)); Statement s = c.createStatement()) {
            for (String q : sql) {
                s.execute(q);
            }
        }
    }

    private void createTables(String... sites) throws SQLException {
        exec("hub", "CREATE TABLE product (site_id VARCHAR(64), id INT, name VARCHAR(100), price DECIMAL(10,2), PRIMARY KEY (site_id, id))");
        for (String s : sites) {
            exec(s, "CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100), price DECIMAL(10,2))");
        }
    }

    private HubNode startHub(String sites) {
        return HubNode.start(NodeConfig.parse("""
                node: {id: hub}
                database: {url: "%s"}
                enrollment: {token: "%s"}
                sync: {interval: 200ms}
                sites: %s
                channels:
                  - name: products
                    tables: [{name: product, hubColumn: site_id}]
                """.formatted(url("hub"), TOKEN, sites), Role.HUB, Map.of()), Clock.systemUTC());
    }

    private SiteNode startSite(String id, String hubUrl) {
        return SiteNode.start(NodeConfig.parse("""
                node: {id: %s}
                database: {url: "%s"}
                hub: {url: "%s", token: %s}
                capture: {interval: 100ms}
                """.formatted(id, url(id), hubUrl, TOKEN), Role.SITE, Map.of()), Clock.systemUTC());
    }

    /** Inserts, updates and deletes some rows at a site, in several transactions. */
    private void writeSome(String site, int from, int count) throws SQLException {
        for (int i = from; i < from + count; i++) {
            exec(site, "INSERT INTO product VALUES (" + i + ", '" + site + "-" + i + "', " + i + ".10)");
            if (i % 3 == 0) {
                exec(site, "UPDATE product SET price = price + 1, name = 'upd-" + i + "' WHERE id = " + i);
            }
            if (i % 5 == 0) {
                exec(site, "DELETE FROM product WHERE id = " + (i - 1));
            }
        }
    }

    private void assertConverged(String site) throws SQLException {
        try (Connection s = DriverManager.getConnection(url(site)); Connection h = DriverManager.getConnection(url("hub"))) {
            TableChecksum.Result atSite = TableChecksum.of(s, new H2Dialect(), "product");
            TableChecksum.Result atHub = TableChecksum.of(h, new H2Dialect(), "product", "site_id", site);
            assertThat(atHub).as("hub's copy of site %s", site).isEqualTo(atSite);
            assertThat(atSite.rows()).isPositive();
        }
    }

    private long hubRowsOf(String site) throws SQLException {
        try (Connection c = DriverManager.getConnection(url("hub"));
             var ps = c.prepareStatement("SELECT COUNT(*) FROM product WHERE site_id = ?")) {
            ps.setString(1, site);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    private static NodeStatus.SiteStatus site(HubNode hub, String id) {
        return hub.status().sites().stream().filter(s -> s.site().equals(id)).findFirst().orElseThrow();
    }

    @Test
    void shouldKeepGoodSitesConvergingWhileAnotherNodeSendsBadBatches() throws Exception {
        createTables("s1", "s2");
        try (HubNode hub = startHub("{}")) {
            RawHubClient bad = new RawHubClient(hub.url());
            assertThat(bad.register("bad-1", TOKEN).status()).isEqualTo(200);
            String[][] rows = new String[300][];
            for (int i = 0; i < rows.length; i++) {
                rows[i] = insert("product", "{\"id\":" + i + ",\"name\":\"n" + i + "\",\"price\":1}");
            }
            byte[] good = stream(batch("bad-1", "products", 1, rows));
            byte[][] attacks = {
                    "not gzip at all".getBytes(StandardCharsets.UTF_8),
                    Arrays.copyOf(good, good.length / 2),
                    stream(batch("bad-1", "products", 7, rows)),
                    stream(batch("bad-1", "nochannel", 1, rows)),
                    stream(batch("s1", "products", 1, rows)),
                    stream(batch("bad-1", "products", 1, insert("product", "{\"id\":1,\"colour\":\"red\"}"))),
                    stream(batch("bad-1", "products", 1, insert("product", "{\"id\":1,\"SITE_ID\":\"s2\",\"name\":\"x\"}"))),
            };
            Map<Integer, Integer> statuses = new ConcurrentHashMap<>();
            AtomicBoolean stop = new AtomicBoolean();
            AtomicInteger sent = new AtomicInteger();
            CompletableFuture<Void> attacker = CompletableFuture.runAsync(() -> {
                try {
                    for (int i = 0; i < 20_000 && !stop.get(); i++) {
                        Answer a = i % 10 == 9 ? bad.push("bad-1", "wrong-secret", good) : bad.push("bad-1", attacks[i % attacks.length]);
                        statuses.merge(a.status(), 1, Integer::sum);
                        sent.incrementAndGet();
                    }
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            SiteNode s1 = startSite("s1", hub.url());
            SiteNode s2 = startSite("s2", hub.url());
            try (s1; s2) {
                for (int round = 0; round < 4; round++) {
                    writeSome("s1", round * 20 + 1, 20);
                    writeSome("s2", round * 20 + 1, 20);
                }
                await().atMost(Duration.ofSeconds(60)).until(() -> sent.get() >= 50 && s1.isDrained() && s2.isDrained());
                assertThat(attacker).isNotDone();
                assertConverged("s1");
                assertConverged("s2");
                await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                    assertThat(site(hub, "s1").state()).isEqualTo("ONLINE");
                    assertThat(site(hub, "s2").state()).isEqualTo("ONLINE");
                });
                assertThat(site(hub, "s1").lastError()).isNull();
                assertThat(site(hub, "s2").lastError()).isNull();
            } finally {
                stop.set(true);
                attacker.get(60, TimeUnit.SECONDS);
            }
            assertThat(statuses).containsOnlyKeys(400, 401, 409);
            assertThat(site(hub, "bad-1").lastError()).isNotNull();
            assertThat(site(hub, "bad-1").lastBatches()).isEmpty();
            assertThat(hubRowsOf("bad-1")).isZero();
            // the attacker was never applied under a good site's id either
            assertConverged("s1");
            assertConverged("s2");
        }
    }

    @Test
    void shouldRecordAnUnreachablePullSiteAndCatchUpAfterItRestarts() throws Exception {
        createTables("p1", "s1");
        try (HubNode hub = startHub("{p1: {mode: pull, interval: 200ms}}")) {
            SiteNode s1 = startSite("s1", hub.url());
            try (s1) {
                SiteNode p1 = startSite("p1", hub.url());
                try (p1) {
                    writeSome("p1", 1, 20);
                    writeSome("s1", 1, 20);
                    await().atMost(Duration.ofSeconds(30)).until(() -> p1.isDrained() && s1.isDrained());
                    assertConverged("p1");
                    assertConverged("s1");
                    assertThat(site(hub, "p1").mode()).isEqualTo("pull");
                    assertThat(site(hub, "p1").lastError()).isNull();
                }
                // p1 is down; its database keeps capturing (the triggers live in the database)
                writeSome("p1", 100, 20);
                await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> assertThat(site(hub, "p1").lastError()).isNotNull());
                long p1AtHub = hubRowsOf("p1");
                // the push site keeps flowing meanwhile
                writeSome("s1", 100, 20);
                await().atMost(Duration.ofSeconds(30)).until(s1::isDrained);
                assertConverged("s1");
                assertThat(site(hub, "s1").state()).isEqualTo("ONLINE");
                assertThat(site(hub, "s1").lastError()).isNull();
                assertThat(site(hub, "p1").lastError()).isNotNull();
                assertThat(hubRowsOf("p1")).isEqualTo(p1AtHub);

                // a new SiteNode on the same database (new listener port) registers again and catches up
                SiteNode p1Again = startSite("p1", hub.url());
                try (p1Again) {
                    writeSome("p1", 200, 5);
                    await().atMost(Duration.ofSeconds(30)).until(p1Again::isDrained);
                    assertConverged("p1");
                    await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                        assertThat(site(hub, "p1").lastError()).isNull();
                        assertThat(site(hub, "p1").state()).isEqualTo("ONLINE");
                    });
                    assertConverged("s1");
                }
            }
        }
    }

    @Test
    void shouldReRegisterAPushSiteWhoseCredentialsWereReplacedAndKeepConverging() throws Exception {
        createTables("s1");
        try (HubNode hub = startHub("{}")) {
            SiteNode s1 = startSite("s1", hub.url());
            try (s1) {
                writeSome("s1", 1, 10);
                await().atMost(Duration.ofSeconds(30)).until(s1::isDrained);
                // someone with the enrollment token registers as s1 with s1's own incarnation: s1's secret is now stale
                String incarnation;
                try (Connection c = DriverManager.getConnection(url("s1")); Statement st = c.createStatement();
                     ResultSet rs = st.executeQuery("SELECT v FROM sync_state WHERE k = 'incarnation'")) {
                    assertThat(rs.next()).isTrue();
                    incarnation = rs.getString(1);
                }
                RawHubClient other = new RawHubClient(hub.url());
                Answer a = other.registerRaw("{\"node\":\"s1\",\"token\":\"" + TOKEN + "\",\"incarnation\":\"" + incarnation + "\"}");
                assertThat(a.status()).as(a.raw()).isEqualTo(200);
                // s1 is answered 401 (a JSON error it can read), registers again and delivers what follows
                writeSome("s1", 100, 10);
                await().atMost(Duration.ofSeconds(30)).until(s1::isDrained);
                assertConverged("s1");
                assertThat(site(hub, "s1").lastError()).isNull();
                assertThat(other.push("s1", stream(batch("s1", "products", 99, insert("product", "{\"id\":1}")))).status())
                        .as("the other client's secret was replaced when s1 registered again").isEqualTo(401);
            }
        }
    }
}
