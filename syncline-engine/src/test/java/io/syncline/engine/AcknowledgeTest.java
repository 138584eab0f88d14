package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.outbox.OutboxStore;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Acknowledgements purge exactly the acknowledged batches, never move backwards, and cannot run ahead. */
class AcknowledgeTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldPurgeAcknowledgedBatchesOnlyAndRefuseAcknowledgementsBeyondTheLastSealedBatch(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            OutboxStore store = Pipe.store(db);
            for (int batch = 1; batch <= 3; batch++) {
                db.exec("INSERT INTO item VALUES (" + batch + "0, 'a')", "INSERT INTO item VALUES (" + batch + "1, 'b')");
                assertThat(Pipe.seal(db, c, "ch")).isPresent();
            }
            assertThat(outboxRows(c)).isEqualTo(6);

            assertThat(store.acknowledge(c, "hub", "ch", 2)).isEqualTo(4);
            assertThat(outboxRows(c)).isEqualTo(2);
            assertThat(store.unacknowledged(c, "hub", "ch", 10)).extracting(b -> b.sequence()).containsExactly(3L);

            assertThat(store.acknowledge(c, "hub", "ch", 1)).as("an older acknowledgement changes nothing").isZero();
            assertThat(store.acknowledged(c, "hub", "ch")).isEqualTo(2);

            assertThatThrownBy(() -> store.acknowledge(c, "hub", "ch", 4))
                    .isInstanceOf(io.syncline.engine.outbox.DivergedException.class)
                    .hasMessageContaining("acknowledged batch 4")
                    .hasMessageContaining("only 3 have been sealed");
            assertThat(outboxRows(c)).as("nothing purged by the refused acknowledgement").isEqualTo(2);
            assertThat(store.acknowledged(c, "hub", "ch")).isEqualTo(2);
        }
    }

    /** A table with capture and three batches of one row each, sealed; the store. */
    private static OutboxStore threeBatches(TestDb db, Connection c) throws Exception {
        return sealedBatches(db, c, 3);
    }

    /** A table with capture and {@code n} batches of one row each, sealed; the store. */
    private static OutboxStore sealedBatches(TestDb db, Connection c, int n) throws Exception {
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
        OutboxStore store = Pipe.store(db);
        for (int batch = 1; batch <= n; batch++) {
            db.exec("INSERT INTO item VALUES (" + batch + "0, 'a')");
            assertThat(Pipe.seal(db, c, "ch")).isPresent();
        }
        return store;
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepTheBatchesASharerStillNeedsEvenWhenItMovesBack(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        try (Connection c = db.open()) {
            OutboxStore store = threeBatches(db, c);
            List<String> sharers = List.of("a", "b");
            assertThat(store.position(c, "b", "ch", 0, null, sharers)).isNull();
            assertThat(store.position(c, "a", "ch", 3, null, sharers)).isNull();
            assertThat(outboxRows(c)).as("b holds every batch back").isEqualTo(3);
            assertThat(store.position(c, "b", "ch", 1, null, sharers)).isNull();
            assertThat(outboxRows(c)).as("batch 1 is everybody's").isEqualTo(2);
            // a's database was restored: it holds only batch 1 now, and says so. Its position moves back with it ...
            assertThat(store.position(c, "a", "ch", 1, null, sharers)).isNull();
            assertThat(store.acknowledged(c, "a", "ch")).isEqualTo(1);
            // ... so b acknowledging everything purges nothing a still needs.
            assertThat(store.position(c, "b", "ch", 3, null, sharers)).isNull();
            assertThat(outboxRows(c)).isEqualTo(2);
            assertThat(store.sealedAfter(c, "ch", 1, 10)).extracting(b -> b.sequence()).containsExactly(2L, 3L);
            assertThat(store.position(c, "a", "ch", 3, null, sharers)).isNull();
            assertThat(outboxRows(c)).isZero();
            // Positions that cannot be served: behind what was purged, or beyond what was sealed. Nothing is recorded.
            assertThat(store.position(c, "b", "ch", 1, null, sharers)).contains("batches after 1 were purged");
            assertThat(store.position(c, "b", "ch", 7, null, sharers)).contains("only 3 were sealed");
            assertThat(store.acknowledged(c, "b", "ch")).isEqualTo(3);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldPurgeNoBatchBeyondAPurgeHold(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        try (Connection c = db.open()) {
            OutboxStore store = threeBatches(db, c);
            io.syncline.engine.schema.SyncSchema.putState(c, OutboxStore.PURGE_HOLD + "ch", "1"); // batch 2 not read yet
            c.commit();
            assertThat(store.position(c, "a", "ch", 3, null, List.of("a"))).isNull();
            assertThat(store.sealedAfter(c, "ch", 0, 10)).extracting(b -> b.sequence()).containsExactly(2L, 3L);
            io.syncline.engine.schema.SyncSchema.putState(c, OutboxStore.PURGE_HOLD + "ch", "3");
            c.commit();
            assertThat(store.position(c, "a", "ch", 3, null, List.of("a"))).isNull();
            assertThat(outboxRows(c)).as("a position that did not move purges nothing").isEqualTo(2);
            store.purgeShared(c, "ch", java.util.Set.of("a")); // what the hub does when it moves the hold
            assertThat(outboxRows(c)).isZero();
        }
    }

    @org.junit.jupiter.api.Test
    void shouldReadAReloadOnPostgresInTheSnapshotItsBatchWasSealedWith() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection c = db.open(); Connection reader = db.open(); Connection writer = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            OutboxStore store = Pipe.store(db);
            db.exec("INSERT INTO item VALUES (1, 'before')");
            OutboxStore.ReloadPoint point = store.openReload(c, "a", "ch");
            // Committed after the reload's batch was sealed, before the reload is read: not in the reload, but in a later batch.
            try (Statement s = writer.createStatement()) {
                s.executeUpdate("INSERT INTO item VALUES (2, 'after')");
            }
            writer.commit();
            db.dialect().importSnapshot(reader, point.snapshot());
            c.commit();
            try (Statement s = reader.createStatement(); ResultSet rs = s.executeQuery("SELECT id FROM item ORDER BY id")) {
                List<Integer> ids = new java.util.ArrayList<>();
                while (rs.next()) {
                    ids.add(rs.getInt(1));
                }
                assertThat(ids).containsExactly(1);
            }
            reader.commit();
            assertThat(point.batch()).isEqualTo(1);
            assertThat(store.acknowledged(c, "a", "ch")).isEqualTo(1);
            assertThat(Pipe.seal(db, c, "ch")).get().extracting(b -> b.sequence()).isEqualTo(2L);
            List<String> later = new java.util.ArrayList<>();
            store.stream(c, store.sealedAfter(c, "ch", 1, 10).getFirst(), "a", (op, table, o, n, at, origin) -> later.add(op + table));
            assertThat(later).containsExactly("Iitem");
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldTellABatchFromTheBatchOfTheSameNumberOfADatabaseThisOneWasRestoredOver(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            OutboxStore store = Pipe.store(db);
            for (int batch = 1; batch <= 2; batch++) {
                db.exec("INSERT INTO item VALUES (" + batch + ", 'a')");
                assertThat(Pipe.seal(db, c, "ch")).isPresent();
            }
            String one = store.token(c, "ch", 1);
            String two = store.token(c, "ch", 2);
            assertThat(one).isNotNull().isNotEqualTo(two);
            List<String> sharers = List.of("a");
            assertThat(store.position(c, "a", "ch", 1, one, sharers)).isNull();
            assertThat(store.position(c, "a", "ch", 2, "0123456789abcdef", sharers))
                    .contains("its batch 2 is not this database's batch 2");
            assertThat(store.position(c, "a", "ch", 2, two, sharers)).isNull();
            // Batch 2 is purged now; its token is still known, as the last batch purged.
            assertThat(store.isAvailable(c, "ch", 2)).isFalse();
            assertThat(store.token(c, "ch", 2)).isEqualTo(two);
            assertThat(store.position(c, "a", "ch", 2, "fedcba9876543210", sharers)).contains("is not this database's batch 2");
            assertThat(store.position(c, "a", "ch", 2, null, sharers)).as("a destination that sends no token is not checked").isNull();
        }
    }

    private static long outboxRows(Connection c) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM sync_outbox")) {
            rs.next();
            long n = rs.getLong(1);
            c.commit();
            return n;
        }
    }

    /**
     * Positions moving forward are recorded without the store's lock, many destinations at once: at every moment, the
     * batches after a destination's recorded position are all still there, and once every sharer has everything, nothing
     * is left without another purge being asked for.
     */
    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepEveryBatchAfterEachPositionWhileManyDestinationsMoveAtOnce(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        int batches = 30;
        int destinations = 6;
        OutboxStore store;
        try (Connection c = db.open()) {
            store = sealedBatches(db, c, batches);
        }
        List<String> sharers = java.util.stream.IntStream.range(0, destinations).mapToObj(i -> "d" + i).toList();
        try (Connection c = db.open()) {
            for (String d : sharers) { // a sharer without a position holds nothing back: each has one before the race
                assertThat(store.position(c, d, "ch", 0, null, sharers)).isNull();
            }
        }
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(destinations);
        try {
            List<java.util.concurrent.Future<Void>> runs = new java.util.ArrayList<>();
            for (String d : sharers) {
                runs.add(pool.submit(() -> {
                    try (Connection c = db.open()) {
                        java.util.Random random = new java.util.Random(d.hashCode());
                        for (long at = 1 + random.nextInt(3); ; at = Math.min(batches, at + 1 + random.nextInt(3))) {
                            // The token of batch `at`, still there: it is after this destination's position.
                            String token = store.sealedAfter(c, "ch", at - 1, 1).get(0).token();
                            assertThat(store.position(c, d, "ch", at, token, sharers)).as(d + " at " + at).isNull();
                            List<Long> after = store.sealedAfter(c, "ch", at, batches).stream().map(b -> b.sequence()).toList();
                            assertThat(after).as("batches after %s's position %d", d, at)
                                    .isEqualTo(java.util.stream.LongStream.rangeClosed(at + 1, batches).boxed().toList());
                            if (at == batches) {
                                break;
                            }
                        }
                    }
                    return null;
                }));
            }
            for (java.util.concurrent.Future<Void> f : runs) {
                f.get(60, java.util.concurrent.TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        try (Connection c = db.open()) {
            // No purge is lost: one a fetch could not run because another held the lock was run by that other one.
            assertThat(outboxRows(c)).isZero();
            assertThat(store.sealedAfter(c, "ch", 0, batches)).isEmpty();
            for (String d : sharers) {
                assertThat(store.acknowledged(c, d, "ch")).isEqualTo(batches);
            }
        }
    }

    /** A sharer left out of a purge (past its retention) and back at the position it had is told its batches are gone. */
    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldSendAReloadToASharerWhoseBatchesWerePurgedWhileItWasLeftOut(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        try (Connection c = db.open()) {
            OutboxStore store = threeBatches(db, c);
            List<String> both = List.of("a", "b");
            assertThat(store.position(c, "a", "ch", 1, null, both)).isNull();
            assertThat(store.position(c, "b", "ch", 3, null, both)).isNull();
            store.purgeShared(c, "ch", java.util.Set.of("b")); // a is away too long: only b holds the purge
            assertThat(outboxRows(c)).isZero();
            assertThat(store.position(c, "a", "ch", 1, null, both)).contains("batches after 1 were purged");
        }
    }
}
