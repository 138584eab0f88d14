package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.outbox.SealedBatch;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** PostgreSQL keeps captured rows typed in one row table per table and schema generation (PostgresCapture). */
class PostgresRowTablesTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));

    @Test
    void shouldDropARetiredGenerationOnceItsRowsAreAcknowledged() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection c = db.open()) {
            CaptureInstaller installer = new CaptureInstaller(db.dialect(), Clock.systemUTC());
            installer.install(c, List.of(CHANNEL));
            db.exec("INSERT INTO item VALUES (1, 'old shape')");
            SealedBatch first = Pipe.seal(db, c, "ch").orElseThrow();
            db.exec("INSERT INTO item VALUES (2, 'old shape, not sealed yet')", "ALTER TABLE item ADD COLUMN qty INT");
            installer.install(c, List.of(CHANNEL));
            db.exec("INSERT INTO item VALUES (3, 'new shape', 7)");
            assertThat(rowTables(c)).as("the retired generation still holds rows").hasSize(2);

            SealedBatch second = Pipe.seal(db, c, "ch").orElseThrow();
            List<Change> changes = Pipe.read(db, c, second, "hub");
            assertThat(changes).extracting(ch -> ((Change.Insert) ch).newRow().toString())
                    .containsExactly("{id=2, name=old shape, not sealed yet}", "{id=3, name=new shape, qty=7}");

            Pipe.store(db).acknowledge(c, "hub", "ch", first.sequence());
            assertThat(rowTables(c)).as("batch 2 still needs the retired generation").hasSize(2);
            Pipe.store(db).acknowledge(c, "hub", "ch", second.sequence());
            assertThat(rowTables(c)).as("only the current generation is left").hasSize(1);
            assertThat(count(c, "SELECT count(*) FROM " + rowTables(c).get(0))).isZero();
            assertThat(count(c, "SELECT count(*) FROM sync_outbox")).isZero();
        }
    }

    @Test
    void shouldKeepAHeaderAndItsRowsTogetherWhenTheOutboxIsClearedWhileAWriterCommits() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        ExecutorService startOver = Executors.newSingleThreadExecutor();
        try (Connection c = db.open(); Connection writer = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            db.exec("INSERT INTO item VALUES (1, 'before')");
            // The writer holds the committed header, so the start-over's delete of sync_outbox waits, with its snapshot
            // already taken, until the writer commits a change of its own: header and row.
            try (Statement s = writer.createStatement()) {
                s.executeQuery("SELECT seq FROM sync_outbox FOR UPDATE").close();
                s.executeUpdate("INSERT INTO item VALUES (2, 'committed during the start-over')");
            }
            java.util.concurrent.CompletableFuture<Long> backend = new java.util.concurrent.CompletableFuture<>();
            Future<?> done = startOver.submit(() -> {
                try (Connection r = db.open()) {
                    backend.complete(count(r, "SELECT pg_backend_pid()"));
                    Pipe.store(db).startOver(r);
                    r.commit();
                }
                return null;
            });
            long pid = backend.get(30, TimeUnit.SECONDS);
            await().atMost(Duration.ofSeconds(30))
                    .until(() -> count(c, "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = " + pid) > 0);
            writer.commit();
            done.get(30, TimeUnit.SECONDS);

            String rowTable = rowTables(c).get(0);
            assertThat(count(c, "SELECT count(*) FROM sync_outbox o WHERE o.row_count <> "
                    + "(SELECT count(*) FROM " + rowTable + " r WHERE r.stmt = o.seq)")).as("headers without their rows").isZero();
            SealedBatch kept = Pipe.seal(db, c, "ch").orElseThrow();
            assertThat(Pipe.read(db, c, kept, "hub")).extracting(ch -> ((Change.Insert) ch).newRow().get("id")).containsExactly(2);
        } finally {
            startOver.shutdownNow();
        }
    }

    @Test
    void shouldKeepCapturingAfterAColumnIsWidenedAndThroughDomainsAndFixedLengthTypes() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE DOMAIN sku AS VARCHAR(8) NOT NULL CHECK (VALUE <> '')", "CREATE DOMAIN strict_sku AS sku CHECK (VALUE LIKE 'A%')",
                "CREATE TABLE item (id INT PRIMARY KEY, code strict_sku, name VARCHAR(5), price NUMERIC(5,2), grade CHAR(10), "
                        + "flags BIT(8), codes CHAR(3)[])");
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            // Same signature (the type names do not change), so capture is not reinstalled: the row table must still fit.
            db.exec("ALTER TABLE item ALTER COLUMN name TYPE VARCHAR(200), ALTER COLUMN price TYPE NUMERIC(12,4)");
            String longName = "x".repeat(150);
            db.exec("INSERT INTO item VALUES (1, 'A-1', '" + longName + "', 12345678.1234, 'gold', B'10100101', '{abc,de}')",
                    "DELETE FROM item WHERE id = 1");
            List<Change> changes = Pipe.read(db, c, Pipe.seal(db, c, "ch").orElseThrow(), "hub");
            assertThat(changes).hasSize(2);
            assertThat(((Change.Insert) changes.get(0)).newRow()).containsEntry("name", longName).containsEntry("code", "A-1")
                    .containsEntry("price", new java.math.BigDecimal("12345678.1234")).containsEntry("grade", "gold      ");
            assertThat(((Change.Delete) changes.get(1)).oldRow()).containsEntry("id", 1).containsEntry("code", "A-1");
        }
    }

    @Test
    void shouldCarryTimesWithTimeZoneAndXmlByTheInitialLoadAndTheRowTable() throws Exception {
        TestDb source = newDb(TestDb.Kind.POSTGRES);
        TestDb target = newDb(TestDb.Kind.POSTGRES);
        for (TestDb db : List.of(source, target)) {
            db.exec("CREATE TABLE item (id INT PRIMARY KEY, t TIMETZ, x XML)");
        }
        source.exec("INSERT INTO item VALUES (1, '10:15:30.5+01', '<a b=\"1\">caf\u00e9</a>')");
        try (Connection src = source.open(); Connection tgt = target.open()) {
            installAndLoad(source, src, target, tgt); // row 1 goes by the initial load
            source.exec("INSERT INTO item VALUES (2, '23:59:59.999999-09:30', '<b/>')", "UPDATE item SET t = '00:00:00+14' WHERE id = 1");
            assertThat(Pipe.sync(source, src, "site", target, tgt, "hub", CHANNEL)).isEqualTo(3);
            assertThat(count(tgt, "SELECT count(*) FROM item WHERE id = 1 AND t = '00:00:00+14'::timetz "
                    + "AND x::text = '<a b=\"1\">caf\u00e9</a>'")).isEqualTo(1);
            assertThat(count(tgt, "SELECT count(*) FROM item WHERE id = 2 AND t = '23:59:59.999999-09:30'::timetz "
                    + "AND x::text = '<b/>'")).isEqualTo(1);
        }
    }

    @Test
    void shouldSendTheKeyAndTheChangedOldValuesOfAnUpdateAndTheWholeOldRowOfADelete() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (region VARCHAR(8), id INT, name VARCHAR(100), qty INT, PRIMARY KEY (id, region))");
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            db.exec("INSERT INTO item VALUES ('north', 1, 'bolt', 5), ('north', 2, 'nut', 6)",
                    "UPDATE item SET qty = qty + 1 WHERE id = 1", "UPDATE item SET id = 3 WHERE id = 2",
                    "UPDATE item SET name = NULL WHERE id = 1", "DELETE FROM item WHERE id = 1");
            List<Change> changes = Pipe.read(db, c, Pipe.seal(db, c, "ch").orElseThrow(), "hub");
            assertThat(changes).hasSize(6);
            Change.Update update = (Change.Update) changes.get(2);
            assertThat(update.oldRow()).as("key and changed column").isEqualTo(java.util.Map.of("region", "north", "id", 1, "qty", 5));
            assertThat(update.newRow()).isEqualTo(java.util.Map.of("region", "north", "id", 1, "name", "bolt", "qty", 6));
            Change.Update moved = (Change.Update) changes.get(3);
            assertThat(moved.oldRow()).as("old key of a key change").isEqualTo(java.util.Map.of("region", "north", "id", 2));
            assertThat(moved.newRow()).containsEntry("id", 3).containsEntry("name", "nut");
            Change.Update toNull = (Change.Update) changes.get(4);
            assertThat(toNull.oldRow()).as("a value that became null changed").isEqualTo(java.util.Map.of("region", "north", "id", 1, "name", "bolt"));
            java.util.Map<String, Object> deleted = new java.util.HashMap<>();
            deleted.put("region", "north");
            deleted.put("id", 1);
            deleted.put("name", null);
            deleted.put("qty", 6);
            assertThat(((Change.Delete) changes.get(5)).oldRow()).as("a delete's old row, whole").isEqualTo(deleted);
        }
    }

    @Test
    void shouldSendTheWholeOldRowOfAGenerationRegisteredWithoutItsKey() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection c = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(CHANNEL));
            // As registered before the key was recorded: [key, kind] without the third element.
            db.exec("UPDATE sync_capture SET columns = replace(columns, ',\"key\"', '')");
            assertThat(text(c, "SELECT columns FROM sync_capture")).doesNotContain("\"key\"");
            c.commit();
            db.exec("INSERT INTO item VALUES (1, 'bolt')", "UPDATE item SET name = 'nut'");
            List<Change> changes = Pipe.read(db, c, Pipe.seal(db, c, "ch").orElseThrow(), "hub");
            assertThat(((Change.Update) changes.get(1)).oldRow()).isEqualTo(java.util.Map.of("id", 1, "name", "bolt"));
        }
    }

    /** Installs capture at the source and Syncline's tables at the target, then queues the source's rows by initial load. */
    private static void installAndLoad(TestDb source, Connection src, TestDb target, Connection tgt) throws Exception {
        new CaptureInstaller(source.dialect(), Clock.systemUTC()).install(src, List.of(CHANNEL));
        io.syncline.engine.schema.SyncSchema.install(tgt, target.dialect());
        tgt.commit();
        new io.syncline.engine.load.InitialLoader(source.dialect(), 100).step(src, CHANNEL);
    }

    private static String text(Connection c, String sql) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    @Test
    void shouldDropTheRowTablesOfATableNoLongerCaptured() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)");
        try (Connection c = db.open()) {
            CaptureInstaller installer = new CaptureInstaller(db.dialect(), Clock.systemUTC());
            installer.install(c, List.of(new ChannelSpec("ch", null, List.of(TableSpec.of("item"), TableSpec.of("other")))));
            db.exec("INSERT INTO item VALUES (1)", "INSERT INTO other VALUES (1)");
            assertThat(rowTables(c)).hasSize(2);
            installer.install(c, List.of(new ChannelSpec("ch", null, List.of(TableSpec.of("other")))));
            assertThat(rowTables(c)).hasSize(1);
            List<Change> changes = Pipe.read(db, c, Pipe.seal(db, c, "ch").orElseThrow(), "hub");
            assertThat(changes).extracting(Change::table).containsExactly("other");
        }
    }

    @Test
    void shouldCarryArraysEnumsAndIntervalsThroughTheRowTableLikeTheInitialLoadDoes() throws Exception {
        TestDb source = newDb(TestDb.Kind.POSTGRES);
        TestDb target = newDb(TestDb.Kind.POSTGRES);
        for (TestDb db : List.of(source, target)) {
            db.exec("CREATE TYPE mood AS ENUM ('calm', 'busy')",
                    "CREATE TABLE item (id INT PRIMARY KEY, tags TEXT[], counts INT[], m mood, wait INTERVAL, slots INT[])");
        }
        source.exec("INSERT INTO item VALUES (1, ARRAY['a', 'b c', 'd\"e'], ARRAY[1, NULL, 3], 'busy', '1 day 02:03:04', NULL)");
        try (Connection src = source.open(); Connection tgt = target.open()) {
            installAndLoad(source, src, target, tgt); // row 1 goes by the initial load
            source.exec("INSERT INTO item VALUES (2, '{}', ARRAY[7], 'calm', '-5 minutes', '[0:1]={5,6}')",
                    "UPDATE item SET tags = array_append(tags, 'x'), m = 'calm' WHERE id = 1");
            assertThat(Pipe.sync(source, src, "site", target, tgt, "hub", CHANNEL)).isEqualTo(3);
            assertThat(io.syncline.engine.verify.TableChecksum.of(tgt, target.dialect(), "item"))
                    .isEqualTo(io.syncline.engine.verify.TableChecksum.of(src, source.dialect(), "item"));
            assertThat(count(tgt, "SELECT count(*) FROM item WHERE tags = ARRAY['a', 'b c', 'd\"e', 'x'] AND m = 'calm' "
                    + "AND counts[2] IS NULL AND wait = interval '1 day 02:03:04'")).isEqualTo(1);
            assertThat(count(tgt, "SELECT count(*) FROM item WHERE id = 2 AND array_lower(slots, 1) = 0 AND slots[0] = 5"))
                    .as("an array keeps its lower bound").isEqualTo(1);
        }
    }

    private static List<String> rowTables(Connection c) throws Exception {
        List<String> out = new ArrayList<>();
        try (Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT relname FROM pg_class WHERE relname LIKE 'sync_rows_%' AND relkind = 'r' ORDER BY relname")) {
            while (rs.next()) {
                out.add(rs.getString(1));
            }
        }
        c.commit();
        return out;
    }

    private static long count(Connection c, String sql) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            long n = rs.getLong(1);
            c.commit();
            return n;
        }
    }
}
