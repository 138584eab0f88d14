package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.DriverManager;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** FileOutbox on a real (H2) database: what the receiver's acknowledgements, page by page, leave of the record. */
class FileOutboxTest {
    private static final String CH = "docs";
    private Connection c;
    private String url;

    @BeforeEach
    void open() throws Exception {
        url = "jdbc:h2:mem:" + UUID.randomUUID();
        c = DriverManager.getConnection(url);
        c.setAutoCommit(false);
        SyncSchema.install(c, new H2Dialect());
        c.commit();
    }

    @AfterEach
    void close() throws Exception {
        c.close();
    }

    private static FileMeta meta(String path, String content) {
        return new FileMeta(path, content.length(), 1_000, 0644, ContentHash.of(content.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

    @Test
    void shouldSettleEachAcknowledgedPageAndLeaveTheChangesAfterIt() throws Exception {
        // Changes 1-4: files a, b, c, d. Then 5: a deleted; 6 and 7: b moved to b2 (b2 from b, b's tombstone); 8: c deleted;
        // 9: file e.
        FileOutbox.record(c, CH, List.of(new FileScanner.Put(meta("a", "1")), new FileScanner.Put(meta("b", "2")),
                new FileScanner.Put(meta("c", "3")), new FileScanner.Put(meta("d", "4"))));
        FileOutbox.record(c, CH, List.of(new FileScanner.Delete("a"), new FileScanner.Move("b", meta("b2", "2")),
                new FileScanner.Delete("c"), new FileScanner.Put(meta("e", "5"))));
        assertThat(seqs(FileOutbox.pending(c, CH, 0, 100))).containsExactly(4L, 5L, 6L, 7L, 8L, 9L);

        FileOutbox.acknowledge(c, CH, 6); // up to the move to b2 (not b's tombstone, 7)
        List<FileEntry> left = FileOutbox.pending(c, CH, 0, 100);
        assertThat(seqs(left)).as("a's tombstone is gone: the receiver has it").containsExactly(4L, 6L, 7L, 8L, 9L);
        assertThat(left.get(1).path()).isEqualTo("b2");
        assertThat(left.get(1).from()).as("the move's source, no longer needed").isNull();
        assertThat(left.get(1).base()).as("what both now have").isEqualTo(meta("b2", "2").hash());
        assertThat(left.get(2).deleted()).as("b's tombstone, not acknowledged yet").isTrue();
        assertThat(FileOutbox.recorded(c, CH, "e").base()).as("not acknowledged yet").isNull();

        FileOutbox.acknowledge(c, CH, 9);
        assertThat(seqs(FileOutbox.pending(c, CH, 0, 100))).as("tombstones of b and c dropped by the second page")
                .containsExactly(4L, 6L, 9L);
        assertThat(FileOutbox.recorded(c, CH, "e").base()).isEqualTo(meta("e", "5").hash());
        assertThat(FileOutbox.recorded(c, CH, "d").base()).as("acknowledged with the first page").isEqualTo(meta("d", "4").hash());
        assertThat(FileOutbox.acknowledged(c, CH)).isEqualTo(9);

        FileOutbox.acknowledge(c, CH, 7); // an older acknowledgement changes nothing
        assertThat(FileOutbox.acknowledged(c, CH)).isEqualTo(9);
    }

    @Test
    void shouldCommitAWholeWalksNewFilesInPortionsWhileItGoesOnAndKeepEveryOtherChangeForItsEnd(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000; // past the walk's two seconds of doubt
        Files.writeString(folder.resolve("old.txt"), "moved later");
        Files.writeString(folder.resolve("report"), "a file, then a folder");
        Files.createDirectories(folder.resolve("keep"));
        Files.writeString(folder.resolve("keep/a.txt"), "kept");
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(3);
        c.commit();

        Files.createDirectories(folder.resolve("moved"));
        Files.move(folder.resolve("old.txt"), folder.resolve("moved/new-name.txt"));
        Files.delete(folder.resolve("report"));
        Files.createDirectories(folder.resolve("report"));
        Files.writeString(folder.resolve("report/page1"), "below a recorded file's path: after its deletion");
        Files.writeString(folder.resolve("KEEP"), "a recorded folder's path but for case");
        Files.writeString(folder.resolve("copy.txt"), "kept"); // a recorded file's content
        // One fewer than two portions: one is committed early, and a file recorded early that should not be (whatever
        // the order the walk finds them in) would make a second.
        int fresh = 2 * FileOutbox.EARLY_PORTION - 1;
        Files.createDirectories(folder.resolve("n"));
        for (int i = 0; i < fresh; i++) {
            Files.writeString(folder.resolve(String.format("n/f%05d", i)), "new file " + i);
        }
        List<Long> visibleAtEachPortion = new ArrayList<>();
        int n = FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, null, null, () -> {
            try (Connection other = DriverManager.getConnection(url);
                 java.sql.Statement st = other.createStatement();
                 java.sql.ResultSet rs = st.executeQuery("SELECT COUNT(*) FROM sync_file")) {
                rs.next();
                visibleAtEachPortion.add(rs.getLong(1));
            } catch (java.sql.SQLException e) {
                throw new IllegalStateException(e);
            }
        });
        assertThat(visibleAtEachPortion).as("each portion committed (seen by another connection) while the walk went on")
                .containsExactly(3L + FileOutbox.EARLY_PORTION);
        c.commit();
        // The move, report's deletion, report/page1, KEEP, copy.txt and the new files; a move is two rows.
        assertThat(n).isEqualTo(1 + 1 + 3 + fresh);
        List<FileEntry> all = FileOutbox.pending(c, CH, 3, 10_000);
        assertThat(all).hasSize(n + 1);
        assertThat(all).extracting(FileEntry::path).doesNotHaveDuplicates();
        List<FileEntry> early = all.subList(0, FileOutbox.EARLY_PORTION);
        assertThat(early).as("only new files no other change can touch").allMatch(e -> e.path().startsWith("n/") && e.from() == null);
        List<String> rest = all.subList(FileOutbox.EARLY_PORTION, all.size()).stream().map(FileEntry::path).toList();
        assertThat(rest).as("at the walk's end, in its order: deletions, moves, then the other files")
                .startsWith("report", "moved/new-name.txt", "old.txt")
                .contains("report/page1", "KEEP", "copy.txt");
        assertThat(all.get(FileOutbox.EARLY_PORTION + 1).from()).as("a move, its content not sent again").isEqualTo("old.txt");

        FileOutbox.acknowledge(c, CH, FileOutbox.next(c, CH) - 1);
        c.commit();
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, null, null, () -> { }))
                .as("nothing new for the next walk").isZero();
    }

