package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.BadBatchException;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Exactly once, in order, all or nothing. */
class BatchApplierTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));

    private static Map<String, Object> row(int id, String name, Integer qty) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("name", name);
        m.put("qty", qty);
        return m;
    }

    private TestDb target(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), qty INT)");
        return db;
    }

    private static List<String> rows(TestDb db, Connection c) throws Exception {
        return Rows.of(c, db.dialect(), "item");
    }

    private static long rowsApplied(Connection c) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT rows_applied FROM sync_incoming")) {
            rs.next();
            long n = rs.getLong(1);
            c.commit();
            return n;
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldApplyEachBatchExactlyOnceAndInOrder(TestDb.Kind kind) throws Exception {
        TestDb db = target(kind);
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            List<Change> first = List.of(new Change.Insert("item", row(1, "a", 1)), new Change.Insert("item", row(2, "b", 2)));
            assertThat(Pipe.apply(db, c, "site1", CHANNEL, 1, first)).isEqualTo(new ApplyOutcome.Applied(
                    new io.syncline.api.BatchId("site1", "ch", 1), 2));
            List<String> after = rows(db, c);

            ApplyOutcome again = Pipe.apply(db, c, "site1", CHANNEL, 1, first);
            assertThat(again).isInstanceOf(ApplyOutcome.Duplicate.class);
            assertThat(again.lastApplied()).isEqualTo(1);
            assertThat(rows(db, c)).isEqualTo(after);
            assertThat(rowsApplied(c)).isEqualTo(2);

            List<Change> third = List.of(new Change.Delete("item", row(1, "a", 1)));
            assertThatThrownBy(() -> Pipe.apply(db, c, "site1", CHANNEL, 3, third))
                    .isInstanceOf(BadBatchException.class)
                    .hasMessageContaining("expected batch 2");
            assertThat(rows(db, c)).isEqualTo(after);
            assertThat(BatchApplier.lastApplied(c, "site1", "ch")).isEqualTo(1);
            c.commit();

            // Another source has its own sequence.
            assertThat(Pipe.apply(db, c, "site2", CHANNEL, 1, List.of(new Change.Insert("item", row(9, "z", 9)))))
                    .isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(Pipe.apply(db, c, "site1", CHANNEL, 2, third)).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(rows(db, c)).containsExactly("{\"id\":2,\"name\":\"b\",\"qty\":2}", "{\"id\":9,\"name\":\"z\",\"qty\":9}");
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRollBackWholeBatchWhenAChangeNamesUnknownColumn(TestDb.Kind kind) throws Exception {
        TestDb db = target(kind);
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            Pipe.apply(db, c, "site1", CHANNEL, 1, List.of(new Change.Insert("item", row(1, "a", 1))));
            List<String> before = rows(db, c);

            Map<String, Object> bad = row(4, "d", 4);
            bad.put("colour", "red");
            List<Change> batch = List.of(
                    new Change.Insert("item", row(2, "b", 2)),
                    new Change.Update("item", row(1, "a", 1), row(3, "a moved", 1)), // executes at once (key change)
                    new Change.Insert("item", bad),
                    new Change.Insert("item", row(5, "e", 5)));
            assertThatThrownBy(() -> Pipe.apply(db, c, "site1", CHANNEL, 2, batch))
                    .isInstanceOf(BadBatchException.class)
                    .hasMessageContaining("'colour'")
                    .satisfies(e -> assertThat(e.getMessage()).containsIgnoringCase("table 'item'")); // H2 reports ITEM
            assertThat(rows(db, c)).isEqualTo(before);
            assertThat(BatchApplier.lastApplied(c, "site1", "ch")).isEqualTo(1);
            c.commit();
            assertThat(rowsApplied(c)).isEqualTo(1);

            // The connection is clean afterwards: local writes are not tagged, the corrected batch applies.
            assertThat(Pipe.apply(db, c, "site1", CHANNEL, 2, List.of(batch.get(0), batch.get(1), batch.get(3))))
                    .isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(rows(db, c)).hasSize(3);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldLeaveNothingAppliedWhenTheStreamBreaksMidway(TestDb.Kind kind) throws Exception {
        TestDb db = target(kind);
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            Pipe.apply(db, c, "site1", CHANNEL, 1, List.of(new Change.Insert("item", row(1, "a", 1))));
            List<String> before = rows(db, c);

            Iterator<Change> truncated = new Iterator<>() {
                private final Iterator<Change> delegate = List.<Change>of(
                        new Change.Update("item", row(1, "a", 1), row(7, "a", 1)), // key change: written immediately
                        new Change.Insert("item", row(2, "b", 2))).iterator();

                @Override
                public boolean hasNext() {
                    return true;
                }

                @Override
                public Change next() {
                    if (delegate.hasNext()) {
                        return delegate.next();
                    }
                    throw new BadBatchException(io.syncline.api.SyncException.Stage.TRANSPORT, "stream truncated after 2 changes");
                }
            };
            BatchApplier applier = new BatchApplier(db.dialect(), java.time.Clock.systemUTC());
            io.syncline.api.BatchHeader header = new io.syncline.api.BatchHeader(
                    new io.syncline.api.BatchId("site1", "ch", 2), java.time.Instant.now(), null);
            assertThatThrownBy(() -> applier.apply(c, header, CHANNEL, truncated))
                    .isInstanceOf(BadBatchException.class)
                    .hasMessageContaining("truncated");
            assertThat(rows(db, c)).isEqualTo(before);
            assertThat(BatchApplier.lastApplied(c, "site1", "ch")).isEqualTo(1);
            c.commit();
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldReplaceTheTablesWithAReloadAndMoveTheLedgerToItsNumber(TestDb.Kind kind) throws Exception {
        TestDb db = target(kind);
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            Pipe.apply(db, c, "hq", CHANNEL, 1, List.of(new Change.Insert("item", row(1, "a", 1))));
            Pipe.apply(db, c, "hq", CHANNEL, 2, List.of(new Change.Insert("item", row(2, "b", 2))));
            db.exec("INSERT INTO item VALUES (7, 'only here', 7)");
            // A reload as of batch 1 (the hub's database is older than what this target applied): the ledger moves back.
            io.syncline.api.BatchHeader header = new io.syncline.api.BatchHeader(new io.syncline.api.BatchId("hq", "ch", 1),
                    java.time.Instant.now(), null);
            ApplyOutcome out = new BatchApplier(db.dialect(), java.time.Clock.systemUTC()).reload(c, header, CHANNEL,
                    List.<Change>of(new Change.Reload("item", row(1, "a2", 1)), new Change.Reload("item", row(3, "c", 3))).iterator(),
                    tx -> SyncSchema.putState(tx, "route.ch", "r1"));
            assertThat(out).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(rows(db, c)).containsExactly("{\"id\":1,\"name\":\"a2\",\"qty\":1}", "{\"id\":3,\"name\":\"c\",\"qty\":3}");
            assertThat(BatchApplier.lastApplied(c, "hq", "ch")).isEqualTo(1);
            assertThat(SyncSchema.getState(c, "route.ch")).isEqualTo("r1");
            c.commit();
            // A reload that fails leaves everything as it was, the ledger and the recorded state included.
            io.syncline.api.BatchHeader later = new io.syncline.api.BatchHeader(new io.syncline.api.BatchId("hq", "ch", 5),
                    java.time.Instant.now(), null);
            Map<String, Object> bad = row(4, "d", 4);
            bad.put("nope", 1);
            assertThatThrownBy(() -> new BatchApplier(db.dialect(), java.time.Clock.systemUTC()).reload(c, later, CHANNEL,
                    List.<Change>of(new Change.Reload("item", row(9, "z", 9)), new Change.Reload("item", bad)).iterator(),
                    tx -> SyncSchema.putState(tx, "route.ch", "r2"))).isInstanceOf(BadBatchException.class);
            assertThat(rows(db, c)).hasSize(2);
            assertThat(BatchApplier.lastApplied(c, "hq", "ch")).isEqualTo(1);
            assertThat(SyncSchema.getState(c, "route.ch")).isEqualTo("r1");
            c.commit();
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldReplayAKeyChangeOntoATargetThatAlreadyHoldsTheNewKey(TestDb.Kind kind) throws Exception {
        TestDb db = target(kind);
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            // The target was loaded after the source moved key 1 to 2 and inserted a new key 1: both rows are there.
            Pipe.apply(db, c, "hq", CHANNEL, 1, List.of(new Change.Reload("item", row(1, "new one", 1)),
                    new Change.Reload("item", row(2, "moved", 5))));
            // Then the key change itself arrives (a batch sealed before the load read the table).
            Pipe.apply(db, c, "hq", CHANNEL, 2, List.of(new Change.Update("item", row(1, "old", 1), row(2, "moved", 5)),
                    new Change.Insert("item", row(1, "new one", 1))));
            assertThat(rows(db, c)).containsExactly("{\"id\":1,\"name\":\"new one\",\"qty\":1}",
                    "{\"id\":2,\"name\":\"moved\",\"qty\":5}");
        }
    }

    private static io.syncline.api.BatchHeader header(String source, long seq) {
        return new io.syncline.api.BatchHeader(new io.syncline.api.BatchId(source, "ch", seq), java.time.Instant.now(), null);
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldApplyAGroupOfBatchesAsOneTransactionAndMoveTheLedgerToItsLast(TestDb.Kind kind) throws Exception {
        TestDb db = target(kind);
        BatchApplier applier = new BatchApplier(db.dialect(), java.time.Clock.systemUTC());
        try (Connection c = db.open(); Connection other = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            Pipe.apply(db, c, "hub", CHANNEL, 1, List.of(new Change.Insert("item", row(1, "a", 1))));
            try (BatchApplier.Group g = applier.group(c, CHANNEL)) {
                assertThat(g.add(header("hub", 1), List.<Change>of(new Change.Insert("item", row(1, "stale", 0))).iterator()))
                        .as("a batch applied before is skipped").isInstanceOf(ApplyOutcome.Duplicate.class);
                assertThat(g.add(header("hub", 2), List.<Change>of(new Change.Insert("item", row(2, "b", 2)),
                        new Change.Update("item", row(1, "a", 1), row(1, "a", 10))).iterator()))
                        .isEqualTo(new ApplyOutcome.Applied(new io.syncline.api.BatchId("hub", "ch", 2), 2));
                // The same key again in the next batch of the group: applied in order, last one wins.
                g.add(header("hub", 3), List.<Change>of(new Change.Update("item", row(1, "a", 10), row(1, "a", 11)),
                        new Change.Delete("item", row(2, "b", 2)), new Change.Insert("item", row(3, "c", 3))).iterator());
                assertThat(g.batches()).isEqualTo(2);
                assertThat(g.rows()).isEqualTo(5);
                assertThat(BatchApplier.lastApplied(other, "hub", "ch")).as("nothing visible before the commit").isEqualTo(1);
                assertThat(rows(db, other)).as("nothing visible before the commit").containsExactly("{\"id\":1,\"name\":\"a\",\"qty\":1}");
                other.commit();
                g.commit(tx -> SyncSchema.putState(tx, "test.group", "done"));
            }
            assertThat(rows(db, c)).containsExactly("{\"id\":1,\"name\":\"a\",\"qty\":11}", "{\"id\":3,\"name\":\"c\",\"qty\":3}");
            assertThat(BatchApplier.lastApplied(c, "hub", "ch")).isEqualTo(3);
            assertThat(SyncSchema.getState(c, "test.group")).isEqualTo("done");
            assertThat(rowsApplied(c)).isEqualTo(1 + 5);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRollBackTheWholeGroupWhenOneOfItsBatchesFails(TestDb.Kind kind) throws Exception {
        TestDb db = target(kind);
        BatchApplier applier = new BatchApplier(db.dialect(), java.time.Clock.systemUTC());
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            Pipe.apply(db, c, "hub", CHANNEL, 1, List.of(new Change.Insert("item", row(1, "a", 1))));
            List<String> before = rows(db, c);
            try (BatchApplier.Group g = applier.group(c, CHANNEL)) {
                g.add(header("hub", 2), List.<Change>of(new Change.Insert("item", row(2, "b", 2))).iterator());
                Map<String, Object> bad = row(3, "c", 3);
                bad.put("colour", "red");
                assertThatThrownBy(() -> g.add(header("hub", 3), List.<Change>of(new Change.Insert("item", bad)).iterator()))
                        .isInstanceOf(BadBatchException.class).hasMessageContaining("colour");
                assertThatThrownBy(() -> g.commit(null)).as("the group ended with the failure").isInstanceOf(IllegalStateException.class);
            }
            assertThat(rows(db, c)).as("batch 2 went with batch 3").isEqualTo(before);
            assertThat(BatchApplier.lastApplied(c, "hub", "ch")).isEqualTo(1);
            c.commit();

            try (BatchApplier.Group g = applier.group(c, CHANNEL)) {
                g.add(header("hub", 2), List.<Change>of(new Change.Insert("item", row(2, "b", 2))).iterator());
                assertThatThrownBy(() -> g.add(header("hub", 4), List.<Change>of().iterator()))
                        .isInstanceOf(BadBatchException.class).hasMessageContaining("expected batch 3");
            }
            try (BatchApplier.Group g = applier.group(c, CHANNEL)) {
                g.add(header("hub", 2), List.<Change>of(new Change.Insert("item", row(2, "b", 2))).iterator());
            } // closed without a commit
            assertThat(rows(db, c)).isEqualTo(before);
            assertThat(BatchApplier.lastApplied(c, "hub", "ch")).isEqualTo(1);
            c.commit();
        }
    }

    @org.junit.jupiter.api.Test
    void shouldRefuseToGroupTheBatchesOfATwoWayChannelAtASite() throws Exception {
        TestDb db = target(TestDb.Kind.H2);
        ChannelSpec twoWay = new ChannelSpec("tw", ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of("item")));
        io.syncline.engine.outbox.OutboxStore store = Pipe.store(db);
        BatchApplier atSite = new BatchApplier(db.dialect(), java.time.Clock.systemUTC(), store,
                new io.syncline.engine.apply.Guards(db.dialect(), ch -> true));
        try (Connection c = db.open()) {
            assertThatThrownBy(() -> atSite.group(c, twoWay)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("two-way channel 'tw'");
        }
    }
}
