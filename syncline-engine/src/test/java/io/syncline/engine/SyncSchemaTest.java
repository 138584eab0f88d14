package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
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
}