    @Test
    void shouldKeepTheContentOfSmallNewFilesRecordedEarlyAsTheWalkReadItAndNothingElse(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000;
        Files.writeString(folder.resolve("old.txt"), "recorded before");
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(1);
        c.commit();
        Files.writeString(folder.resolve("copy.txt"), "recorded before"); // a recorded file's content: not recorded early
        Files.write(folder.resolve("large.bin"), new byte[FreshContent.MAX_FILE + 1]);
        Files.createDirectories(folder.resolve("n"));
        java.util.Random rnd = new java.util.Random(7);
        for (int i = 0; i < FileOutbox.EARLY_PORTION; i++) {
            byte[] b = new byte[rnd.nextInt(2048)];
            rnd.nextBytes(b);
            Files.write(folder.resolve(String.format("n/f%05d", i)), b);
        }
        FreshContent kept = new FreshContent(64 << 20);
        int n = FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, null, null, () -> { }, kept);
        c.commit();
        assertThat(n).isEqualTo(FileOutbox.EARLY_PORTION + 2);
        assertThat(kept.entries()).as("only the files recorded early: not copy.txt, nor large.bin").isEqualTo(FileOutbox.EARLY_PORTION);
        int found = 0;
        for (FileEntry e : FileOutbox.pending(c, CH, 1, 10_000)) {
            assertThat(e.hash()).as("hashed in the ring as in a stream").isEqualTo(ContentHash.of(folder.resolve(e.path())));
            byte[] b = FreshContentTest.taken(kept, CH, e.path(), e.size(), e.hash());
            if (e.path().startsWith("n/")) {
                assertThat(b).as(e.path()).isEqualTo(Files.readAllBytes(folder.resolve(e.path())));
                found++;
            } else {
                assertThat(b).as(e.path() + ": not recorded early, or too large").isNull();
            }
        }
        assertThat(found).isEqualTo(FileOutbox.EARLY_PORTION);

