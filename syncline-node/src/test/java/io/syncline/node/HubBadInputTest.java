package io.syncline.node;

import static io.syncline.node.RawHubClient.batch;
import static io.syncline.node.RawHubClient.delete;
import static io.syncline.node.RawHubClient.insert;
import static io.syncline.node.RawHubClient.stream;
import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.node.RawHubClient.Answer;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real hub on H2, spoken to over real HTTP by a raw client: every kind of bad input is refused with the right status and a
 * message naming the problem, nothing of a refused batch is applied, and the hub keeps serving.
 */
class HubBadInputTest {
    private static final String TOKEN = "enroll-me";
    private static final String SITE = "raw-1";

    @TempDir
    Path dir;
    private HubNode hub;
    private RawHubClient client;

    private String url(String name) {
        return "jdbc:h2:" + dir.resolve(name).toAbsolutePath() + ";DB_CLOSE_DELAY=0";
    }

    @BeforeEach
    void startHubAndRegister() throws Exception {
        try (Connection c = DriverManager.getConnection(url("hub")); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE product (site_id VARCHAR(64), id INT, name VARCHAR(100), price DECIMAL(10,2), PRIMARY KEY (site_id, id))");
            s.execute("CREATE TABLE catalog_item (id INT PRIMARY KEY, name VARCHAR(100))");
            s.execute("CREATE TABLE catalog_item_copy (id INT PRIMARY KEY, name VARCHAR(100))");
        }
        hub = HubNode.start(NodeConfig.parse("""
                node: {id: hub}
                database: {url: "%s"}
                enrollment: {token: "%s"}
                channels:
                  - name: products
                    tables: [{name: product, hubColumn: site_id}]
                  - name: catalog
                    direction: hub-to-sites
                    tables: [{name: catalog_item}]
                  - name: elsewhere
                    direction: hub-to-sites
                    sites: "id = 'another-site'"
                    tables: [{name: other_item, target: catalog_item_copy}]
                """.formatted(url("hub"), TOKEN), Role.HUB, Map.of()), Clock.systemUTC());
        client = new RawHubClient(hub.url());
        Answer reg = client.register(SITE, TOKEN);
        assertThat(reg.status()).as(reg.raw()).isEqualTo(200);
        assertThat(reg.body()).containsEntry("hub", "hub").containsEntry("node", SITE).containsEntry("mode", "push")
                .containsKeys("secret", "intervalMillis", "maxBatches", "channels", "configHash");
    }

    @Test
    void shouldRefusePokesFromStrangersAndFromPushingSites() throws Exception {
        assertThat(client.poke(SITE, null).status()).isEqualTo(401);
        assertThat(client.poke("nobody", client.secret).status()).isEqualTo(401);
        Answer pushing = client.poke(SITE, client.secret);
        assertThat(pushing.status()).isEqualTo(400);
        assertThat(pushing.error()).contains("pushes its batches: a poke is for pull-mode sites");
    }

    @Test
    void shouldRefuseBadFetchesWithAnErrorThatSaysWhatIsWrong() throws Exception {
        assertThat(client.fetch(SITE, null, "channel=catalog&ack=0").status()).isEqualTo(401);
        assertThat(client.fetch(SITE, "wrong", "channel=catalog&ack=0").status()).isEqualTo(401);
        Answer unknown = client.fetch(SITE, client.secret, "channel=nope&ack=0");
        assertThat(unknown.status()).isEqualTo(400);
        assertThat(unknown.error()).contains("unknown or missing hub-to-sites channel 'nope'");
        Answer upstream = client.fetch(SITE, client.secret, "channel=products&ack=0");
        assertThat(upstream.status()).as("a site-to-hub channel is not fetched").isEqualTo(400);
        Answer notRouted = client.fetch(SITE, client.secret, "channel=elsewhere&ack=0");
        assertThat(notRouted.status()).isEqualTo(400);
        assertThat(notRouted.error()).contains("channel 'elsewhere' is not routed to site '" + SITE + "'");
        Answer badAck = client.fetch(SITE, client.secret, "channel=catalog&ack=abc");
        assertThat(badAck.status()).isEqualTo(400);
        assertThat(badAck.error()).contains("'ack' must be a whole number, got 'abc'");
        Answer badWait = client.fetch(SITE, client.secret, "channel=catalog&ack=0&wait=soon");
        assertThat(badWait.status()).isEqualTo(400);
        assertThat(badWait.error()).contains("'wait' must be a whole number, got 'soon'");
        Answer negative = client.fetch(SITE, client.secret, "channel=catalog&ack=-3");
        assertThat(negative.status()).isEqualTo(400);
        assertThat(negative.error()).contains("'ack' must not be negative, got -3");
        assertThat(client.fetch(SITE, client.secret, "channel=catalog&ack=0").status()).isEqualTo(200);
        // A site cannot push into a channel that flows from the hub.
        Answer pushed = client.push(SITE, RawHubClient.stream(RawHubClient.batch(SITE, "catalog", 1,
                RawHubClient.insert("catalog_item", "{\"id\":1,\"name\":\"x\"}"))));
        assertThat(pushed.status()).isEqualTo(400);
        assertThat(pushed.error()).contains("flows from the hub to the sites");
    }

