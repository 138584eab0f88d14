package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.load.InitialLoader;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.verify.TableChecksum;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The initial load interleaves with live changes and still converges; it resumes after a restart without duplicates. */
class InitialLoadTest extends DbTestBase {
    private static final int ROWS = 25_000;
    private static final int CHUNK = 1_000;
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));
    private static final String DDL = "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), qty INT)";

    private static void fill(TestDb db) throws SQLException {
        db.exec(DDL, db.isPostgres()
                ? "INSERT INTO item SELECT g, 'row ' || g, g % 97 FROM generate_series(1, " + ROWS + ") g"
                : "INSERT INTO item SELECT X, 'row ' || X, MOD(X, 97) FROM SYSTEM_RANGE(1, " + ROWS + ")");
    }

    private static void assertConverged(TestDb source, TestDb target) throws SQLException {
        try (Connection s = source.open(); Connection t = target.open()) {
            List<String> expected = Rows.of(s, source.dialect(), "item");
            List<String> actual = Rows.of(t, target.dialect(), "item");
            assertThat(actual.size()).isEqualTo(expected.size());
            assertThat(actual).isEqualTo(expected);
            assertThat(TableChecksum.of(t, target.dialect(), "item")).isEqualTo(TableChecksum.of(s, source.dialect(), "item"));
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldConvergeWhenRowsChangeWhileTheLoadRuns(TestDb.Kind kind) throws Exception {
        TestDb source = newDb(kind);
        TestDb target = newDb(kind);
        fill(source);
        target.exec(DDL);
        AtomicBoolean loading = new AtomicBoolean(true);
        AtomicInteger writes = new AtomicInteger();
        try (Connection src = source.open(); Connection sealer = source.open(); Connection tgt = target.open();
             Connection writer = source.open()) {
            assertThat(new CaptureInstaller(source.dialect(), Clock.systemUTC()).install(src, List.of(CHANNEL))).containsExactly("item");
            SyncSchema.install(tgt, target.dialect());
            tgt.commit();

            CompletableFuture<Void> churn = CompletableFuture.runAsync(() -> churn(writer, loading, writes));
            await().atMost(Duration.ofSeconds(20)).until(() -> writes.get() > 20 || churn.isDone());
            InitialLoader loader = new InitialLoader(source.dialect(), CHUNK);
            int steps = 0;
            while (loader.step(src, CHANNEL)) {
                steps++;
                if (steps % 5 == 0) {
                    Pipe.seal(source, sealer, "ch"); // batches close while load and writes are in flight
                }
            }
            loading.set(false);
            churn.get(60, TimeUnit.SECONDS);
            assertThat(steps).isGreaterThanOrEqualTo(ROWS / CHUNK - 1);
            assertThat(writes.get()).isGreaterThan(20);

            Pipe.sync(source, sealer, "site1", target, tgt, "hub", CHANNEL);
        }
        assertConverged(source, target);
    }

    /** Random single-row updates, key changes, deletes and inserts until the load is done (at most 3,000). */
    private static void churn(Connection c, AtomicBoolean loading, AtomicInteger writes) {
        SplittableRandom random = new SplittableRandom(42);
        int nextId = ROWS + 1;
        try {
            while (writes.get() < 3_000 && (loading.get() || writes.get() < 200)) {
                int id = random.nextInt(1, nextId);
                int op = random.nextInt(10);
                String sql;
                if (op < 5) {
                    sql = "UPDATE item SET qty = qty + 1, name = 'upd " + writes.get() + "' WHERE id = " + id;
                } else if (op < 6) {
                    sql = "UPDATE item SET id = " + (nextId++) + " WHERE id = " + id; // key moves behind or ahead of the load
                } else if (op < 8) {
                    sql = "DELETE FROM item WHERE id = " + id;
                } else {
                    sql = "INSERT INTO item VALUES (" + (nextId++) + ", 'new', 0)";
                }
                try (PreparedStatement ps = c.prepareStatement(sql)) {
                    ps.executeUpdate();
                }
                c.commit();
                writes.incrementAndGet();
            }
        } catch (SQLException e) {
            throw new IllegalStateException("concurrent writer failed after " + writes.get() + " writes: " + e.getMessage(), e);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldResumeLoadWithNewLoaderWithoutSendingRowsTwice(TestDb.Kind kind) throws Exception {
        TestDb source = newDb(kind);
        TestDb target = newDb(kind);
        fill(source);
        target.exec(DDL);
        long reloads = 0;
        try (Connection tgt = target.open()) {
            SyncSchema.install(tgt, target.dialect());
            tgt.commit();
            try (Connection src = source.open()) {
                new CaptureInstaller(source.dialect(), Clock.systemUTC()).install(src, List.of(CHANNEL));
                InitialLoader first = new InitialLoader(source.dialect(), CHUNK);
                assertThat(first.step(src, CHANNEL)).isTrue();
                assertThat(first.step(src, CHANNEL)).isTrue();
                // the first two chunks are delivered before the "restart"
                reloads += Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL);
                assertThat(Rows.of(tgt, target.dialect(), "item")).hasSize(2 * CHUNK);
            }
            try (Connection src = source.open()) { // a restarted node: new connection, new loader
                InitialLoader second = new InitialLoader(source.dialect(), CHUNK);
                int steps = 0;
                while (second.step(src, CHANNEL)) {
                    steps++;
                }
                // 23 full chunks, plus one empty step that finds the end when the row count is a multiple of the chunk
                assertThat(steps).isBetween(ROWS / CHUNK - 2, ROWS / CHUNK - 1);
                assertThat(second.step(src, CHANNEL)).isFalse();
                reloads += Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL);
            }
        }
        assertThat(reloads).as("every row is loaded exactly once").isEqualTo(ROWS);
        assertConverged(source, target);
    }
}