        // A ring of 10 KiB: the walk keeps what fits.
        Files.createDirectories(folder.resolve("m"));
        for (int i = 0; i < FileOutbox.EARLY_PORTION; i++) {
            Files.write(folder.resolve(String.format("m/f%05d", i)), new byte[1024 + i]);
        }
        FreshContent small = new FreshContent(10 * 1024);
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, null, null, () -> { }, small))
                .isEqualTo(FileOutbox.EARLY_PORTION);
        c.commit();
        assertThat(small.bytes()).isBetween(9L * 1024, 10L * 1024);
        int keptSmall = small.entries();
        assertThat(keptSmall).as("1,024 to 1,032 bytes each").isBetween(8, 9);
        int taken = 0;
        for (FileEntry e : FileOutbox.pending(c, CH, FileOutbox.next(c, CH) - 1 - FileOutbox.EARLY_PORTION, 10_000)) {
            byte[] b = FreshContentTest.taken(small, CH, e.path(), e.size(), e.hash());
            if (b != null) {
                assertThat(b).as(e.path()).isEqualTo(Files.readAllBytes(folder.resolve(e.path())));
                taken++;
            }
        }
        assertThat(taken).as("each one kept, taken in the order kept").isEqualTo(keptSmall);
    }

    @Test
    void shouldRecordNothingEarlyWhileARecordPredatesContentHashesSoThatItsFileIsNotOfferedAgain(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000;
        Files.writeString(folder.resolve("old.txt"), "recorded before content hashes");
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(1);
        FileOutbox.acknowledge(c, CH, 1);
        try (java.sql.Statement st = c.createStatement()) { // as SyncSchema's upgrade leaves it
            st.executeUpdate("UPDATE sync_file SET content_hash = '" + ContentHash.UNKNOWN + "', base_hash = '" + ContentHash.UNKNOWN + "'");
        }
        c.commit();
        Files.createDirectories(folder.resolve("n"));
        for (int i = 0; i < FileOutbox.EARLY_PORTION; i++) {
            Files.writeString(folder.resolve(String.format("n/f%05d", i)), "new file " + i);
        }
        List<String> portions = new ArrayList<>();
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, null, null, () -> portions.add("early")))
                .isEqualTo(FileOutbox.EARLY_PORTION);
        c.commit();
        assertThat(portions).as("nothing committed early").isEmpty();
        assertThat(FileOutbox.pending(c, CH, 1, 10_000)).as("the old file hashed in place, not offered again")
                .hasSize(FileOutbox.EARLY_PORTION).noneMatch(e -> e.path().equals("old.txt"));
        assertThat(FileOutbox.recorded(c, CH, "old.txt").meta().hash()).isNotEqualTo(ContentHash.UNKNOWN);
    }

    @Test
    void shouldRecordALargeMoveBetweenFoldersHeardInDifferentWalksAsAMove(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000; // past the walk's two seconds of doubt
        for (String d : List.of("a", "b", "c")) {
            Files.createDirectories(folder.resolve(d));
        }
        Files.write(folder.resolve("a/x.bin"), FileFolderTest.random((int) FileOutbox.WIDEN_FOR_BYTES, 1));
        Files.writeString(folder.resolve("a/y.txt"), "small");
        Files.writeString(folder.resolve("c/w.txt"), "w");
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(3);
        FileOutbox.acknowledge(c, CH, 3);

        Files.move(folder.resolve("a/x.bin"), folder.resolve("b/x.bin"));
        Files.writeString(folder.resolve("c/z.txt"), "new, where nothing was heard yet");
        Files.writeString(folder.resolve("c/w.txt"), "w, changed");
        // Only a is heard of first (b's event comes in the next burst): x.bin is not taken as deleted and sent again;
        // the whole folder is walked instead.
        java.util.Set<String> held = new java.util.HashSet<>();
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("a"), held)).isEqualTo(3);
        assertThat(held).as("nothing held back by a whole walk").isEmpty();
        List<FileEntry> moved = FileOutbox.pending(c, CH, 3, 10);
        assertThat(moved).extracting(FileEntry::path, FileEntry::from).containsExactly(
                org.assertj.core.groups.Tuple.tuple("b/x.bin", "a/x.bin"), org.assertj.core.groups.Tuple.tuple("a/x.bin", null),
                org.assertj.core.groups.Tuple.tuple("c/w.txt", null), org.assertj.core.groups.Tuple.tuple("c/z.txt", null));
        assertThat(moved.get(1).deleted()).isTrue();
        assertThat(moved.get(2).hash()).as("a recorded file changed outside the folders heard").isEqualTo(ContentHash.of(
                "w, changed".getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("b"), held)).as("b: nothing new").isZero();
        FileOutbox.acknowledge(c, CH, FileOutbox.next(c, CH) - 1);

        Files.move(folder.resolve("a/y.txt"), folder.resolve("b/y.txt"));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("a"), held))
                .as("a small file: cheaper to hold back than to walk everything").isZero();
        assertThat(held).containsExactly("a/y.txt");
        assertThat(FileOutbox.recorded(c, CH, "a/y.txt").meta()).as("recorded as it was").isNotNull();
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("a", "b"), held))
                .as("walked again with the next burst's folder: a move").isEqualTo(1);
        assertThat(held).isEmpty();
        assertThat(FileOutbox.pending(c, CH, FileOutbox.acknowledged(c, CH), 10)).extracting(FileEntry::path, FileEntry::from)
                .containsExactly(org.assertj.core.groups.Tuple.tuple("b/y.txt", "a/y.txt"), org.assertj.core.groups.Tuple.tuple("a/y.txt", null));

        Files.delete(folder.resolve("b/y.txt"));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("b"), held)).isZero();
        assertThat(held).containsExactly("b/y.txt");
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("c"), held))
                .as("the folder of what was held back not walked: nothing recorded of it").isZero();
        assertThat(FileOutbox.recorded(c, CH, "b/y.txt").meta()).isNotNull();
        assertThat(held).as("still held back").containsExactly("b/y.txt");
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("b"), held))
                .as("still gone, and nothing paired it: a deletion").isEqualTo(1);
        assertThat(FileOutbox.recorded(c, CH, "b/y.txt").meta()).isNull();
        assertThat(held).isEmpty();

        Files.createDirectories(folder.resolve("bb"));
        Files.writeString(folder.resolve("bb/q.txt"), "q");
        Files.write(folder.resolve("c/big.bin"), FileFolderTest.random((int) FileOutbox.WIDEN_FOR_BYTES, 3));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("bb", "c"), held)).isEqualTo(2);
        Files.delete(folder.resolve("bb/q.txt"));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("bb"), held)).isZero();
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("b"), held)).isZero();
        assertThat(held).as("b is not bb: not looked at, still held back").containsExactly("bb/q.txt");
        Files.delete(folder.resolve("c/big.bin"));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("c"), held))
                .as("widened to a whole walk: what was held back is recorded with it").isEqualTo(2);
        assertThat(held).isEmpty();
        assertThat(FileOutbox.recorded(c, CH, "bb/q.txt").meta()).isNull();
        assertThat(FileOutbox.recorded(c, CH, "c/big.bin").meta()).isNull();

        Files.move(folder.resolve("b/x.bin"), folder.resolve("a/x.bin"));
        // The folders this node changed itself (not heard): exactly those are looked at.
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("b"), null)).isEqualTo(1);
        assertThat(FileOutbox.recorded(c, CH, "b/x.bin").meta()).as("a deletion").isNull();
        assertThat(FileOutbox.recorded(c, CH, "a/x.bin")).as("not looked at (its tombstone was acknowledged)").isNull();
    }

    @Test
    void shouldTellOfAFileThatCannotTravelOnceWhenAWalkIsWidened(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000;
        Files.createDirectories(folder.resolve("a"));
        Files.write(folder.resolve("a/x.bin"), FileFolderTest.random((int) FileOutbox.WIDEN_FOR_BYTES, 2));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(1);
        Files.delete(folder.resolve("a/x.bin"));
        Files.writeString(folder.resolve("a/bad\\name.txt"), "a backslash cannot travel");
        List<String> told = new ArrayList<>();
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, told::add, false, List.of("a"), new java.util.HashSet<>())).as("the deletion").isEqualTo(1);
        assertThat(told).singleElement().asString().contains("bad");
    }

    @Test
    void shouldRecordNewFilesInOneBatchAndAFileBackWhereItsTombstoneStillIs(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000; // past the walk's two seconds of doubt
        for (int i = 0; i < 2_500; i++) { // more than one batch
            Files.writeString(folder.resolve("f" + i + ".txt"), "content " + i);
        }
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(2_500);
        List<FileEntry> all = FileOutbox.pending(c, CH, 0, 3_000);
        assertThat(all).hasSize(2_500);
        assertThat(seqs(all)).as("numbered in order, from 1").containsExactlyElementsOf(
                java.util.stream.LongStream.rangeClosed(1, 2_500).boxed().toList());
        assertThat(FileOutbox.recorded(c, CH, "f7.txt").meta().hash()).isEqualTo(ContentHash.of("content 7".getBytes()));

        Files.delete(folder.resolve("f7.txt"));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(1);
        assertThat(FileOutbox.recorded(c, CH, "f7.txt").meta()).as("a tombstone").isNull();
        Files.writeString(folder.resolve("f7.txt"), "back again"); // before the deletion was acknowledged
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(1);
        FileOutbox.Recorded back = FileOutbox.recorded(c, CH, "f7.txt");
        assertThat(back.meta().hash()).isEqualTo(ContentHash.of("back again".getBytes()));
        assertThat(back.seq()).isEqualTo(2_502);
    }

    private static List<Long> seqs(List<FileEntry> entries) {
        List<Long> out = new ArrayList<>();
        entries.forEach(e -> out.add(e.seq()));
        return out;
    }

    @Test
    void shouldRecordEditedFilesAloneAndLeaveToAWalkAnyThatIsNoLongerAPlainFile(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of("*.tmp"));
        Path a = Files.writeString(Files.createDirectories(folder.resolve("d")).resolve("a.txt"), "one");
        Path b = Files.writeString(folder.resolve("d/b.txt"), "two");
        Files.writeString(folder.resolve("d/other.txt"), "never looked at");
        long old = System.currentTimeMillis() - 60_000;
        for (Path f : List.of(a, b)) {
            Files.setLastModifiedTime(f, java.nio.file.attribute.FileTime.fromMillis(old));
        }
        FileOutbox.record(c, CH, List.of(new FileScanner.Put(scanner.lookAt("d/a.txt", null, System.currentTimeMillis())),
                new FileScanner.Put(scanner.lookAt("d/b.txt", null, System.currentTimeMillis()))));
        long next = FileOutbox.next(c, CH);

        Files.writeString(a, "one, edited");
        assertThat(FileOutbox.recordEdited(c, CH, scanner, System.currentTimeMillis(), List.of("d/a.txt", "d/b.txt")))
                .as("a changed, b did not").isEqualTo(1);
        assertThat(FileOutbox.recorded(c, CH, "d/a.txt").meta().hash()).isEqualTo(ContentHash.of("one, edited".getBytes()));
        assertThat(FileOutbox.recorded(c, CH, "d/a.txt").seq()).isEqualTo(next);
        assertThat(FileOutbox.recorded(c, CH, "d/other.txt")).as("its folder was not walked").isNull();

        Files.delete(b);
        Files.writeString(a, "one, edited again");
        assertThat(FileOutbox.recordEdited(c, CH, scanner, System.currentTimeMillis(), List.of("d/a.txt", "d/b.txt")))
                .as("b is gone: its folder must be walked").isEqualTo(-1);
        Files.createDirectories(b);
        assertThat(FileOutbox.recordEdited(c, CH, scanner, System.currentTimeMillis(), List.of("d/b.txt"))).as("now a folder").isEqualTo(-1);
        Files.writeString(folder.resolve("d/c.tmp"), "left out");
        assertThat(FileOutbox.recordEdited(c, CH, scanner, System.currentTimeMillis(), List.of("d/c.tmp"))).as("left out by the patterns")
                .isZero();
        Path other = Files.createLink(folder.resolve("d/other-name.txt"), a);
        Files.writeString(other, "through its other name");
        assertThat(FileOutbox.recordEdited(c, CH, scanner, System.currentTimeMillis(), List.of("d/other-name.txt")))
                .as("a file with two names: its folders must be walked (the other name changed too)").isEqualTo(-1);
        assertThat(FileOutbox.next(c, CH)).as("nothing recorded by the refused ones").isEqualTo(next + 1);
        assertThat(FileOutbox.recorded(c, CH, "d/a.txt").meta().hash()).isEqualTo(ContentHash.of("one, edited".getBytes()));
        if (!"root".equals(System.getProperty("user.name"))) { // (root reads any file)
            Path locked = Files.writeString(folder.resolve("d/locked.txt"), "secret");
            FileOutbox.record(c, CH, List.of(new FileScanner.Put(scanner.lookAt("d/locked.txt", null, System.currentTimeMillis()))));
            Files.writeString(locked, "secret, edited");
            Files.setPosixFilePermissions(locked, java.nio.file.attribute.PosixFilePermissions.fromString("---------"));
            assertThat(FileOutbox.recordEdited(c, CH, scanner, System.currentTimeMillis(), List.of("d/locked.txt")))
                    .as("cannot be read: the folder walk warns").isEqualTo(-1);
        }
    }
}