    @AfterEach
    void stopHub() {
        if (hub != null) {
            hub.close();
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private static String row(int id, String name) {
        return "{\"id\":" + id + ",\"name\":\"" + name + "\",\"price\":" + id + ".25}";
    }

    /** Hub table and ledger, as text, to compare before and after. */
    private List<String> hubState() throws SQLException {
        List<String> out = new ArrayList<>();
        try (Connection c = DriverManager.getConnection(url("hub")); Statement s = c.createStatement()) {
            try (ResultSet rs = s.executeQuery("SELECT site_id, id, name, price FROM product ORDER BY site_id, id")) {
                while (rs.next()) {
                    out.add("product " + rs.getString(1) + "/" + rs.getInt(2) + " " + rs.getString(3) + " " + rs.getBigDecimal(4));
                }
            }
            try (ResultSet rs = s.executeQuery("SELECT source, channel, last_batch, rows_applied FROM sync_incoming ORDER BY source, channel")) {
                while (rs.next()) {
                    out.add("ledger " + rs.getString(1) + "/" + rs.getString(2) + " batch=" + rs.getLong(3) + " rows=" + rs.getLong(4));
                }
            }
        }
        return out;
    }

    private long productRows() throws SQLException {
        try (Connection c = DriverManager.getConnection(url("hub")); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM product")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private static void assertError(Answer a, int status, String... named) {
        assertThat(a.status()).as("status of %s", a.raw()).isEqualTo(status);
        assertThat(a.body()).as("error body").containsEntry("status", status).containsKey("error");
        for (String n : named) {
            assertThat(a.error()).as("error message").contains(n);
        }
    }

    /** The hub still answers health checks and still applies a good batch from the raw site. */
    private void assertServing() throws Exception {
        assertThat(client.health()).isEqualTo(200);
    }

    /** Sends batch {@code seq} (one insert of id 1000+seq) and expects it to be applied. */
    private void assertGoodBatchApplies(long seq) throws Exception {
        Answer ok = client.push(SITE, stream(batch(SITE, "products", seq, insert("product", row(1000 + (int) seq, "good")))));
        assertThat(ok.status()).as(ok.raw()).isEqualTo(200);
        assertThat(ok.acks()).containsEntry("products", (int) seq);
    }

    private static byte[] gzip(byte[] raw) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(raw);
        }
        return out.toByteArray();
    }

    // ---- registration ----------------------------------------------------------------------------

    @Test
    void shouldRefuseRegistrationWithWrongEnrollmentToken() throws Exception {
        List<String> before = hubState();
        RawHubClient other = new RawHubClient(hub.url());
        assertError(other.register("intruder", "not-the-token"), 401, "enrollment token rejected", "intruder");
        assertError(other.register("intruder", null), 401, "enrollment token rejected");
        // the intruder is not registered: its pushes are refused as from an unknown node
        assertError(other.push("intruder", "anything", stream(batch("intruder", "products", 1, insert("product", row(1, "x"))))),
                401, "unknown node 'intruder'");
        // a wrong token must not replace the credentials of a registered site
        assertError(other.register(SITE, "not-the-token"), 401, "enrollment token rejected");
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(1);
    }

    @Test
    void shouldRefuseRegistrationWithInvalidNodeId() throws Exception {
        RawHubClient other = new RawHubClient(hub.url());
        for (String bad : new String[] {"bad node!", "", "1starts-with-digit", "x".repeat(64), "../etc", "a;DROP TABLE product"}) {
            assertError(other.register(bad, TOKEN), 400, "not a valid node id");
        }
        assertError(other.registerRaw("{\"token\":\"" + TOKEN + "\"}"), 400, "'node' is missing");
        assertError(other.registerRaw("{\"node\": 42, \"token\":\"" + TOKEN + "\"}"), 400);
        assertError(other.registerRaw("this is not json"), 400, "not valid JSON");
        assertError(other.registerRaw("null"), 400);
        assertError(other.registerRaw("[]"), 400);
        assertError(other.register("hub", TOKEN), 400, "hub's own id");
        assertThat(hub.status().sites()).extracting(NodeStatus.SiteStatus::site).containsExactly(SITE);
        assertServing();
        assertGoodBatchApplies(1);
    }

    // ---- authentication --------------------------------------------------------------------------

    @Test
    void shouldRefusePushFromUnknownNode() throws Exception {
        List<String> before = hubState();
        byte[] body = stream(batch("ghost", "products", 1, insert("product", row(1, "boo"))));
        assertError(client.push("ghost", client.secret, body), 401, "unknown node 'ghost'");
        assertError(client.push(null, client.secret, body), 401, "missing Syncline-Node header");
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(1);
    }

    @Test
    void shouldRefusePushWithWrongSecret() throws Exception {
        List<String> before = hubState();
        byte[] body = stream(batch(SITE, "products", 1, insert("product", row(1, "sneaky"))));
        assertError(client.push(SITE, "wrong-secret", body), 401, "wrong credentials", SITE);
        assertError(client.push(SITE, null, body), 401, "wrong credentials");
        assertError(client.push(SITE, "", body), 401, "wrong credentials");
        // another registered site's valid secret is no good for this node
        RawHubClient other = new RawHubClient(hub.url());
        assertThat(other.register("raw-2", TOKEN).status()).isEqualTo(200);
        assertError(client.push(SITE, other.secret, body), 401, "wrong credentials");
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(1);
    }

    // ---- malformed streams -----------------------------------------------------------------------

    @Test
    void shouldRefuseABodyThatIsNotGzip() throws Exception {
        List<String> before = hubState();
        assertError(client.push(SITE, "{\"format\":\"syncline-batches\",\"version\":1}".getBytes(StandardCharsets.UTF_8)), 400, "not gzip");
        assertThat(hub.status().sites().get(0).lastError()).contains("not gzip");
        assertError(client.push(SITE, new byte[0]), 400);
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(1);
        assertThat(hub.status().sites().get(0).lastError()).isNull();
    }

    @Test
    void shouldRefuseGzipGarbage() throws Exception {
        List<String> before = hubState();
        assertError(client.push(SITE, gzip("<html>502 Bad Gateway</html>".getBytes(StandardCharsets.UTF_8))), 400, "malformed batch stream");
        byte[] random = new byte[4096];
        new java.util.Random(42).nextBytes(random);
        assertError(client.push(SITE, gzip(random)), 400, "malformed batch stream");
        assertError(client.push(SITE, gzip("{\"format\":\"syncline-batches\",\"version\":2}".getBytes(StandardCharsets.UTF_8))), 400,
                "unsupported wire format version 2");
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(1);
    }

    @Test
    void shouldRefuseAStreamTruncatedMidBatchThenApplyTheFullBatchExactlyOnce() throws Exception {
        String[][] changes = new String[1500][];
        for (int i = 0; i < changes.length; i++) {
            changes[i] = insert("product", row(i + 1, "item-" + Integer.toHexString((i + 1) * 7919)));
        }
        byte[] full = stream(batch(SITE, "products", 1, changes));
        List<String> before = hubState();
        for (int cut : new int[] {12, full.length / 4, full.length / 2, full.length * 3 / 4}) {
            Answer a = client.push(SITE, Arrays.copyOf(full, cut));
            assertError(a, 400, "truncated");
            assertThat(a.acks()).as("nothing applied, nothing acknowledged").isEmpty();
            assertThat(hubState()).as("hub after a stream cut at %d of %d bytes", cut, full.length).isEqualTo(before);
        }
        assertServing();
        Answer ok = client.push(SITE, full);
        assertThat(ok.status()).as(ok.raw()).isEqualTo(200);
        assertThat(ok.acks()).containsEntry("products", 1);
        assertThat(productRows()).isEqualTo(1500);
        assertThat(hubState()).contains("ledger " + SITE + "/products batch=1 rows=1500");
        // and once more: a retry of an applied batch changes nothing
        assertThat(client.push(SITE, full).acks()).containsEntry("products", 1);
        assertThat(hubState()).contains("ledger " + SITE + "/products batch=1 rows=1500");
    }

    @Test
    void shouldApplyTheCompleteBatchesOfAStreamTruncatedInALaterBatch() throws Exception {
        String[][] big = new String[1000][];
        for (int i = 0; i < big.length; i++) {
            big[i] = insert("product", row(i + 10, "item-" + Integer.toHexString((i + 1) * 7919)));
        }
        byte[] two = stream(batch(SITE, "products", 1, insert("product", row(1, "one"))), batch(SITE, "products", 2, big));
        // cut well inside batch 2: batch 1 is complete and applied, batch 2 is not
        Answer a = client.push(SITE, Arrays.copyOf(two, two.length * 3 / 4));
        assertError(a, 400, "truncated", "raw-1/products#2");
        assertThat(a.acks()).as("acks of batches applied before the defect").isEqualTo(Map.of("products", 1));
        assertThat(hubState()).containsExactly("product raw-1/1 one 1.25", "ledger raw-1/products batch=1 rows=1");
        // the site resends from batch 1 (its ack was in the error body, but it may not have read it): 1 is skipped, 2 applied
        Answer ok = client.push(SITE, two);
        assertThat(ok.status()).as(ok.raw()).isEqualTo(200);
        assertThat(ok.acks()).containsEntry("products", 2);
        assertThat(productRows()).isEqualTo(1001);
        assertThat(hubState()).contains("ledger raw-1/products batch=2 rows=1001");
    }

    @Test
    void shouldApplyEveryBatchOfAStreamWhoseFinalMarkerIsCutOff() throws Exception {
        byte[] two = stream(batch(SITE, "products", 1, insert("product", row(1, "one"))),
                batch(SITE, "products", 2, insert("product", row(2, "two"))));
        Answer a = client.push(SITE, Arrays.copyOf(two, two.length - 1));
        assertError(a, 400, "truncated");
        // both batches were complete (end markers verified) and are applied; the error says the stream itself was cut
        assertThat(a.acks()).isEqualTo(Map.of("products", 2));
        assertThat(hubState()).containsExactly("product raw-1/1 one 1.25", "product raw-1/2 two 2.25", "ledger raw-1/products batch=2 rows=2");
        assertThat(client.push(SITE, two).acks()).containsEntry("products", 2);
        assertThat(hubState()).contains("ledger raw-1/products batch=2 rows=2");
    }

    // ---- ordering and duplicates -----------------------------------------------------------------

    @Test
    void shouldAcknowledgeADuplicatedBatchWithoutApplyingItTwice() throws Exception {
        byte[] first = stream(batch(SITE, "products", 1, insert("product", row(1, "one"))));
        Answer a = client.push(SITE, first);
        assertThat(a.status()).as(a.raw()).isEqualTo(200);
        assertThat(a.acks()).containsEntry("products", 1);
        // batch 2 deletes the row: if batch 1 were applied again, the row would come back
        assertThat(client.push(SITE, stream(batch(SITE, "products", 2, delete("product", "{\"id\":1}")))).acks())
                .containsEntry("products", 2);
        List<String> applied = hubState();
        assertThat(applied).containsExactly("ledger raw-1/products batch=2 rows=2");
        Answer again = client.push(SITE, first);
        assertThat(again.status()).as(again.raw()).isEqualTo(200);
        assertThat(again.acks()).containsEntry("products", 2);
        assertThat(again.body()).containsKey("config");
        // both at once, as a site resends after a lost response
        Answer both = client.push(SITE, stream(batch(SITE, "products", 1, insert("product", row(1, "one"))),
                batch(SITE, "products", 2, delete("product", "{\"id\":1}"))));
        assertThat(both.status()).isEqualTo(200);
        assertThat(both.acks()).containsEntry("products", 2);
        assertThat(hubState()).isEqualTo(applied);
    }

    @Test
    void shouldRefuseAnOutOfOrderBatchNamingTheExpectedNumber() throws Exception {
        assertError(client.push(SITE, stream(batch(SITE, "products", 3, insert("product", row(3, "three"))))), 409,
                "out of order", "expected batch 1");
        assertThat(hubState()).isEmpty();
        assertGoodBatchApplies(1);
        List<String> before = hubState();
        Answer a = client.push(SITE, stream(batch(SITE, "products", 5, insert("product", row(5, "five")))));
        assertError(a, 409, "out of order", "expected batch 2");
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(2);
    }

    // ---- batches the hub cannot take -------------------------------------------------------------

    @Test
    void shouldRefuseABatchForAnUnknownChannel() throws Exception {
        List<String> before = hubState();
        assertError(client.push(SITE, stream(batch(SITE, "orders", 1, insert("product", row(1, "x"))))), 400,
                "unknown channel 'orders'");
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(1);
    }

    @Test
    void shouldRefuseABatchWhoseSourceIsNotTheSender() throws Exception {
        RawHubClient victim = new RawHubClient(hub.url());
        assertThat(victim.register("victim", TOKEN).status()).isEqualTo(200);
        List<String> before = hubState();
        assertError(client.push(SITE, stream(batch("victim", "products", 1, insert("product", row(1, "forged"))))), 400,
                "names source 'victim'", "sent by node '" + SITE + "'");
        assertThat(hubState()).isEqualTo(before);
        // the victim's own batch 1 is still expected and applies
        Answer v = victim.push("victim", stream(batch("victim", "products", 1, insert("product", row(1, "real")))));
        assertThat(v.status()).as(v.raw()).isEqualTo(200);
        assertThat(hubState()).containsExactly("product victim/1 real 1.25", "ledger victim/products batch=1 rows=1");
        assertServing();
        assertGoodBatchApplies(1);
    }

    @Test
    void shouldRefuseABatchWithAColumnUnknownAtTheHubUntilACorrectBatchIsSent() throws Exception {
        assertGoodBatchApplies(1);
        List<String> before = hubState();
        // 1500 good rows first (more than one JDBC batch), then the bad one: nothing of batch 2 may stay
        String[][] changes = new String[1501][];
        for (int i = 0; i < 1500; i++) {
            changes[i] = insert("product", row(i + 2000, "fine"));
        }
        changes[1500] = insert("product", "{\"id\":9999,\"name\":\"bad\",\"price\":1,\"colour\":\"red\"}");
        Answer a = client.push(SITE, stream(batch(SITE, "products", 2, changes)));
        assertError(a, 400, "column 'colour'", "does not exist");
        assertThat(a.acks()).isEmpty();
        assertThat(hubState()).isEqualTo(before);
        // resent as is, it is refused again: still unapplied
        assertError(client.push(SITE, stream(batch(SITE, "products", 2, changes))), 400, "colour");
        assertThat(hubState()).isEqualTo(before);
        assertThat(hub.status().sites().get(0).lastError()).contains("colour");
        // a corrected batch with the same number is accepted
        String[][] fixed = Arrays.copyOf(changes, 1500);
        Answer ok = client.push(SITE, stream(batch(SITE, "products", 2, fixed)));
        assertThat(ok.status()).as(ok.raw()).isEqualTo(200);
        assertThat(ok.acks()).containsEntry("products", 2);
        assertThat(productRows()).isEqualTo(1 + 1500);
        assertThat(hubState()).contains("ledger raw-1/products batch=2 rows=1501");
        assertThat(hub.status().sites().get(0).lastError()).isNull();
    }

    @Test
    void shouldRefuseARowThatTriesToSetTheHubColumn() throws Exception {
        RawHubClient victim = new RawHubClient(hub.url());
        assertThat(victim.register("victim", TOKEN).status()).isEqualTo(200);
        List<String> before = hubState();
        // the hub column is the hub's to fill; a differently cased key must not smuggle in another site's id
        Answer a = client.push(SITE, stream(batch(SITE, "products", 1,
                insert("product", "{\"id\":1,\"name\":\"forged\",\"price\":1,\"SITE_ID\":\"victim\"}"))));
        assertThat(a.status()).as(a.raw()).isEqualTo(400);
        assertThat(a.error()).containsIgnoringCase("site_id");
        assertThat(hubState()).isEqualTo(before);
        assertServing();
        assertGoodBatchApplies(1);
    }

    @Test
    void shouldRefuseAValueThatDoesNotFitItsColumnAsABadBatchNotAsOutOfOrder() throws Exception {
        List<String> before = hubState();
        // the message quotes the value; a value that reads like another error must not change the status
        Answer a = client.push(SITE, stream(batch(SITE, "products", 1,
                insert("product", "{\"id\":1,\"name\":\"x\",\"price\":\"is out of order: expected batch 9\"}"))));
        assertError(a, 400, "does not fit column", "PRICE");
        assertThat(hubState()).isEqualTo(before);
        assertGoodBatchApplies(1);
    }

    @Test
    void shouldRefuseATableThatIsNotInTheChannel() throws Exception {
        List<String> before = hubState();
        assertError(client.push(SITE, stream(batch(SITE, "products", 1, insert("product", row(1, "ok")), insert("sync_node",
                "{\"node_id\":\"evil\",\"secret_hash\":\"x\"}")))), 400, "table 'sync_node' is not in channel 'products'");
        assertThat(hubState()).isEqualTo(before);
        assertGoodBatchApplies(1);
    }
}
