package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.BadBatchException;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.ConflictPolicy;
import io.syncline.api.RetriableSyncException;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.apply.Guards;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A site of a two-way channel does not get its own changes back (docs/conflicts.md, "A change never comes back"): its
 * seals guard the rows it changed, the hub's older changes to those rows are skipped, and the hub's mark of the site's
 * batch releases them. Here: the site's side, on a real site database with capture, and the hub's mark.
 */
class GuardsTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of("item")),
            ConflictPolicy.of(ConflictPolicy.Kind.LAST_WRITER_WINS));
    private TestDb db;
    private Connection c;
    private OutboxStore outbox;
    private BatchApplier applier;

    private void site(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        c = db.open();
        SyncSchema.install(c, db.dialect());
        c.commit();
        Clock clock = Clock.systemUTC();
        new CaptureInstaller(db.dialect(), clock).install(c, List.of(CHANNEL));
        c.commit();
        Guards guards = new Guards(db.dialect(), "ch"::equals);
        outbox = new OutboxStore(db.dialect(), clock, new HybridClock(clock), guards);
        applier = new BatchApplier(db.dialect(), clock, outbox, guards);
    }

    private static Map<String, Object> row(int id, String name) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("name", name);
        return m;
    }

    private static String json(int id, String name) {
        return Json.write(row(id, name));
    }

    private static Change update(int id, String from, String to) {
        return new Change.Update("item", row(id, from), row(id, to));
    }

    /** A batch of the hub, as the site fetches it. */
    private ApplyOutcome fromHub(long seq, Change... changes) {
        return fromHub(seq, List.of(changes).iterator());
    }

    private ApplyOutcome fromHub(long seq, Iterator<Change> changes) {
        return applier.apply(c, new BatchHeader(new BatchId("hq", "ch", seq), Instant.now(), null, 1), CHANNEL.fromHub(), changes);
    }

    /** A local transaction of the site's application. */
    private void local(String sql) throws Exception {
        try (Statement s = c.createStatement()) {
            s.executeUpdate(sql);
        }
        c.commit();
    }

    private long seal() throws Exception {
        return outbox.seal(c, "ch").orElseThrow().sequence();
    }

    private List<String> rows() throws Exception {
        return Rows.of(c, db.dialect(), "item");
    }

    private long guards() throws Exception {
        long n = Guards.count(c, "ch");
        c.commit();
        return n;
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldSkipTheHubsOlderChangesToARowTheSiteChangedUntilTheHubMarksItsBatch(TestDb.Kind kind) throws Exception {
        site(kind);
        // The race value comparison cannot see: site c sets the row to y and back to v, while this site, which had v, sets w.
        fromHub(1, new Change.Insert("item", row(1, "v")));
        local("UPDATE item SET name = 'w' WHERE id = 1");
        assertThat(seal()).isEqualTo(1);
        assertThat(guards()).isEqualTo(1);

        assertThat(fromHub(2, update(1, "v", "y"), new Change.Insert("item", row(2, "other")))).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(fromHub(3, update(1, "y", "v"))).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(rows()).as("the hub's older changes skipped, the rest applied").containsExactly(json(1, "w"), json(2, "other"));

        // The hub took in this site's batch 1 (its w, not sent back), then site c changed the row again.
        fromHub(4, new Change.Mark(1), update(1, "w", "z"));
        assertThat(rows()).containsExactly(json(1, "z"), json(2, "other"));
        assertThat(guards()).isZero();
        assertThat(BatchApplier.lastApplied(c, "hq", "ch")).isEqualTo(4);
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldGuardChangesCommittedButNotYetSealedWhenAHubBatchArrives(TestDb.Kind kind) throws Exception {
        site(kind);
        local("INSERT INTO item VALUES (1, 'mine')"); // not sealed: the apply seals it first, in its own transaction
        fromHub(1, new Change.Insert("item", row(1, "theirs")));
        assertThat(rows()).containsExactly(json(1, "mine"));
        assertThat(guards()).isEqualTo(1);
        assertThat(outbox.lastSealed(c, "ch")).isEqualTo(1);
        c.commit();
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepTheRowsTheHubHasNotTakenInWhenACopyReplacesTheSitesTables(TestDb.Kind kind) throws Exception {
        site(kind);
        local("INSERT INTO item VALUES (1, 'old')");
        local("INSERT INTO item VALUES (3, 'gone at the hub')");
        assertThat(seal()).isEqualTo(1);
        local("INSERT INTO item VALUES (7, 'mine')");
        assertThat(seal()).isEqualTo(2);
        local("INSERT INTO item VALUES (8, 'late')"); // sealed as batch 3 when the copy is applied

        // A copy that holds this site's batch 1 (the mark), not batch 2 or 3.
        ApplyOutcome out = applier.reload(c, new BatchHeader(new BatchId("hq", "ch", 5), Instant.now(), null, 1), CHANNEL.fromHub(),
                List.<Change>of(new Change.Mark(1), new Change.Reload("item", row(1, "hub's")), new Change.Reload("item", row(2, "hub's")),
                        new Change.Reload("item", row(7, "hub's older"))).iterator(), null);
        assertThat(out).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(rows()).containsExactly(json(1, "hub's"), json(2, "hub's"), json(7, "mine"), json(8, "late"));
        assertThat(guards()).isEqualTo(2);
        assertThat(BatchApplier.lastApplied(c, "hq", "ch")).isEqualTo(5);
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldApplyAgainWhenALocalChangeCommitsWhileTheHubsBatchIsApplied(TestDb.Kind kind) throws Exception {
        site(kind);
        fromHub(1, new Change.Insert("item", row(1, "v")));
        // The application commits w on its own connection after the batch's transaction sealed, before it writes the row.
        Iterator<Change> racing = new Iterator<>() {
            boolean done;

            @Override
            public boolean hasNext() {
                return !done;
            }

            @Override
            public Change next() {
                done = true;
                try (Connection app = db.open(); Statement s = app.createStatement()) {
                    s.executeUpdate("UPDATE item SET name = 'w' WHERE id = 1");
                    app.commit();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
                return update(1, "v", "x");
            }
        };
        assertThatThrownBy(() -> fromHub(2, racing)).isInstanceOf(RetriableSyncException.class);
        assertThat(rows()).containsExactly(json(1, "w"));
        assertThat(BatchApplier.lastApplied(c, "hq", "ch")).isEqualTo(1);
        c.commit();

        // Applied again: now the local change is sealed first, and guards its row.
        assertThat(fromHub(2, update(1, "v", "x"))).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(rows()).containsExactly(json(1, "w"));
        assertThat(guards()).isEqualTo(1);
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldForgetGuardsWhenTheSiteStartsOver(TestDb.Kind kind) throws Exception {
        site(kind);
        local("INSERT INTO item VALUES (1, 'mine')");
        seal();
        assertThat(guards()).isEqualTo(1);
        outbox.startOver(c);
        c.commit();
        assertThat(guards()).as("guards name batches of the numbering that ended").isZero();
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldMarkASitesBatchAtTheHubAfterItsChangesAndBeforeTheOutcomesOfItsConflicts(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        c = db.open();
        SyncSchema.install(c, db.dialect());
        c.commit();
        BatchApplier hub = new BatchApplier(db.dialect(), Clock.systemUTC());
        TwoWay twoWay = new TwoWay("hq", new HybridClock(Clock.systemUTC()));
        local("INSERT INTO item VALUES (1, 'hub')");
        // Site b inserts 1 (taken: a conflict, whose outcome, here the hub's own row, every site gets) and 2.
        hub.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 1), Instant.now(), null, 100), CHANNEL,
                List.<Change>of(new Change.Insert("item", row(1, "b")), new Change.Insert("item", row(2, "b"))).iterator(), twoWay);
        // A batch without changes needs no mark.
        hub.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 2), Instant.now(), null, 100), CHANNEL, List.<Change>of().iterator(),
                twoWay);
        List<String> outbox = new ArrayList<>();
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT op, origin, new_row FROM sync_outbox ORDER BY seq")) {
            while (rs.next()) {
                outbox.add(rs.getString(1) + " " + rs.getString(2) + " " + rs.getString(3));
            }
        }
        c.commit();
        assertThat(outbox).containsExactly("M b {\"batch\":1}", "R null " + json(1, "hub"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRefuseAMarkAnywhereButAtASiteOfATwoWayChannel(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        c = db.open();
        SyncSchema.install(c, db.dialect());
        c.commit();
        BatchApplier plain = new BatchApplier(db.dialect(), Clock.systemUTC());
        assertThatThrownBy(() -> plain.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 1), Instant.now(), null, 100), CHANNEL,
                List.<Change>of(new Change.Insert("item", row(1, "b")), new Change.Mark(1)).iterator(), new TwoWay("hq",
                        new HybridClock(Clock.systemUTC()))))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("mark (op M)");
        ChannelSpec oneWay = new ChannelSpec("cat", ChannelSpec.Direction.HUB_TO_SITES, null, List.of(TableSpec.of("item")), null);
        assertThatThrownBy(() -> plain.apply(c, new BatchHeader(new BatchId("hq", "cat", 1), Instant.now(), null, 1), oneWay,
                List.<Change>of(new Change.Mark(1)).iterator()))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("mark (op M)");
        assertThat(rows()).isEmpty();
        assertThat(BatchApplier.lastApplied(c, "b", "ch")).isZero();
        c.commit();
    }
}
