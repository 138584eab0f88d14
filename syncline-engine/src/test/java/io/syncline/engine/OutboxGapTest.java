package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.outbox.SealedBatch;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A transaction that commits after a later one must land in a later batch, never be skipped. */
class OutboxGapTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));

    /** A database with table {@code item} captured in channel {@code ch}. */
    private TestDb capturedItemTable(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
        }
        return db;
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldPutLateCommittingTransactionIntoLaterBatchWithoutSkippingIt(TestDb.Kind kind) throws Exception {
        TestDb db = capturedItemTable(kind);
        try (Connection a = db.open(); Connection b = db.open(); Connection sealer = db.open()) {

            try (Statement s = a.createStatement()) {
                s.executeUpdate("INSERT INTO item VALUES (1, 'from A, commits late')");
            }
            try (Statement s = b.createStatement()) {
                s.executeUpdate("INSERT INTO item VALUES (2, 'from B')");
            }
            b.commit();

            // A is still open: the seal must neither wait for it nor skip its row.
            Optional<SealedBatch> first = assertTimeoutPreemptively(Duration.ofSeconds(15),
                    () -> Pipe.seal(db, sealer, "ch"), "seal blocked by an open writer transaction");
            assertThat(first).isPresent();
            assertThat(first.get().sequence()).isEqualTo(1);
            assertThat(first.get().rowCount()).isEqualTo(1);
            assertThat(ids(Pipe.read(db, sealer, first.get(), "hub"))).containsExactly(2);

            a.commit();
            Optional<SealedBatch> second = Pipe.seal(db, sealer, "ch");
            assertThat(second).isPresent();
            assertThat(second.get().sequence()).isEqualTo(2);
            assertThat(ids(Pipe.read(db, sealer, second.get(), "hub"))).containsExactly(1);

            assertThat(Pipe.seal(db, sealer, "ch")).isEmpty();

            List<Integer> all = new ArrayList<>();
            for (SealedBatch batch : Pipe.store(db).unacknowledged(sealer, "hub", "ch", 100)) {
                all.addAll(ids(Pipe.read(db, sealer, batch, "hub")));
            }
            assertThat(all).containsExactly(2, 1);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldKeepALateTransactionsRowsWhenTheBatchBeforeItIsAcknowledgedAndPurged(TestDb.Kind kind) throws Exception {
        TestDb db = capturedItemTable(kind);
        try (Connection a = db.open(); Connection b = db.open(); Connection sealer = db.open()) {
            try (Statement s = a.createStatement()) { // captured first (lower statement number), committed last
                s.executeUpdate("INSERT INTO item VALUES (1, 'from A, commits late')");
                s.executeUpdate("UPDATE item SET name = 'A again' WHERE id = 1");
            }
            try (Statement s = b.createStatement()) {
                s.executeUpdate("INSERT INTO item VALUES (2, 'from B')");
                s.executeUpdate("INSERT INTO item VALUES (3, 'from B')");
            }
            b.commit();
            SealedBatch first = Pipe.seal(db, sealer, "ch").orElseThrow();
            assertThat(ids(Pipe.read(db, sealer, first, "hub"))).containsExactly(2, 3);
            // The purge runs while A's rows are captured but not committed: they must survive it.
            assertThat(Pipe.store(db).acknowledge(sealer, "hub", "ch", first.sequence())).isEqualTo(2);

            a.commit();
            SealedBatch second = Pipe.seal(db, sealer, "ch").orElseThrow();
            List<Change> late = Pipe.read(db, sealer, second, "hub");
            assertThat(ids(late)).containsExactly(1, 1);
            assertThat(late.get(1)).isInstanceOfSatisfying(Change.Update.class,
                    u -> assertThat(u.newRow()).containsEntry("name", "A again"));
            assertThat(Pipe.store(db).acknowledge(sealer, "hub", "ch", second.sequence())).isEqualTo(2);
            assertThat(Pipe.seal(db, sealer, "ch")).isEmpty();
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldNeverDeliverRowsOfRolledBackTransaction(TestDb.Kind kind) throws Exception {
        TestDb db = capturedItemTable(kind);
        try (Connection a = db.open(); Connection sealer = db.open()) {
            try (Statement s = a.createStatement()) {
                s.executeUpdate("INSERT INTO item VALUES (1, 'rolled back')");
            }
            db.exec("INSERT INTO item VALUES (2, 'kept')");
            Optional<SealedBatch> first = Pipe.seal(db, sealer, "ch");
            a.rollback();
            db.exec("INSERT INTO item VALUES (3, 'kept too')");
            Optional<SealedBatch> second = Pipe.seal(db, sealer, "ch");
            assertThat(ids(Pipe.read(db, sealer, first.orElseThrow(), "hub"))).containsExactly(2);
            assertThat(ids(Pipe.read(db, sealer, second.orElseThrow(), "hub"))).containsExactly(3);
            assertThat(Pipe.seal(db, sealer, "ch")).isEmpty();
        }
    }

    static List<Integer> ids(List<Change> changes) {
        return changes.stream().map(ch -> switch (ch) {
            case Change.Insert i -> ((Number) i.newRow().get("id")).intValue();
            case Change.Reload r -> ((Number) r.newRow().get("id")).intValue();
            case Change.Update u -> ((Number) u.newRow().get("id")).intValue();
            case Change.Delete d -> ((Number) d.oldRow().get("id")).intValue();
            case Change.Mark m -> throw new AssertionError("a site's outbox holds no marks: " + m);
            case Change.Refresh r -> throw new AssertionError("no two-way channel here: " + r);
        }).toList();
    }
}
