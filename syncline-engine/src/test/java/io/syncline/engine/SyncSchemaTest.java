package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Syncline's own tables are created, and brought up to date in a database an older version set up. */
class SyncSchemaTest extends DbTestBase {
    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldAddTheBatchTokenColumnToADatabaseFromBeforeIt(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        // sync_batch as the first release created it.
        db.exec("CREATE TABLE sync_batch (channel VARCHAR(64) NOT NULL, batch_seq BIGINT NOT NULL, snap_from " + db.dialect().textType()
                + ", snap_to " + db.dialect().textType() + ", row_count BIGINT NOT NULL, sealed_at TIMESTAMP WITH TIME ZONE NOT NULL, "
                + "first_captured TIMESTAMP WITH TIME ZONE, PRIMARY KEY (channel, batch_seq))",
                "INSERT INTO sync_batch (channel, batch_seq, row_count, sealed_at) VALUES ('ch', 1, 0, CURRENT_TIMESTAMP)");
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            assertThat(SchemaReader.read(c, "sync_batch").byKey()).containsKey("token");
            SyncSchema.install(c, db.dialect()); // again: nothing to do, no error
            c.commit();
            assertThat(Pipe.store(db).token(c, "ch", 1)).as("a batch sealed before tokens has none").isNull();
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldGiveAKeyItsValueWhenTwoTransactionsWriteItFirstAtOnce(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
        }
        try (Connection a = db.open(); Connection b = db.open(); Connection watch = db.open()) {
            if (kind == TestDb.Kind.H2) {
                try (var st = b.createStatement()) {
                    st.execute("SET LOCK_TIMEOUT 20000"); // H2 waits 1 s by default: time enough for the test to see it wait
                }
            }
            SyncSchema.putState(a, "first", "from a"); // inserted, not committed yet
            CompletableFuture<Void> other = CompletableFuture.runAsync(() -> {
                try {
                    SyncSchema.putState(b, "first", "from b"); // finds no row, inserts: waits for a, then meets its key
                    b.commit();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            String blocked = kind == TestDb.Kind.POSTGRES
                    ? "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    : "SELECT COUNT(*) FROM INFORMATION_SCHEMA.SESSIONS WHERE EXECUTING_STATEMENT LIKE 'INSERT INTO sync_state%'";
            Awaitility.await("the second writer waits for the first").atMost(Duration.ofSeconds(10)).until(() -> {
                try (var st = watch.createStatement(); var rs = st.executeQuery(blocked)) {
                    rs.next();
                    watch.commit();
                    return rs.getLong(1) > 0 || other.isDone(); // (done: it failed without waiting, and get() says why)
                }
            });
            a.commit();
            other.get(10, TimeUnit.SECONDS); // no duplicate-key error
            assertThat(SyncSchema.getState(watch, "first")).isEqualTo("from b");
        }
    }
}
