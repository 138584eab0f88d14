package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.files.ContentHash;
import io.syncline.engine.files.FileEntry;
import io.syncline.engine.files.FileMeta;
import io.syncline.engine.files.FileOutbox;
import io.syncline.engine.files.FileScanner;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.SyncSchema;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.sql.Connection;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.io.TempDir;
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

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldHashAgainInPlaceTheFilesRecordedWithSha256AndRecordOnlyThoseChangedSince(TestDb.Kind kind, @TempDir Path folder)
            throws Exception {
        TestDb db = newDb(kind);
        Path same = Files.writeString(folder.resolve("same.txt"), "alpha");
        Path edited = Files.writeString(folder.resolve("edited.txt"), "beta, edited since");
        for (Path f : List.of(same, edited)) {
            Files.setLastModifiedTime(f, FileTime.fromMillis(1_700_000_000_000L));
            Files.setPosixFilePermissions(f, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        }
        // sync_file as file channels created it before content hashes (SHA-256 in sha256 and base_sha): same.txt as
        // recorded and shared with the hub (base = content); edited.txt recorded at 5 bytes, shared, edited since.
        String sha = "8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8";
        db.exec("CREATE TABLE sync_file (channel VARCHAR(64) NOT NULL, path_id CHAR(64) NOT NULL, path " + db.dialect().textType()
                + " NOT NULL, size BIGINT NOT NULL, mtime BIGINT NOT NULL, mode INT NOT NULL, sha256 CHAR(64) NOT NULL, "
                + "seq BIGINT NOT NULL, deleted BOOLEAN NOT NULL, moved_from " + db.dialect().textType() + ", base_sha CHAR(64), "
                + "PRIMARY KEY (channel, path_id))",
                "INSERT INTO sync_file VALUES ('docs', '" + pathId("same.txt") + "', 'same.txt', 5, 1700000000000, 420, '" + sha
                        + "', 1, FALSE, NULL, '" + sha + "')",
                "INSERT INTO sync_file VALUES ('docs', '" + pathId("edited.txt") + "', 'edited.txt', 5, 1600000000000, 420, '" + sha
                        + "', 2, FALSE, NULL, '" + sha + "')");
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            SyncSchema.putState(c, "files.seq.docs", "3"); // (FileOutbox's count of the channel's changes: two so far)
            c.commit();
            assertThat(SchemaReader.read(c, "sync_file").byKey()).containsKeys("content_hash", "base_hash")
                    .doesNotContainKeys("sha256", "base_sha");
            assertThat(FileOutbox.recorded(c, "docs", "same.txt").meta().hash()).isEqualTo(ContentHash.UNKNOWN);
            assertThat(FileOutbox.pending(c, "docs", 0, 10)).as("nothing offered with a hash that names nothing").isEmpty();

            // The walk: same.txt has length, time and permissions as recorded (without the mark it would not be read).
            int n = FileOutbox.recordWalk(c, "docs", new FileScanner(folder, List.of(), List.of()), 1_800_000_000_000L, why -> { });
            c.commit();
            assertThat(n).as("only the file edited since is a change").isEqualTo(1);
            FileOutbox.Recorded s = FileOutbox.recorded(c, "docs", "same.txt");
            assertThat(s.meta().hash()).isEqualTo(ContentHash.of(same));
            assertThat(s.seq()).as("no new change: not offered again").isEqualTo(1);
            assertThat(s.base()).as("shared with the hub: still the base").isEqualTo(ContentHash.of(same));
            FileOutbox.Recorded e = FileOutbox.recorded(c, "docs", "edited.txt");
            assertThat(e.meta().hash()).isEqualTo(ContentHash.of(edited));
            assertThat(e.seq()).isEqualTo(3);
            assertThat(e.base()).as("what it was edited from cannot be named").isNull();
            assertThat(FileOutbox.pending(c, "docs", 0, 10)).extracting(FileEntry::path).containsExactly("same.txt", "edited.txt");
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldLeaveOutAFileNotHashedYetAndSendItWhenHashedAfterLaterChanges(TestDb.Kind kind, @TempDir Path folder) throws Exception {
        TestDb db = newDb(kind);
        Path a = Files.writeString(folder.resolve("a.txt"), "alpha");
        Path b = Files.writeString(folder.resolve("b.txt"), "beta");
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            FileScanner scanner = new FileScanner(folder, List.of(), List.of());
            assertThat(FileOutbox.recordWalk(c, "docs", scanner, 1_800_000_000_000L, why -> { })).isEqualTo(2); // a 1, b 2
            c.commit();
            // b as a file the first walk after the upgrade could not read: recorded, its hash not worked out.
            db.exec("UPDATE sync_file SET content_hash = '" + ContentHash.UNKNOWN + "' WHERE path = 'b.txt'");
            Files.writeString(folder.resolve("c.txt"), "gamma");
            FileMeta cMeta = scanner.scan(java.util.Map.of(), 1_800_000_000_000L).stream()
                    .filter(ch -> ch.path().equals("c.txt")).findFirst().map(ch -> ((FileScanner.Put) ch).meta()).orElseThrow();
            FileOutbox.record(c, "docs", List.of(new FileScanner.Put(cMeta))); // 3
            c.commit();
            List<FileEntry> sent = FileOutbox.pending(c, "docs", 0, 10);
            assertThat(sent).extracting(FileEntry::path).as("b left out, not holding back what comes after it")
                    .containsExactly("a.txt", "c.txt");
            FileOutbox.acknowledge(c, "docs", 3);
            c.commit();
            assertThat(FileOutbox.recorded(c, "docs", "b.txt").base()).as("never sent: no base").isNull();

            // b can be read again: hashed in place, with a new number, since a change after it was sent meanwhile.
            assertThat(FileOutbox.recordWalk(c, "docs", scanner, 1_800_000_000_000L, why -> { })).as("no change recorded").isZero();
            c.commit();
            FileOutbox.Recorded now = FileOutbox.recorded(c, "docs", "b.txt");
            assertThat(now.meta().hash()).isEqualTo(ContentHash.of(b));
            assertThat(now.seq()).as("numbered after what was acknowledged").isEqualTo(4);
            assertThat(FileOutbox.pending(c, "docs", 3, 10)).extracting(FileEntry::path).containsExactly("b.txt");
            assertThat(FileOutbox.recorded(c, "docs", "a.txt").seq()).as("a, hashed all along, kept its number").isEqualTo(1);
            assertThat(ContentHash.of(a)).isEqualTo(FileOutbox.recorded(c, "docs", "a.txt").meta().hash());
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldFinishAMoveToContentHashesThatStoppedHalfway(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        // As left by a crash after the first step (H2 commits each ALTER on its own): both columns there.
        db.exec("CREATE TABLE sync_file (channel VARCHAR(64) NOT NULL, path_id CHAR(64) NOT NULL, path " + db.dialect().textType()
                + " NOT NULL, size BIGINT NOT NULL, mtime BIGINT NOT NULL, mode INT NOT NULL, sha256 CHAR(64) NOT NULL, "
                + "seq BIGINT NOT NULL, deleted BOOLEAN NOT NULL, moved_from " + db.dialect().textType() + ", base_sha CHAR(64), "
                + "content_hash VARCHAR(64) DEFAULT '" + ContentHash.UNKNOWN + "' NOT NULL, PRIMARY KEY (channel, path_id))");
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            assertThat(SchemaReader.read(c, "sync_file").byKey()).containsKeys("content_hash", "base_hash")
                    .doesNotContainKeys("sha256", "base_sha");
            SyncSchema.install(c, db.dialect()); // and again: nothing to do
            c.commit();
            FileOutbox.record(c, "docs", List.of(new FileScanner.Put(new FileMeta("a", 1, 1, 0644, ContentHash.of(new byte[] {1})))));
            c.commit();
            assertThat(FileOutbox.pending(c, "docs", 0, 10)).extracting(FileEntry::hash).containsExactly(ContentHash.of(new byte[] {1}));
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRecordAWalkOfSomeFoldersWithoutTouchingTheOthersWhateverTheirNamesHold(TestDb.Kind kind, @TempDir Path folder) throws Exception {
        TestDb db = newDb(kind);
        // Folder names that are patterns to LIKE (% and _), or the same but for case (a database may compare without it).
        for (String p : List.of("50%/a.txt", "50x/b.txt", "a_b/c.txt", "axb/d.txt", "Img/e.txt", "img/f.txt", "img/deep/g.txt")) {
            Path f = folder.resolve(p);
            Files.createDirectories(f.getParent());
            Files.writeString(f, p);
            Files.setLastModifiedTime(f, FileTime.fromMillis(1_700_000_000_000L));
        }
        try (Connection c = db.open()) {
            SyncSchema.install(c, db.dialect());
            FileScanner scanner = new FileScanner(folder, List.of(), List.of());
            assertThat(FileOutbox.recordWalk(c, "docs", scanner, 1_800_000_000_000L, why -> { })).isEqualTo(7);
            c.commit();
            for (String p : List.of("50%/a.txt", "50x/b.txt", "a_b/c.txt", "axb/d.txt", "Img/e.txt", "img/f.txt", "img/deep/g.txt")) {
                Files.delete(folder.resolve(p));
            }
            assertThat(FileOutbox.recordWalk(c, "docs", scanner, 1_800_000_000_000L, why -> { }, false, List.of("50%", "a_b", "img")))
                    .isEqualTo(4);
            c.commit();
            List<String> deleted = new java.util.ArrayList<>();
            for (FileEntry e : FileOutbox.pending(c, "docs", 0, 100)) {
                if (e.deleted()) {
                    deleted.add(e.path());
                }
            }
            assertThat(deleted).containsExactlyInAnyOrder("50%/a.txt", "a_b/c.txt", "img/f.txt", "img/deep/g.txt");
            assertThat(FileOutbox.recordWalk(c, "docs", scanner, 1_800_000_000_000L, why -> { }, false, List.of())).as("no folder").isZero();
            assertThat(FileOutbox.recordWalk(c, "docs", scanner, 1_800_000_000_000L, why -> { })).as("the rest, at a whole walk").isEqualTo(3);
            c.commit();
        }
    }

    /** sync_file's key of a path: its SHA-256. */
    private static String pathId(String path) throws Exception {
        return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                .digest(path.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }
}
