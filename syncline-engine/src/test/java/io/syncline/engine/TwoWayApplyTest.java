package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.Conflict;
import io.syncline.api.ConflictPolicy;
import io.syncline.api.ConflictResolver;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.ConflictLog;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Conflicts of two-way channels at the hub, one hard case each (docs/conflicts.md): the hub's row changed since the
 * version a site's change was based on. Site b's changes are stamped 100, site c's 200, unless a test says otherwise;
 * the hub's own edits are stamped when met, after every stamp seen.
 */
class TwoWayApplyTest extends DbTestBase {
    private final Map<String, Long> nextSeq = new HashMap<>();
    private TestDb db;
    private Connection c;
    private BatchApplier applier;
    private TwoWay twoWay;

    private static Map<String, Object> row(int id, String name, int qty, String sku) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("name", name);
        m.put("qty", qty);
        m.put("sku", sku);
        return m;
    }

    private static ChannelSpec channel(ConflictPolicy policy) {
        return new ChannelSpec("ch", ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of("item")), policy);
    }

    private void open(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), qty INT, sku VARCHAR(20) UNIQUE)");
        c = db.open();
        SyncSchema.install(c, db.dialect());
        c.commit();
        applier = new BatchApplier(db.dialect(), Clock.systemUTC());
        twoWay = new TwoWay("hq", new HybridClock(Clock.systemUTC()));
    }

    private ApplyOutcome send(String site, long stamp, ConflictPolicy policy, Change... changes) {
        long seq = nextSeq.merge(site, 1L, Long::sum);
        BatchHeader h = new BatchHeader(new BatchId(site, "ch", seq), Instant.now(), null, stamp);
        return applier.applyTwoWay(c, h, channel(policy), List.of(changes).iterator(), twoWay);
    }

    private void hubWrites(String sql) throws Exception {
        try (Statement s = c.createStatement()) {
            s.executeUpdate(sql);
        }
        c.commit();
    }

    private List<String> rows() throws Exception {
        return Rows.of(c, db.dialect(), "item");
    }

    private List<ConflictLog.Entry> conflicts() throws Exception {
        List<ConflictLog.Entry> list = new ArrayList<>(ConflictLog.list(c, false, 100));
        c.commit();
        java.util.Collections.reverse(list);
        return list;
    }

    /** What the hub queued for every site beyond its captured changes: "R <row>" or "D <key>", oldest first. */
    private List<String> resent() throws Exception {
        List<String> out = new ArrayList<>();
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT op, old_row, new_row FROM sync_outbox WHERE op <> 'M' ORDER BY seq")) {
            while (rs.next()) {
                out.add(rs.getString(1) + " " + (rs.getString(1).equals("D") ? rs.getString(2) : rs.getString(3)));
            }
        }
        c.commit();
        return out;
    }

    private static final ConflictPolicy LWW = ConflictPolicy.of(ConflictPolicy.Kind.LAST_WRITER_WINS);
    private static final ConflictPolicy HUB_WINS = ConflictPolicy.of(ConflictPolicy.Kind.HUB_WINS);
    private static final ConflictPolicy MERGE = ConflictPolicy.of(ConflictPolicy.Kind.COLUMN_MERGE);

    private static String json(int id, String name, int qty, String sku) {
        return Json.write(row(id, name, qty, sku));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldApplyChangesMadeOnTheHubsVersionWithoutConflict(TestDb.Kind kind) throws Exception {
        open(kind);
        assertThat(send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")))).isInstanceOf(ApplyOutcome.Applied.class);
        send("c", 200, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "a", 5, "S1")),
                new Change.Insert("item", row(2, "x", 2, "S2")));
        send("b", 300, LWW, new Change.Delete("item", row(2, "x", 2, "S2")));
        assertThat(rows()).containsExactly(json(1, "a", 5, "S1"));
        assertThat(conflicts()).isEmpty();
        assertThat(resent()).isEmpty();
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldLetTheLaterStampWinAnUpdateAgainstAnUpdateAndSendTheOutcomeToEverySite(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("b", 150, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "from-b", 1, "S1")));
        // c changed the row it had, (1, a, 1), later than b by the clocks: c wins.
        assertThat(send("c", 200, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "from-c", 7, "S1"))))
                .isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(rows()).containsExactly(json(1, "from-c", 7, "S1"));
        // An older change than the hub's version loses.
        send("b", 120, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "stale", 1, "S1")));
        assertThat(rows()).containsExactly(json(1, "from-c", 7, "S1"));

        List<ConflictLog.Entry> list = conflicts();
        assertThat(list).hasSize(2);
        assertThat(list.get(0).kind()).isEqualTo("UPDATE_UPDATE");
        assertThat(list.get(0).winner()).isEqualTo("c");
        assertThat(list.get(0).status()).isEqualTo(ConflictLog.RESOLVED);
        assertThat(Json.parseRow(list.get(0).hubRow())).isEqualTo(row(1, "from-b", 1, "S1"));
        assertThat(Json.parseRow(list.get(0).siteRow())).isEqualTo(row(1, "from-c", 7, "S1"));
        assertThat(list.get(1).winner()).isEqualTo("c");
        assertThat(list.get(1).site()).isEqualTo("b");
        assertThat(resent()).containsExactly("R " + json(1, "from-c", 7, "S1"), "R " + json(1, "from-c", 7, "S1"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldTreatAnEditMadeAtTheHubAsTheLatestWriter(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")));
        hubWrites("UPDATE item SET name = 'at-hq' WHERE id = 1");
        send("c", Long.MAX_VALUE >> 20, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "from-c", 1, "S1")));
        // The hub met its own edit after seeing c's stamp: it is stamped later, and wins.
        assertThat(rows()).containsExactly(json(1, "at-hq", 1, "S1"));
        assertThat(conflicts()).singleElement().satisfies(e -> assertThat(e.winner()).isEqualTo("hq"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldMergeUpdatesOfDifferentColumnsAndGiveACommonColumnToTheLastWriter(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, MERGE, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("b", 150, MERGE, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b-name", 1, "S1")));
        send("c", 200, MERGE, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "a", 9, "S1")));
        assertThat(rows()).containsExactly(json(1, "b-name", 9, "S1"));
        send("b", 120, MERGE, new Change.Update("item", row(1, "b-name", 1, "S1"), row(1, "b-name", 1, "S9")));
        // b changed sku (nobody else did) and its qty is the base: sku merges in, c's qty stays.
        assertThat(rows()).containsExactly(json(1, "b-name", 9, "S9"));
        send("b", 130, MERGE, new Change.Update("item", row(1, "b-name", 1, "S9"), row(1, "b-name", 4, "S9")));
        // Both changed qty; c's stamp 200 is later than b's 130.
        assertThat(rows()).containsExactly(json(1, "b-name", 9, "S9"));
        assertThat(conflicts()).extracting(ConflictLog.Entry::winner).containsExactly("merge", "merge", "merge");
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldSettleAnUpdateOfADeletedRowByThePolicy(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")), new Change.Insert("item", row(2, "a", 2, "S2")));
        send("b", 150, LWW, new Change.Delete("item", row(1, "a", 1, "S1")), new Change.Delete("item", row(2, "a", 2, "S2")));
        send("c", 200, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "kept", 1, "S1")));
        send("c", 200, HUB_WINS, new Change.Update("item", row(2, "a", 2, "S2"), row(2, "lost", 2, "S2")));
        assertThat(rows()).containsExactly(json(1, "kept", 1, "S1"));
        assertThat(conflicts()).extracting(ConflictLog.Entry::kind).containsExactly("UPDATE_DELETED", "UPDATE_DELETED");
        // c holds (2, lost): every site is told that row 2 is gone.
        assertThat(resent()).containsExactly("R " + json(1, "kept", 1, "S1"), "D {\"id\":2}");
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldSettleADeleteOfAnUpdatedRowByThePolicy(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")), new Change.Insert("item", row(2, "a", 2, "S2")));
        send("b", 150, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 1, "S1")),
                new Change.Update("item", row(2, "a", 2, "S2"), row(2, "b", 2, "S2")));
        send("c", 200, LWW, new Change.Delete("item", row(1, "a", 1, "S1")));
        send("c", 120, LWW, new Change.Delete("item", row(2, "a", 2, "S2")));
        assertThat(rows()).containsExactly(json(2, "b", 2, "S2"));
        assertThat(conflicts()).extracting(ConflictLog.Entry::kind, ConflictLog.Entry::winner)
                .containsExactly(org.assertj.core.groups.Tuple.tuple("DELETE_UPDATED", "c"), org.assertj.core.groups.Tuple.tuple("DELETE_UPDATED", "b"));
        assertThat(resent()).containsExactly("D {\"id\":1}", "R " + json(2, "b", 2, "S2"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldHandleADeleteThenReinsertOfTheSameKey(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("b", 150, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 1, "S1")));
        // c deleted the row and inserted it again, later than b's update: both of its changes stand.
        send("c", 200, LWW, new Change.Delete("item", row(1, "a", 1, "S1")), new Change.Insert("item", row(1, "new", 3, "S3")));
        assertThat(rows()).containsExactly(json(1, "new", 3, "S3"));
        // The same from a site whose stamp is older: its delete loses, and so does its insert on the key b's row holds.
        send("b", 300, LWW, new Change.Update("item", row(1, "new", 3, "S3"), row(1, "b2", 3, "S3")));
        send("c", 250, LWW, new Change.Delete("item", row(1, "new", 3, "S3")), new Change.Insert("item", row(1, "newer", 4, "S4")));
        assertThat(rows()).containsExactly(json(1, "b2", 3, "S3"));
        assertThat(conflicts()).extracting(ConflictLog.Entry::kind)
                .containsExactly("DELETE_UPDATED", "DELETE_UPDATED", "INSERT_EXISTS");
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldMoveTheRowWhenAKeyChangeWinsAgainstAnUpdate(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")), new Change.Insert("item", row(2, "a", 2, "S2")));
        send("b", 150, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 1, "S1")),
                new Change.Update("item", row(2, "a", 2, "S2"), row(2, "b", 2, "S2")));
        // c moved row 1 to key 10 (later: it wins whole) and row 2 to key 20 (column merge: the key moves, b's name stays).
        send("c", 200, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(10, "a", 1, "S1")));
        send("c", 200, MERGE, new Change.Update("item", row(2, "a", 2, "S2"), row(20, "a", 2, "S2")));
        assertThat(rows()).containsExactly(json(10, "a", 1, "S1"), json(20, "b", 2, "S2"));
        assertThat(resent()).containsExactly("D {\"id\":1}", "R " + json(10, "a", 1, "S1"), "D {\"id\":2}", "R " + json(20, "b", 2, "S2"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepAUniqueValueWithTheRowThatTookItFirst(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(2, "b", 1, "SKU-X")));
        ApplyOutcome next = send("c", 200, LWW, new Change.Insert("item", row(3, "c", 1, "SKU-X")),
                new Change.Insert("item", row(4, "c", 1, "SKU-Y")));
        assertThat(next).isInstanceOf(ApplyOutcome.Applied.class); // the rest of c's batch is applied
        assertThat(rows()).containsExactly(json(2, "b", 1, "SKU-X"), json(4, "c", 1, "SKU-Y"));
        assertThat(conflicts()).singleElement().satisfies(e -> {
            assertThat(e.kind()).isEqualTo("UNIQUE_TAKEN");
            assertThat(e.policy()).isEqualTo("unique");
            assertThat(Json.parseRow(e.siteRow())).isEqualTo(row(3, "c", 1, "SKU-X"));
        });
        assertThat(resent()).containsExactly("D {\"id\":3}");
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldPreferTheSiteListedFirstWhateverTheClocks(TestDb.Kind kind) throws Exception {
        open(kind);
        ConflictPolicy priority = new ConflictPolicy(ConflictPolicy.Kind.SITE_PRIORITY, List.of("c", "b"), null);
        send("b", 100, priority, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("c", 150, priority, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "c", 1, "S1")));
        send("b", 900, priority, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 1, "S1")));
        assertThat(rows()).containsExactly(json(1, "c", 1, "S1"));
        assertThat(conflicts()).singleElement().satisfies(e -> assertThat(e.winner()).isEqualTo("c"));
    }

    /** A resolver of a user's own: the larger quantity wins, other columns from the site. */
    public static final class MaxQuantity implements ConflictResolver {
        @Override
        public Optional<Map<String, Object>> resolve(Conflict conflict) {
            if (conflict.siteRow() == null || conflict.hubRow() == null) {
                return Optional.ofNullable(conflict.hubRow());
            }
            Map<String, Object> out = new LinkedHashMap<>(conflict.siteRow());
            out.put("qty", Math.max(((Number) conflict.siteRow().get("qty")).intValue(), ((Number) conflict.hubRow().get("qty")).intValue()));
            return Optional.of(out);
        }
    }

    /** A resolver that fails. */
    public static final class Broken implements ConflictResolver {
        @Override
        public Optional<Map<String, Object>> resolve(Conflict conflict) {
            throw new IllegalStateException("broken on purpose");
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldLeaveTheConflictOpenWithTheHubsVersionWhenTheResolverFails(TestDb.Kind kind) throws Exception {
        open(kind);
        ConflictPolicy broken = new ConflictPolicy(ConflictPolicy.Kind.CUSTOM, List.of(), Broken.class.getName());
        send("b", 100, broken, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("b", 150, broken, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 1, "S1")));
        ApplyOutcome c1 = send("c", 200, broken, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "c", 1, "S1")),
                new Change.Insert("item", row(2, "next", 2, "S2")));
        assertThat(c1).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(rows()).containsExactly(json(1, "b", 1, "S1"), json(2, "next", 2, "S2"));
        assertThat(conflicts()).singleElement().satisfies(e -> {
            assertThat(e.status()).isEqualTo(ConflictLog.OPEN);
            assertThat(e.winner()).isEqualTo("b");
        });
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldAskAResolverOfTheUsersOwn(TestDb.Kind kind) throws Exception {
        open(kind);
        ConflictPolicy custom = new ConflictPolicy(ConflictPolicy.Kind.CUSTOM, List.of(), MaxQuantity.class.getName());
        send("b", 100, custom, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("b", 150, custom, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 8, "S1")));
        send("c", 200, custom, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "c", 3, "S1")));
        assertThat(rows()).containsExactly(json(1, "c", 8, "S1"));
        assertThat(conflicts()).singleElement().satisfies(e -> assertThat(e.winner()).isEqualTo("custom"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepAManualConflictOpenWithTheProvisionalWinnerUntilAnOperatorSettlesIt(TestDb.Kind kind) throws Exception {
        open(kind);
        ConflictPolicy manual = ConflictPolicy.of(ConflictPolicy.Kind.MANUAL);
        send("b", 100, manual, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("b", 150, manual, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 1, "S1")));
        send("c", 200, manual, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "c", 1, "S1")));
        assertThat(rows()).containsExactly(json(1, "c", 1, "S1")); // provisional: the last writer
        ConflictLog.Entry open = conflicts().getFirst();
        assertThat(open.status()).isEqualTo(ConflictLog.OPEN);
        assertThat(ConflictLog.counts(c)).isEqualTo(new ConflictLog.Counts(1, 1));
        c.commit();
        resent(); // the provisional outcome went out

        applier.settle(c, channel(manual), "item", Json.parseRow(open.rowKey()), Json.parseRow(open.resultRow()),
                Json.parseRow(open.hubRow()), false, twoWay);
        ConflictLog.settle(c, open.id(), "hub", Json.parseRow(open.hubRow()), "alice", Instant.now());
        c.commit();
        assertThat(rows()).containsExactly(json(1, "b", 1, "S1"));
        assertThat(ConflictLog.get(c, open.id()).status()).isEqualTo(ConflictLog.SETTLED);
        assertThat(ConflictLog.counts(c)).isEqualTo(new ConflictLog.Counts(1, 0));
        c.commit();
        assertThat(resent()).last().isEqualTo("R " + json(1, "b", 1, "S1"));
        // A later site change based on the operator's version is no conflict.
        send("c", 210, manual, new Change.Update("item", row(1, "b", 1, "S1"), row(1, "b", 2, "S1")));
        assertThat(conflicts()).hasSize(1);
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRefuseAnOperatorsVersionThatWouldOverwriteAnotherRowOrALaterEdit(TestDb.Kind kind) throws Exception {
        open(kind);
        ConflictPolicy manual = ConflictPolicy.of(ConflictPolicy.Kind.MANUAL);
        send("b", 100, manual, new Change.Insert("item", row(1, "a", 1, "S1")), new Change.Insert("item", row(2, "x", 2, "S2")));
        send("b", 150, manual, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "b", 1, "S1")));
        send("c", 120, manual, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "c", 1, "S1")));
        ConflictLog.Entry open = conflicts().getFirst();
        Map<String, Object> key = Json.parseRow(open.rowKey());
        Map<String, Object> left = Json.parseRow(open.resultRow());
        ChannelSpec ch = channel(manual);
        assertThatThrownBy(() -> applier.settle(c, ch, "item", key, left, row(2, "moved", 1, "S1"), false, twoWay))
                .isInstanceOf(BatchApplier.SettleRefusedException.class).hasMessageContaining("key {\"id\":2} belongs to another row");
        c.rollback();
        assertThatThrownBy(() -> applier.settle(c, ch, "item", key, left, row(1, "mine", 1, "S2"), false, twoWay))
                .isInstanceOf(BatchApplier.SettleRefusedException.class).hasMessageContaining("takes a unique value of another row");
        c.rollback();
        send("b", 300, manual, new Change.Update("item", row(1, "b", 1, "S1"), row(1, "b", 7, "S1"))); // a later edit
        assertThatThrownBy(() -> applier.settle(c, ch, "item", key, left, row(1, "mine", 1, "S1"), false, twoWay))
                .isInstanceOf(BatchApplier.SettleRefusedException.class).hasMessageContaining("changed since the conflict");
        c.rollback();
        assertThat(rows()).containsExactly(json(1, "b", 7, "S1"), json(2, "x", 2, "S2"));
        applier.settle(c, ch, "item", key, left, row(1, "mine", 1, "S1"), true, twoWay); // forced
        c.commit();
        assertThat(rows()).containsExactly(json(1, "mine", 1, "S1"), json(2, "x", 2, "S2"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepTheHubsRowWhenASitesFullCopyMeetsAnotherVersion(TestDb.Kind kind) throws Exception {
        open(kind);
        send("b", 100, LWW, new Change.Insert("item", row(1, "a", 1, "S1")));
        send("c", 200, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "c", 1, "S1")));
        // b sends its whole table again (it started over): its copy of row 1 is older, whatever its batch's stamp.
        send("b", 300, LWW, new Change.Reload("item", row(1, "a", 1, "S1")), new Change.Reload("item", row(3, "new", 3, "S3")));
        assertThat(rows()).containsExactly(json(1, "c", 1, "S1"), json(3, "new", 3, "S3"));
        assertThat(conflicts()).singleElement().satisfies(e -> {
            assertThat(e.policy()).isEqualTo("copy");
            assertThat(e.winner()).isEqualTo("c");
        });
        assertThat(resent()).containsExactly("R " + json(1, "c", 1, "S1"));
    }

    @org.junit.jupiter.api.Test
    void shouldApplyWhatAPartialUniqueIndexAllowsAndSettleWhatAnExpressionIndexRefuses() throws Exception {
        open(TestDb.Kind.POSTGRES);
        db.exec("ALTER TABLE item DROP CONSTRAINT item_sku_key", "CREATE UNIQUE INDEX item_sku_live ON item (sku) WHERE qty > 0",
                "CREATE UNIQUE INDEX item_name_ci ON item (lower(name))");
        send("b", 100, LWW, new Change.Insert("item", row(1, "Bolt", 0, "S1")));
        // The partial index allows a second S1 while the first has qty 0; the expression index refuses 'BOLT'.
        ApplyOutcome next = send("c", 200, LWW, new Change.Insert("item", row(2, "nut", 5, "S1")),
                new Change.Insert("item", row(3, "BOLT", 1, "S3")), new Change.Insert("item", row(4, "washer", 1, "S4")));
        assertThat(next).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(rows()).containsExactly(json(1, "Bolt", 0, "S1"), json(2, "nut", 5, "S1"), json(4, "washer", 1, "S4"));
        assertThat(conflicts()).singleElement().satisfies(e -> assertThat(e.kind()).isEqualTo("UNIQUE_TAKEN"));
        assertThat(resent()).containsExactly("D {\"id\":3}");
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepForeignKeysWhenASiteDeletesAReferencedRowOrAddsARowWhoseParentIsGone(TestDb.Kind kind) throws Exception {
        open(kind);
        db.exec("CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(20))",
                "CREATE TABLE order_line (id INT PRIMARY KEY, order_id INT NOT NULL REFERENCES orders (id), qty INT)");
        ChannelSpec orders = new ChannelSpec("ch", ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of("orders"),
                TableSpec.of("order_line")), LWW);
        Map<String, Object> order1 = new LinkedHashMap<>(Map.of("id", 1, "customer", "ann"));
        Map<String, Object> order2 = new LinkedHashMap<>(Map.of("id", 2, "customer", "bob"));
        Map<String, Object> line10 = new LinkedHashMap<>(Map.of("id", 10, "order_id", 1, "qty", 3));
        Map<String, Object> line11 = new LinkedHashMap<>(Map.of("id", 11, "order_id", 2, "qty", 1));
        sendTo(orders, "b", 100, new Change.Insert("orders", order1), new Change.Insert("orders", order2));
        sendTo(orders, "c", 150, new Change.Insert("order_line", line10)); // c adds a line to order 1
        sendTo(orders, "d", 160, new Change.Delete("orders", order2));     // d removes order 2
        // b, which saw neither, removes order 1 (its lines went first, as its own foreign key required), and c adds a
        // line to order 2: both would break the hub's foreign keys, and are settled so that they hold.
        ApplyOutcome b = sendTo(orders, "b", 300, new Change.Delete("orders", order1));
        ApplyOutcome c2 = sendTo(orders, "c", 310, new Change.Insert("order_line", line11));
        assertThat(b).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(c2).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(Rows.of(c, db.dialect(), "orders")).containsExactly("{\"id\":1,\"customer\":\"ann\"}");
        assertThat(Rows.of(c, db.dialect(), "order_line")).containsExactly("{\"id\":10,\"order_id\":1,\"qty\":3}");
        assertThat(conflicts()).extracting(ConflictLog.Entry::kind, ConflictLog.Entry::policy).containsExactly(
                org.assertj.core.groups.Tuple.tuple("REFERENCE", "reference"), org.assertj.core.groups.Tuple.tuple("REFERENCE", "reference"));
        // Order 1 goes to every site again, and so does the line that keeps it (b removed it before deleting the order).
        assertThat(resent()).containsExactly("R {\"id\":1,\"customer\":\"ann\"}", "R {\"id\":10,\"order_id\":1,\"qty\":3}",
                "D {\"id\":11}");
    }

    private ApplyOutcome sendTo(ChannelSpec ch, String site, long stamp, Change... changes) {
        long seq = nextSeq.merge(site, 1L, Long::sum);
        BatchHeader h = new BatchHeader(new BatchId(site, "ch", seq), Instant.now(), null, stamp);
        return applier.applyTwoWay(c, h, ch, List.of(changes).iterator(), twoWay);
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldLetLocalRowsAtASiteGiveWayToTheHubsOrder(TestDb.Kind kind) throws Exception {
        open(kind); // here: a site's database, applying the hub's batches
        db.exec("CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(20))",
                "CREATE TABLE order_line (id INT PRIMARY KEY, order_id INT NOT NULL REFERENCES orders (id), qty INT)",
                "INSERT INTO orders VALUES (1, 'ann'), (2, 'bob')",
                // changes of this site the hub has not settled yet: a line on order 2, and SKU-7 on item 5
                "INSERT INTO order_line VALUES (11, 2, 1)", "INSERT INTO item VALUES (5, 'mine', 1, 'SKU-7')");
        ChannelSpec ch = new ChannelSpec("ch", ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of("item"), TableSpec.of("orders"),
                TableSpec.of("order_line")), LWW);
        db.exec("DELETE FROM orders WHERE id = 1"); // and this site deleted order 1, which the hub still has
        // The hub removed order 2, gave SKU-7 to item 9, and has a new line on order 1: in its order, nothing collides.
        ApplyOutcome out = applier.apply(c, new BatchHeader(new BatchId("hq", "ch", 1), Instant.now(), null, 500), ch, List.<Change>of(
                new Change.Delete("orders", new LinkedHashMap<>(Map.of("id", 2, "customer", "bob"))),
                new Change.Insert("item", row(9, "theirs", 1, "SKU-7")),
                new Change.Insert("order_line", new LinkedHashMap<>(Map.of("id", 12, "order_id", 1, "qty", 5)))).iterator());
        assertThat(out).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(Rows.of(c, db.dialect(), "orders")).isEmpty();
        assertThat(Rows.of(c, db.dialect(), "order_line")).isEmpty(); // line 12 waits for order 1 to come back
        assertThat(rows()).containsExactly(json(9, "theirs", 1, "SKU-7"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldOrderAnEditMadeAtTheHubByWhenItWasMadeOnceItIsSealed(TestDb.Kind kind) throws Exception {
        open(kind);
        ChannelSpec ch = channel(LWW);
        new io.syncline.engine.capture.CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(ch.fromHub()));
        c.commit();
        io.syncline.engine.outbox.OutboxStore outbox = new io.syncline.engine.outbox.OutboxStore(db.dialect(), Clock.systemUTC());
        HybridClock hubClock = new HybridClock(Clock.systemUTC());
        long now = System.currentTimeMillis();
        send("b", (now - 120_000) << 16, LWW, new Change.Insert("item", row(1, "a", 1, "S1")));
        try (Connection writer = db.open()) {
            hubWrites("UPDATE item SET qty = 2 WHERE id = 1"); // HQ, now
            long after = System.currentTimeMillis();
            var first = outbox.seal(c, "ch").orElseThrow();
            assertThat(applier.recordHubEdits(c, writer, first, ch, "hq", 0, hubClock)).isEqualTo(1);
            ConflictLog.Stamp recorded = ConflictLog.stamp(c, tableName(), "{\"id\":1}");
            c.commit();
            assertThat(recorded.writer()).isEqualTo("hq");
            assertThat(recorded.stamp() >> 16).as("the edit's capture time").isBetween(now - 5_000, after + 5_000);
            // Site c's edit of the version before, made a minute after HQ's: the later one wins.
            send("c", (now + 60_000) << 16, LWW, new Change.Update("item", row(1, "a", 1, "S1"), row(1, "c", 1, "S1")));
            assertThat(rows()).containsExactly(json(1, "c", 1, "S1"));
            assertThat(conflicts()).extracting(ConflictLog.Entry::winner).containsExactly("c");
            // Rows the hub wrote for a site are not the hub's own edits.
            assertThat(applier.recordHubEdits(c, writer, outbox.seal(c, "ch").orElseThrow(), ch, "hq", first.stamp(), hubClock)).isZero();
        }
        // An edit not recorded yet is stamped when a site's change meets it: it wins.
        hubWrites("UPDATE item SET qty = 4 WHERE id = 1");
        send("c", (now + 120_000) << 16, LWW, new Change.Update("item", row(1, "c", 1, "S1"), row(1, "c", 5, "S1")));
        assertThat(rows()).containsExactly(json(1, "c", 4, "S1"));
    }

    private String tableName() throws Exception {
        String name = io.syncline.engine.schema.SchemaReader.read(c, "item").name();
        c.commit();
        return name;
    }
}
