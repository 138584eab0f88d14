package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.verify.TableChecksum;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Clock;
import java.util.List;
import org.junit.jupiter.api.Test;

/** PostgreSQL captures per statement; how an UPDATE's rows are paired decides what the target sees. */
class PostgresStatementCaptureTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));
    private static final String DDL = "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), qty INT)";

    @Test
    void shouldCaptureASingleKeyChangeAsAnUpdateFromOldKeyToNewKey() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec(DDL, "INSERT INTO item SELECT g, 'n' || g, g FROM generate_series(1, 5) g");
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            db.exec("UPDATE item SET id = 50, qty = 0 WHERE id = 5", "UPDATE item SET qty = qty + 1");
            var batch = Pipe.seal(db, c, "ch").orElseThrow();
            List<Change> changes = Pipe.read(db, c, batch, "hub");
            assertThat(changes.get(0)).isInstanceOfSatisfying(Change.Update.class, u -> {
                assertThat(u.oldRow()).containsEntry("id", 5);
                assertThat(u.newRow()).containsEntry("id", 50).containsEntry("qty", 0);
            });
            assertThat(changes.subList(1, changes.size())).hasSize(5).allMatch(ch -> ch instanceof Change.Update);
        }
    }

    @Test
    void shouldCaptureAStatementMovingManyKeysAsDeletesThenInsertsAndConverge() throws Exception {
        TestDb source = newDb(TestDb.Kind.POSTGRES);
        TestDb target = newDb(TestDb.Kind.POSTGRES);
        source.exec(DDL, "INSERT INTO item SELECT g, 'n' || g, g FROM generate_series(1, 100) g");
        target.exec(DDL);
        try (Connection src = source.open(); Connection tgt = target.open()) {
            new CaptureInstaller(source.dialect(), Clock.systemUTC()).install(src, List.of(CHANNEL));
            SyncSchema.install(tgt, target.dialect());
            tgt.commit();
            source.exec("INSERT INTO item SELECT g, 'n' || g, g FROM generate_series(101, 200) g");
            assertThat(Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL)).isEqualTo(100);
            target.exec("INSERT INTO item SELECT g, 'n' || g, g FROM generate_series(1, 100) g"); // as an initial load would have

            // One statement moves keys 150..200 to 1150..1200 and changes 140..149 in place; then a delete.
            source.exec("UPDATE item SET id = CASE WHEN id >= 150 THEN id + 1000 ELSE id END, name = name || '+' WHERE id >= 140",
                    "DELETE FROM item WHERE id = 3");
            var batch = Pipe.seal(source, src, "ch").orElseThrow();
            List<Change> changes = Pipe.read(source, src, batch, "hub");
            // 10 keys kept are updates; 51 moved-away keys are deletes, 51 new keys inserts; then the delete.
            assertThat(changes).filteredOn(ch -> ch instanceof Change.Update).hasSize(10);
            assertThat(changes).filteredOn(ch -> ch instanceof Change.Delete).hasSize(52);
            assertThat(changes).filteredOn(ch -> ch instanceof Change.Insert).hasSize(51);
            int firstInsert = changes.indexOf(changes.stream().filter(ch -> ch instanceof Change.Insert).findFirst().orElseThrow());
            assertThat(changes.subList(firstInsert, changes.size())).as("the statement's deletes come before its inserts")
                    .filteredOn(ch -> ch instanceof Change.Delete).hasSize(1); // only the later DELETE statement's

            Pipe.apply(target, tgt, "site1", CHANNEL, batch.sequence(), changes);
            assertThat(TableChecksum.of(tgt, target.dialect(), "item")).isEqualTo(TableChecksum.of(src, source.dialect(), "item"));
        }
    }

    @Test
    void shouldCaptureSetBasedStatementsOncePerRow() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec(DDL);
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            db.exec("INSERT INTO item SELECT g, 'n', g FROM generate_series(1, 1000) g", "UPDATE item SET qty = 0 WHERE id <= 300",
                    "UPDATE item SET qty = 1 WHERE id < 0", "DELETE FROM item WHERE id > 900",
                    "INSERT INTO item VALUES (1, 'x', 1) ON CONFLICT (id) DO UPDATE SET name = 'upserted'");
            try (Statement s = c.createStatement(); var rs = s.executeQuery("SELECT op, sum(row_count) FROM sync_outbox GROUP BY op ORDER BY op")) {
                StringBuilder sb = new StringBuilder();
                while (rs.next()) {
                    sb.append(rs.getString(1)).append('=').append(rs.getLong(2)).append(' ');
                }
                assertThat(sb.toString().trim()).isEqualTo("D=100 I=1000 U=301");
            }
            c.commit();
        }
    }
}
