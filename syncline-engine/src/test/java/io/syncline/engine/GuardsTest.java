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
        openSite();
    }

    private void openSite() throws Exception {
        openSite(CHANNEL);
    }

    /** This test's database as a site of {@code channel}: capture installed, seals guarding, batches applied under guards. */
    private void openSite(ChannelSpec channel) throws Exception {
        c = db.open();
        SyncSchema.install(c, db.dialect());
        c.commit();
        Clock clock = Clock.systemUTC();
        new CaptureInstaller(db.dialect(), clock).install(c, List.of(channel));
        c.commit();
        Guards guards = new Guards(db.dialect(), "ch"::equals);
        outbox = new OutboxStore(db.dialect(), clock, new HybridClock(clock), guards);
        applier = new BatchApplier(db.dialect(), clock, outbox, guards);
    }

    /** This test's database as a hub (no capture unless a test installs it); its applier. */
    private BatchApplier hub(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        c = db.open();
        SyncSchema.install(c, db.dialect());
        c.commit();
        return new BatchApplier(db.dialect(), Clock.systemUTC());
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

    private ApplyOutcome fromHub(long seq, ChannelSpec channel, Change... changes) {
        return applier.apply(c, new BatchHeader(new BatchId("hq", "ch", seq), Instant.now(), null, 1), channel.fromHub(),
                List.of(changes).iterator());
    }

    /**
     * A batch of one change, {@code change}, that the application races: before the batch's transaction gets to it, each of
     * {@code sql} is committed on the application's own connection.
     */
    private Iterator<Change> whileApplied(Change change, String... sql) {
        return new Iterator<>() {
            boolean done;

            @Override
            public boolean hasNext() {
                return !done;
            }

            @Override
            public Change next() {
                done = true;
                try (Connection app = db.open(); Statement s = app.createStatement()) {
                    for (String q : sql) {
                        s.executeUpdate(q);
                        app.commit();
                    }
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
                return change;
            }
        };
    }

    /**
     * A batch of {@code changes} whose transaction stays open after the last one: it counts {@code reached} down, then
     * waits (at most 30 s) for {@code go}.
     */
    private static Iterator<Change> pausing(List<Change> changes, java.util.concurrent.CountDownLatch reached,
                                            java.util.concurrent.CountDownLatch go) {
        Iterator<Change> it = changes.iterator();
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                if (it.hasNext()) {
                    return true;
                }
                reached.countDown();
                try {
                    go.await(30, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return false;
            }

            @Override
            public Change next() {
                return it.next();
            }
        };
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
        Iterator<Change> racing = whileApplied(update(1, "v", "x"), "UPDATE item SET name = 'w' WHERE id = 1");
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
        try (java.sql.PreparedStatement ps = c.prepareStatement("INSERT INTO item VALUES (?, 'mine')")) {
            for (int i = 1; i <= 1_200; i++) { // more than one chunk of guards
                ps.setInt(1, i);
                ps.addBatch();
            }
            ps.executeBatch();
        }
        c.commit();
        local("UPDATE item SET name = 'again' WHERE id <= 10"); // the same keys again in one batch
        seal();
        assertThat(guards()).isEqualTo(1_200);
        outbox.startOver(c);
        c.commit();
        assertThat(guards()).as("guards name batches of the numbering that ended").isZero();
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldMarkASitesBatchAtTheHubAfterItsChangesAndBeforeTheOutcomesOfItsConflicts(TestDb.Kind kind) throws Exception {
        BatchApplier hub = hub(kind);
        TwoWay twoWay = new TwoWay("hq", new HybridClock(Clock.systemUTC()));
        local("INSERT INTO item VALUES (1, 'hub')");
        // Site b inserts 1 (taken: a conflict, whose outcome, here the hub's own row, every site gets) and 2.
        hub.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 1), Instant.now(), null, 100), CHANNEL,
                List.<Change>of(new Change.Insert("item", row(1, "b")), new Change.Insert("item", row(2, "b"))).iterator(), twoWay);
        // A batch without changes needs no mark.
        hub.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 2), Instant.now(), null, 100), CHANNEL, List.<Change>of().iterator(),
                twoWay);
        assertThat(hubOutbox()).containsExactly("M b {\"batch\":1}", "R null " + json(1, "hub"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRefuseAMarkAnywhereButAtASiteOfATwoWayChannelAndARequestWithoutAKey(TestDb.Kind kind) throws Exception {
        BatchApplier plain = hub(kind);
        assertThatThrownBy(() -> plain.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 1), Instant.now(), null, 100), CHANNEL,
                List.<Change>of(new Change.Insert("item", row(1, "b")), new Change.Mark(1)).iterator(), new TwoWay("hq",
                        new HybridClock(Clock.systemUTC()))))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("mark (op M)");
        ChannelSpec oneWay = new ChannelSpec("cat", ChannelSpec.Direction.HUB_TO_SITES, null, List.of(TableSpec.of("item")), null);
        assertThatThrownBy(() -> plain.apply(c, new BatchHeader(new BatchId("hq", "cat", 1), Instant.now(), null, 1), oneWay,
                List.<Change>of(new Change.Mark(1)).iterator()))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("mark (op M)");
        assertThatThrownBy(() -> plain.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 1), Instant.now(), null, 100), CHANNEL,
                List.<Change>of(new Change.Refresh("item", Map.of("name", "x"))).iterator(), new TwoWay("hq", new HybridClock(Clock.systemUTC()))))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("lacks primary-key column 'id'");
        assertThat(rows()).isEmpty();
        assertThat(BatchApplier.lastApplied(c, "b", "ch")).isZero();
        c.commit();
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldApplyTheHalfOfAKeyChangeThatTouchesNoGuardedKey(TestDb.Kind kind) throws Exception {
        site(kind);
        fromHub(1, new Change.Insert("item", row(1, "v")), new Change.Insert("item", row(5, "v5")));
        local("UPDATE item SET name = 'w' WHERE id = 1"); // guards key 1
        local("INSERT INTO item VALUES (6, 'mine')");    // guards key 6
        seal();
        // Site c moved 1 to 2: key 2 is not guarded here, so the row arrives there; key 1 keeps this site's w.
        fromHub(2, new Change.Update("item", row(1, "v"), row(2, "v")));
        // Site c moved 5 to 6: key 6 is guarded, so only the old row goes.
        fromHub(3, new Change.Update("item", row(5, "v5"), row(6, "v5")));
        assertThat(rows()).containsExactly(json(1, "w"), json(2, "v"), json(6, "mine"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldAskTheHubForARowOfItsOwnThatGaveWayToAUniqueValueOfTheHub(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), sku VARCHAR(20) UNIQUE)");
        openSite();
        local("INSERT INTO item VALUES (1, 'mine', 'S')");
        seal();
        Map<String, Object> theirs = new LinkedHashMap<>(row(2, "theirs"));
        theirs.put("sku", "S");
        fromHub(1, new Change.Insert("item", theirs));
        assertThat(rows()).containsExactly(Json.write(theirs));
        // The hub may take this site's row 1 in without conflict (if row 2 lets go of S first): it sends row 1 again.
        assertThat(unsealed()).containsExactly("K {\"id\":1}");
        assertThat(seal()).isEqualTo(2);
        assertThat(guards()).isEqualTo(1);
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepTheParentOfAGuardedRowWhenACopyReplacesTheTablesAndAskTheHubForIt(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(100))",
                "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT REFERENCES parent (id) ON DELETE CASCADE)");
        ChannelSpec orders = new ChannelSpec("ch", ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of("parent"), TableSpec.of("child")),
                ConflictPolicy.of(ConflictPolicy.Kind.LAST_WRITER_WINS));
        openSite(orders);
        fromHub(1, orders, new Change.Insert("parent", row(1, "p")));
        local("INSERT INTO child VALUES (10, 1)"); // on its way to the hub: guarded
        seal();
        // A copy from a hub that deleted parent 1 meanwhile: the child's change will meet that at the hub.
        applier.reload(c, new BatchHeader(new BatchId("hq", "ch", 7), Instant.now(), null, 1), orders.fromHub(),
                List.<Change>of(new Change.Mark(0), new Change.Reload("parent", row(2, "q"))).iterator(), null);
        assertThat(Rows.of(c, db.dialect(), "parent")).containsExactly(json(1, "p"), json(2, "q"));
        assertThat(Rows.of(c, db.dialect(), "child")).hasSize(1);
        assertThat(unsealed()).containsExactly("K {\"id\":1}");
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldSendARowAgainWhenASiteAsksForIt(TestDb.Kind kind) throws Exception {
        BatchApplier hub = hub(kind);
        local("INSERT INTO item VALUES (1, 'hub')");
        hub.applyTwoWay(c, new BatchHeader(new BatchId("b", "ch", 1), Instant.now(), null, 100), CHANNEL,
                List.<Change>of(new Change.Refresh("item", Map.of("id", 1)), new Change.Refresh("item", Map.of("id", 2))).iterator(),
                new TwoWay("hq", new HybridClock(Clock.systemUTC())));
        assertThat(hubOutbox()).containsExactly("M b {\"batch\":1}", "R null " + json(1, "hub"), "D null null");
        assertThat(rows()).containsExactly(json(1, "hub"));
    }

    @org.junit.jupiter.api.Test
    void shouldApplyTwoBatchesTouchingAKeyInTheOrderTheyTookEffectWhenTheFirstFindsNoRow() throws Exception {
        BatchApplier hub = hub(TestDb.Kind.POSTGRES);
        new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL.fromHub()));
        c.commit();
        TwoWay twoWay = new TwoWay("hq", new HybridClock(Clock.systemUTC()));
        java.util.concurrent.CountDownLatch deleted = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
        // Site a deletes row 1, which the hub does not have; its batch stays open while site b's insert of row 1 arrives.
        Iterator<Change> slow = pausing(List.of(new Change.Delete("item", row(1, "v"))), deleted, go);
        java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newFixedThreadPool(2);
        try (Connection a = db.open(); Connection b = db.open()) {
            java.util.concurrent.CompletableFuture<ApplyOutcome> fromA = java.util.concurrent.CompletableFuture.supplyAsync(() ->
                    hub.applyTwoWay(a, new BatchHeader(new BatchId("a", "ch", 1), Instant.now(), null, 100), CHANNEL, slow, twoWay), threads);
            assertThat(deleted.await(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
            java.util.concurrent.CompletableFuture<ApplyOutcome> fromB = java.util.concurrent.CompletableFuture.supplyAsync(() ->
                    hub.applyTwoWay(b, new BatchHeader(new BatchId("b", "ch", 1), Instant.now(), null, 200), CHANNEL,
                            List.<Change>of(new Change.Insert("item", row(1, "b"))).iterator(), twoWay), threads);
            // b waits for a's lock on key 1 (without it, b's insert would come before a's mark in the hub's order)
            org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(20)).until(() -> {
                if (fromB.isDone()) {
                    throw new AssertionError("b did not wait for a: " + fromB.handle((o, e) -> e != null ? e : o).get());
                }
                return waitingForALock(c);
            });
            go.countDown();
            assertThat(fromA.get(30, java.util.concurrent.TimeUnit.SECONDS)).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(fromB.get(30, java.util.concurrent.TimeUnit.SECONDS)).isInstanceOf(ApplyOutcome.Applied.class);
        } finally {
            go.countDown();
            threads.shutdownNow();
        }
        assertThat(hubOutbox()).containsExactly("M a {\"batch\":1}", "I b null", "M b {\"batch\":1}");
    }


    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldAskTheHubForARowWhoseParentThisSiteMovedAway(TestDb.Kind kind) throws Exception {
        db = newDb(kind);
        db.exec("CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(100))",
                "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT REFERENCES parent (id) ON UPDATE CASCADE)");
        ChannelSpec orders = new ChannelSpec("ch", ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of("parent"), TableSpec.of("child")),
                ConflictPolicy.of(ConflictPolicy.Kind.LAST_WRITER_WINS));
        openSite(orders);
        fromHub(1, orders, new Change.Insert("parent", row(1, "p")));
        local("UPDATE parent SET id = 2 WHERE id = 1");
        seal();
        Map<String, Object> child = new LinkedHashMap<>();
        child.put("id", 10);
        child.put("parent_id", 1);
        // Site c added a line to parent 1; at the hub, this site's move then cascades to it, a change the hub does not send
        // here (it came with this site's batch). The site cannot write the line now, so it asks for it.
        fromHub(2, orders, new Change.Insert("child", child));
        assertThat(Rows.of(c, db.dialect(), "child")).isEmpty();
        assertThat(unsealed()).containsExactly("K {\"id\":10}");
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldNotApplyAgainForLocalChangesToRowsTheBatchDidNotOverwrite(TestDb.Kind kind) throws Exception {
        site(kind);
        fromHub(1, new Change.Insert("item", row(1, "v")), new Change.Insert("item", row(5, "x")));
        Iterator<Change> busy = whileApplied(update(1, "v", "w"), "UPDATE item SET name = 'a' WHERE id = 5",
                "UPDATE item SET name = 'b' WHERE id = 5");
        assertThat(fromHub(2, busy)).isInstanceOf(ApplyOutcome.Applied.class);
        assertThat(rows()).containsExactly(json(1, "w"), json(5, "b"));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldIgnoreAMarkOfABatchThisSiteHasNotSealed(TestDb.Kind kind) throws Exception {
        site(kind);
        local("INSERT INTO item VALUES (1, 'mine')");
        assertThat(seal()).isEqualTo(1);
        fromHub(1, new Change.Mark(5)); // numbered before this site started over
        assertThat(guards()).isEqualTo(1);
    }

    @org.junit.jupiter.api.Test
    void shouldHoldTheApplicationsWritesToTheTablesWhileACopyIsAppliedOnPostgres() throws Exception {
        db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        openSite();
        fromHub(1, new Change.Insert("item", row(1, "v")), new Change.Insert("item", row(2, "v")));
        java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
        Iterator<Change> slow = pausing(List.of(new Change.Mark(0), new Change.Reload("item", row(1, "copy"))), started, go);
        java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newFixedThreadPool(2);
        try {
            java.util.concurrent.Future<ApplyOutcome> copy = threads.submit(() -> applier.reload(c,
                    new BatchHeader(new BatchId("hq", "ch", 3), Instant.now(), null, 1), CHANNEL.fromHub(), slow, null));
            assertThat(started.await(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
            java.util.concurrent.Future<?> app = threads.submit(() -> {
                try (Connection own = db.open(); Statement s = own.createStatement()) {
                    s.executeUpdate("INSERT INTO item VALUES (3, 'written during the copy')");
                    own.commit();
                }
                return null;
            });
            try (Connection watch = db.open()) {
                org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(20)).until(() -> {
                    if (app.isDone()) {
                        throw new AssertionError("the application wrote during the copy");
                    }
                    return waitingForALock(watch);
                });
            }
            go.countDown();
            assertThat(copy.get(30, java.util.concurrent.TimeUnit.SECONDS)).isInstanceOf(ApplyOutcome.Applied.class);
            app.get(30, java.util.concurrent.TimeUnit.SECONDS);
        } finally {
            go.countDown();
            threads.shutdownNow();
        }
        assertThat(rows()).containsExactly(json(1, "copy"), json(3, "written during the copy"));
    }

    private static boolean waitingForALock(Connection c) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")) {
            rs.next();
            boolean waiting = rs.getLong(1) > 0;
            c.commit();
            return waiting;
        }
    }

    /** The hub's outbox: "op origin new-row" per row (PostgreSQL statement rows show no row), oldest first. */
    private List<String> hubOutbox() throws Exception {
        List<String> out = new ArrayList<>();
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT op, origin, new_row FROM sync_outbox ORDER BY seq")) {
            while (rs.next()) {
                out.add(rs.getString(1) + " " + rs.getString(2) + " " + rs.getString(3));
            }
        }
        c.commit();
        return out;
    }

    /** This site's outbox rows not sealed yet that it wrote itself (not applied from the hub): "op old-row". */
    private List<String> unsealed() throws Exception {
        List<String> out = new ArrayList<>();
        db.dialect().streamUnsealed(c, "ch", (op, table, oldRow, newRow, at, origin) -> {
            if (origin == null) {
                out.add(op + " " + (oldRow == null ? null : oldRow.text()));
            }
        });
        c.commit();
        return out;
    }
}
