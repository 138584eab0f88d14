package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.BadBatchException;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** PostgreSQL applies runs of upserts in bulk; order against other statements, folding and errors must hold. */
class PostgresBulkApplyTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));

    private static Map<String, Object> row(int id, String name, String day) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("name", name);
        m.put("day", day);
        return m;
    }

    @Test
    void shouldKeepOrderAcrossRunsAndFoldRepeatedKeysAndRefuseABadValueWhole() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name TEXT NOT NULL, day DATE)");
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            List<Change> changes = new ArrayList<>();
            for (int i = 1; i <= 4500; i++) { // more than one bulk run
                changes.add(new Change.Insert("item", row(i, "n\t" + i + "\\ \n é", "2026-01-02")));
            }
            changes.add(new Change.Update("item", row(7, "x", null), row(7, "seven", null)));   // same key again: folded
            changes.add(new Change.Delete("item", row(8, "x", null)));                          // a delete between runs
            changes.add(new Change.Insert("item", row(8, "eight again", "2026-03-04")));       // and the key reused after it
            Pipe.apply(db, c, "site1", CHANNEL, 1, changes);
            assertThat(Rows.of(c, db.dialect(), "item")).hasSize(4500)
                    .contains("{\"id\":7,\"name\":\"seven\",\"day\":null}", "{\"id\":8,\"name\":\"eight again\",\"day\":\"2026-03-04\"}",
                            "{\"id\":9,\"name\":\"n\\t9\\\\ \\n é\",\"day\":\"2026-01-02\"}");

            List<Change> bad = List.of(new Change.Insert("item", row(5000, "fine", "2026-01-01")),
                    new Change.Insert("item", row(5001, "bad", "not a date")));
            assertThatThrownBy(() -> Pipe.apply(db, c, "site1", CHANNEL, 2, bad))
                    .isInstanceOf(BadBatchException.class).hasMessageContaining("not a date");
            assertThat(Rows.of(c, db.dialect(), "item")).hasSize(4500);
            assertThat(BatchApplier.lastApplied(c, "site1", "ch")).isEqualTo(1);
        }
    }

    @Test
    void shouldUpsertInsertedRowsWhoseKeysAlreadyExistAtTheTarget() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name TEXT NOT NULL, day DATE)",
                "INSERT INTO item VALUES (3, 'already here', NULL)");
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            List<Change> changes = new ArrayList<>();
            for (int i = 1; i <= 500; i++) { // inserted at the source; key 3 exists here (the target diverged)
                changes.add(new Change.Insert("item", row(i, "from site " + i, "2026-05-01")));
            }
            Pipe.apply(db, c, "site1", CHANNEL, 1, changes);
            assertThat(Rows.of(c, db.dialect(), "item")).hasSize(500)
                    .contains("{\"id\":3,\"name\":\"from site 3\",\"day\":\"2026-05-01\"}");
            assertThat(BatchApplier.lastApplied(c, "site1", "ch")).isEqualTo(1);
        }
    }
}
