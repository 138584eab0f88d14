package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.SyncException;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.verify.TableChecksum;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Capture at a source and apply at a target of the same kind: DML of every shape, origin tagging, installer checks. */
class CaptureApplyTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));
    private static final String DDL = "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100), qty INT)";

    private static CaptureInstaller installer(TestDb db) {
        return new CaptureInstaller(db.dialect(), Clock.systemUTC());
    }

    private static void run(Connection c, String... sql) throws Exception {
        try (Statement s = c.createStatement()) {
            for (String q : sql) {
                s.executeUpdate(q);
            }
        }
        c.commit();
    }

    /** Capture at the source, Syncline's tables at the target. */
    private static void install(TestDb source, Connection src, TestDb target, Connection tgt) throws Exception {
        installer(source).install(src, List.of(CHANNEL));
        SyncSchema.install(tgt, target.dialect());
        tgt.commit();
    }

    private static void assertSameTable(TestDb source, Connection src, TestDb target, Connection tgt, String table) throws Exception {
        assertThat(Rows.of(tgt, target.dialect(), table)).containsExactlyElementsOf(Rows.of(src, source.dialect(), table));
        assertThat(TableChecksum.of(tgt, target.dialect(), table)).isEqualTo(TableChecksum.of(src, source.dialect(), table));
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldApplyInsertsUpdatesDeletesAndPrimaryKeyChanges(TestDb.Kind kind) throws Exception {
        TestDb source = newDb(kind);
        TestDb target = newDb(kind);
        source.exec(DDL);
        target.exec(DDL);
        try (Connection src = source.open(); Connection tgt = target.open()) {
            install(source, src, target, tgt);

            run(src, "INSERT INTO item VALUES (1, 'one', 1)", "INSERT INTO item VALUES (2, 'two', 2)",
                    "INSERT INTO item VALUES (3, 'three', 3)", "INSERT INTO item VALUES (4, 'four', 4)");
            run(src, "UPDATE item SET name = 'one!' WHERE id = 1");
            run(src, "UPDATE item SET id = 10 WHERE id = 2");            // primary-key change
            run(src, "UPDATE item SET qty = 20 WHERE id = 10");          // then update of the new key
            run(src, "DELETE FROM item WHERE id = 3");
            run(src, "INSERT INTO item VALUES (3, 'three again', 33)");  // delete then re-insert of the same key
            assertThat(Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL)).isEqualTo(9);
            assertSameTable(source, src, target, tgt, "item");

            // All in one transaction, and a key moved away and then reused by a new row.
            run(src, "UPDATE item SET id = 40 WHERE id = 4", "INSERT INTO item VALUES (4, 'new four', 44)",
                    "UPDATE item SET id = 11, name = 'eleven' WHERE id = 1", "DELETE FROM item WHERE id = 10",
                    "INSERT INTO item VALUES (10, 'ten reborn', 100)", "UPDATE item SET qty = NULL WHERE id = 3");
            assertThat(Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL)).isEqualTo(6);
            assertSameTable(source, src, target, tgt, "item");
            assertThat(Rows.of(tgt, target.dialect(), "item")).containsExactly(
                    "{\"id\":3,\"name\":\"three again\",\"qty\":null}",
                    "{\"id\":4,\"name\":\"new four\",\"qty\":44}",
                    "{\"id\":10,\"name\":\"ten reborn\",\"qty\":100}",
                    "{\"id\":11,\"name\":\"eleven\",\"qty\":1}",
                    "{\"id\":40,\"name\":\"four\",\"qty\":4}");
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldFindRowsByTheTargetsKeyWhenItIsNotTheSourcesKey(TestDb.Kind kind) throws Exception {
        TestDb source = newDb(kind);
        TestDb target = newDb(kind);
        source.exec("CREATE TABLE item (id INT PRIMARY KEY, region VARCHAR(10), name VARCHAR(100))");
        target.exec("CREATE TABLE item (id INT, region VARCHAR(10), name VARCHAR(100), PRIMARY KEY (region, id))");
        try (Connection src = source.open(); Connection tgt = target.open()) {
            install(source, src, target, tgt);
            run(src, "INSERT INTO item VALUES (1, 'north', 'bolt'), (2, 'north', 'nut'), (3, 'east', 'screw')");
            run(src, "UPDATE item SET region = 'south' WHERE id = 1");   // a key column at the target only
            run(src, "UPDATE item SET name = 'nut!' WHERE id = 2");      // the target's key unchanged, not in the old row
            run(src, "DELETE FROM item WHERE id = 3");
            assertThat(Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL)).isEqualTo(6);
            assertThat(Rows.of(tgt, target.dialect(), "item")).containsExactly(
                    "{\"id\":2,\"region\":\"north\",\"name\":\"nut!\"}",
                    "{\"id\":1,\"region\":\"south\",\"name\":\"bolt\"}");
        }
    }

    @Test
    void shouldCaptureATruncateOnPostgresAsTheDeleteOfEveryRowItRemoved() throws Exception {
        TestDb source = newDb(TestDb.Kind.POSTGRES);
        TestDb target = newDb(TestDb.Kind.POSTGRES);
        source.exec(DDL);
        target.exec(DDL);
        try (Connection src = source.open(); Connection tgt = target.open()) {
            install(source, src, target, tgt);
            run(src, "INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)");
            assertThat(Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL)).isEqualTo(3);

            // In one transaction: a row inserted just before the TRUNCATE goes with it, one inserted after stays.
            run(src, "INSERT INTO item VALUES (4, 'four', 4)", "TRUNCATE item", "INSERT INTO item VALUES (5, 'five', 5)");
            assertThat(Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL)).as("4 inserted, 4 deleted, 1 inserted").isEqualTo(6);
            assertSameTable(source, src, target, tgt, "item");
            assertThat(Rows.of(tgt, target.dialect(), "item")).containsExactly("{\"id\":5,\"name\":\"five\",\"qty\":5}");

            // A TRUNCATE that is rolled back, and one of an empty table, capture nothing.
            try (Statement s = src.createStatement()) {
                s.execute("TRUNCATE item");
            }
            src.rollback();
            run(src, "DELETE FROM item", "TRUNCATE item");
            assertThat(Pipe.sync(source, src, "site1", target, tgt, "hub", CHANNEL)).as("only the DELETE").isEqualTo(1);
            assertThat(Rows.of(tgt, target.dialect(), "item")).isEmpty();
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldTagAppliedChangesWithOriginAndNotSendThemBackToIt(TestDb.Kind kind) throws Exception {
        TestDb site = newDb(kind);
        TestDb hub = newDb(kind);
        site.exec(DDL);
        hub.exec(DDL);
        try (Connection src = site.open(); Connection h = hub.open()) {
            installer(site).install(src, List.of(CHANNEL));
            installer(hub).install(h, List.of(CHANNEL)); // the hub captures the same table (it sends it on)
            // Two batches: within one batch (one transaction at the hub) PostgreSQL's bulk apply folds the changes of
            // a row into its final version, so the hub would capture the net effect rather than every step.
            run(src, "INSERT INTO item VALUES (1, 'from site1', 1)", "INSERT INTO item VALUES (2, 'from site1', 2)");
            assertThat(Pipe.sync(site, src, "site1", hub, h, "hub", CHANNEL)).isEqualTo(2);
            run(src, "UPDATE item SET qty = 3 WHERE id = 2");
            assertThat(Pipe.sync(site, src, "site1", hub, h, "hub", CHANNEL)).isEqualTo(1);
            run(h, "INSERT INTO item VALUES (100, 'local at hub', 0)"); // same connection, after the apply: untagged

            List<String> origins = new ArrayList<>(); // one entry per captured row, in capture order
            // PostgreSQL records one outbox row per statement, with its row count; H2 one per row.
            String rows = kind == TestDb.Kind.POSTGRES ? "row_count" : "1";
            try (Statement s = h.createStatement(); ResultSet rs = s.executeQuery("SELECT origin, " + rows + " FROM sync_outbox ORDER BY seq")) {
                while (rs.next()) {
                    for (int i = 0; i < rs.getInt(2); i++) {
                        origins.add(rs.getString(1));
                    }
                }
            }
            h.commit();
            assertThat(origins).containsExactly("site1", "site1", "site1", null);

            SealedBatch batch = Pipe.seal(hub, h, "ch").orElseThrow();
            assertThat(batch.rowCount()).isEqualTo(4);
            List<Change> toSite1 = Pipe.read(hub, h, batch, "site1");
            assertThat(OutboxGapTest.ids(toSite1)).containsExactly(100);
            List<Change> toSite2 = Pipe.read(hub, h, batch, "site2");
            assertThat(OutboxGapTest.ids(toSite2)).containsExactly(1, 2, 2, 100);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRefuseTablesWithoutPrimaryKeyNamingEachOfThem(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec(DDL, "CREATE TABLE no_key_a (id INT, v VARCHAR(10))", "CREATE TABLE no_key_b (v VARCHAR(10))");
        ChannelSpec bad = new ChannelSpec("ch", null, List.of(TableSpec.of("item"), TableSpec.of("no_key_a"), TableSpec.of("no_key_b")));
        try (Connection c = db.open()) {
            assertThatThrownBy(() -> installer(db).install(c, List.of(bad)))
                    .isInstanceOf(SyncException.class)
                    .hasMessageContaining("no_key_a")
                    .hasMessageContaining("no_key_b")
                    .hasMessageContaining("primary key")
                    .satisfies(e -> assertThat(((SyncException) e).stage()).isEqualTo(SyncException.Stage.CONFIG));
            // Nothing was installed: not even the table that has a key.
            run(c, "INSERT INTO item VALUES (1, 'x', 1)");
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE LOWER(table_name) = 'sync_trigger_hist'")) {
                rs.next();
                if (rs.getInt(1) > 0) {
                    try (ResultSet hist = c.createStatement().executeQuery("SELECT COUNT(*) FROM sync_trigger_hist")) {
                        hist.next();
                        assertThat(hist.getInt(1)).isZero();
                    }
                }
            }
            c.commit();
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldReinstallCaptureAfterColumnIsAddedSoNewChangesCarryIt(TestDb.Kind kind) throws Exception {
        TestDb source = newDb(kind);
        TestDb target = newDb(kind);
        source.exec(DDL);
        target.exec(DDL, "ALTER TABLE item ADD COLUMN color VARCHAR(20)");
        try (Connection src = source.open(); Connection tgt = target.open()) {
            assertThat(installer(source).install(src, List.of(CHANNEL))).containsExactly("item");
            SyncSchema.install(tgt, target.dialect());
            tgt.commit();
            run(src, "INSERT INTO item VALUES (1, 'before', 1)");
            String before = signature(src);

            run(src, "ALTER TABLE item ADD COLUMN color VARCHAR(20)");
            assertThat(installer(source).install(src, List.of(CHANNEL))).as("an upgrade is not a fresh install").isEmpty();
            assertThat(SyncSchema.getState(src, io.syncline.engine.load.InitialLoadState.key("ch", "item")))
                    .as("a table that gained a column is loaded again").isEqualTo(io.syncline.engine.load.InitialLoadState.START);
            src.commit();
            assertThat(signature(src)).isNotEqualTo(before).contains("color");
            assertThat(installer(source).install(src, List.of(CHANNEL))).isEmpty(); // idempotent

            run(src, "INSERT INTO item VALUES (2, 'after', 2, 'red')", "UPDATE item SET color = 'blue' WHERE id = 1");
            SealedBatch batch = Pipe.seal(source, src, "ch").orElseThrow();
            List<Change> changes = Pipe.read(source, src, batch, "hub");
            assertThat(changes).hasSize(3);
            assertThat(((Change.Insert) changes.get(0)).newRow()).doesNotContainKey("color");
            assertThat(((Change.Insert) changes.get(1)).newRow()).containsEntry("color", "red");
            assertThat(((Change.Update) changes.get(2)).newRow()).containsEntry("color", "blue");
            assertThat(Pipe.apply(target, tgt, "site1", CHANNEL, batch.sequence(), changes)).isInstanceOf(ApplyOutcome.Applied.class);
            assertSameTable(source, src, target, tgt, "item");
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldCaptureMixedCaseColumnsUnderLowerCaseKeys(TestDb.Kind kind) throws Exception {
        TestDb source = newDb(kind);
        TestDb target = newDb(kind);
        String ddl = "CREATE TABLE item (\"Id\" INT PRIMARY KEY, \"Name\" VARCHAR(50), \"Data\" "
                + (kind == TestDb.Kind.POSTGRES ? "BYTEA" : "VARBINARY(50)") + ", \"Doc\" " + (kind == TestDb.Kind.POSTGRES ? "JSON" : "JSON") + ")";
        source.exec(ddl);
        target.exec(ddl);
        try (Connection src = source.open(); Connection tgt = target.open()) {
            install(source, src, target, tgt);
            String doc = kind == TestDb.Kind.POSTGRES ? "'{\"z\": 1, \"a\": 2}'" : "JSON '{\"z\": 1, \"a\": 2}'";
            String bytes = kind == TestDb.Kind.POSTGRES ? "'\\x0001ff'" : "X'0001ff'";
            run(src, "INSERT INTO item VALUES (1, 'one', " + bytes + ", " + doc + ")", "INSERT INTO item VALUES (2, 'two', NULL, NULL)");
            run(src, "UPDATE item SET \"Id\" = 3 WHERE \"Id\" = 1", "DELETE FROM item WHERE \"Id\" = 2");
            SealedBatch batch = Pipe.seal(source, src, "ch").orElseThrow();
            List<Change> changes = Pipe.read(source, src, batch, "hub");
            assertThat(((Change.Insert) changes.get(0)).newRow()).containsOnlyKeys("id", "name", "data", "doc");
            assertThat(((Change.Insert) changes.get(0)).newRow().get("doc").toString()).isEqualTo("{z=1, a=2}"); // key order kept
            assertThat(Pipe.apply(target, tgt, "site1", CHANNEL, batch.sequence(), changes)).isInstanceOf(ApplyOutcome.Applied.class);
            assertSameTable(source, src, target, tgt, "item");
            assertThat(Rows.of(tgt, target.dialect(), "item")).hasSize(1);
        }
    }

    private static String signature(Connection c) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT signature FROM sync_trigger_hist")) {
            assertThat(rs.next()).isTrue();
            String sig = rs.getString(1);
            c.commit();
            return sig.toLowerCase(java.util.Locale.ROOT);
        }
    }
}
