package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.RetriableSyncException;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A batch whose (source, channel) is being applied by another exchange is refused at once, not queued behind it. */
class LedgerLockTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRefuseARacingApplyOfTheSameSourceAndChannelInsteadOfWaiting(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection holder = db.open(); Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            List<Change> one = List.of(new Change.Insert("item", Map.of("id", 1, "name", "a")));
            assertThat(Pipe.apply(db, c, "site1", CHANNEL, 1, one)).isInstanceOf(ApplyOutcome.Applied.class);
            try (Statement s = holder.createStatement()) { // a stalled exchange holding the ledger row
                s.executeQuery("SELECT last_batch FROM sync_incoming WHERE source = 'site1' AND channel = 'ch' FOR UPDATE").close();
            }
            List<Change> two = List.of(new Change.Insert("item", Map.of("id", 2, "name", "b")));
            assertTimeoutPreemptively(Duration.ofSeconds(10), () ->
                    assertThatThrownBy(() -> Pipe.apply(db, c, "site1", CHANNEL, 2, two))
                            .isInstanceOf(RetriableSyncException.class)
                            .hasMessageContaining("another exchange of source 'site1' channel 'ch' is in progress"));
            assertThat(Pipe.apply(db, c, "site2", CHANNEL, 1, two)).as("other sources are not blocked")
                    .isInstanceOf(ApplyOutcome.Applied.class);
            holder.rollback();
            assertThat(Pipe.apply(db, c, "site1", CHANNEL, 2, two)).isInstanceOf(ApplyOutcome.Applied.class);
        }
    }
}
