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

    private static long outboxRows(Connection c) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM sync_outbox")) {
            rs.next();
            long n = rs.getLong(1);
            c.commit();
            return n;
        }
    }
}
