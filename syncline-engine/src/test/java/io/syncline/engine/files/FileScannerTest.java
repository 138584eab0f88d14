package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileScannerTest {
    @TempDir
    Path root;

    static final long NOW = 2_000_000_000_000L;

    /** Writes a file dated an hour before NOW, so the scanner trusts its length and time. */
    Path write(String path, String content) throws Exception {
        Path f = root.resolve(path);
        Files.createDirectories(f.getParent());
        Files.writeString(f, content);
        Files.setLastModifiedTime(f, FileTime.fromMillis(NOW - 3_600_000));
        return f;
    }

    static Map<String, FileMeta> record(Map<String, FileMeta> known, List<FileScanner.Change> changes) {
        Map<String, FileMeta> next = new HashMap<>(known);
        for (FileScanner.Change c : changes) {
            switch (c) {
                case FileScanner.Put p -> next.put(p.path(), p.meta());
                case FileScanner.Delete d -> next.remove(d.path());
                case FileScanner.Move m -> {
                    next.remove(m.from());
                    next.put(m.path(), m.to());
                }
            }
        }
        return next;
    }

    @Test
    void shouldFindNewChangedMovedAndDeletedFiles() throws Exception {
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        write("a.txt", "alpha");
        write("nested/deep/b.txt", "beta");
        write("empty", "");
        write("ünïcødé/名前.txt", "gamma");
        List<FileScanner.Change> first = scanner.scan(Map.of(), NOW);
        assertThat(first).extracting(FileScanner.Change::path)
                .containsExactly("a.txt", "empty", "nested/deep/b.txt", "ünïcødé/名前.txt");
        assertThat(first).allMatch(c -> c instanceof FileScanner.Put);
        Map<String, FileMeta> known = record(Map.of(), first);
        assertThat(scanner.scan(known, NOW)).as("nothing changed").isEmpty();

        write("a.txt", "alpha, edited");
        Files.move(root.resolve("nested/deep/b.txt"), Files.createDirectories(root.resolve("moved")).resolve("b.txt"));
        Files.delete(root.resolve("empty"));
        List<FileScanner.Change> second = scanner.scan(known, NOW);
        assertThat(second).containsExactlyInAnyOrder(
                new FileScanner.Delete("empty"),
                new FileScanner.Put(new FileMeta("a.txt", 13, NOW - 3_600_000, known.get("a.txt").mode(),
                        ContentHash.of(root.resolve("a.txt")))),
                new FileScanner.Move("nested/deep/b.txt", known.get("nested/deep/b.txt").at("moved/b.txt")));
        assertThat(second.get(0)).as("deletions come first").isInstanceOf(FileScanner.Delete.class);
    }

    @Test
    void shouldNeitherRecordNorDeleteAFileThatChangesWhileItIsHashed() throws Exception {
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        Path big = root.resolve("big.bin");
        Files.write(big, new byte[32 << 20]); // hashing it takes a while: the writer below changes it meanwhile
        Files.setLastModifiedTime(big, FileTime.fromMillis(NOW - 3_600_000));
        Map<String, FileMeta> known = record(Map.of(), scanner.scan(Map.of(), NOW));
        FileMeta before = known.get("big.bin");

        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        Thread writer = new Thread(() -> { // another program saving the file: its time moves on and on
            for (long k = 0; !stop.get(); k++) {
                try {
                    Files.setLastModifiedTime(big, FileTime.fromMillis(NOW - 1_000_000 + k % 500_000));
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
        }, "test-writer");
        writer.start();
        int caught = 0; // walks that saw the file change while they hashed it
        try {
            for (int i = 0; i < 50 && caught < 3; i++) {
                List<FileScanner.Change> changes = scanner.scan(known, NOW);
                assertThat(changes).as("walk %d while the file is being written", i).noneMatch(c -> c instanceof FileScanner.Delete);
                if (changes.isEmpty()) {
                    caught++;
                } else { // (a walk the writer did not disturb records the file's new time)
                    known = record(known, changes);
                }
            }
        } finally {
            stop.set(true);
            writer.join(10_000);
        }
        assertThat(caught).as("walks that hashed the file while its time changed").isPositive();
        Files.setLastModifiedTime(big, FileTime.fromMillis(NOW - 60_000));
        assertThat(scanner.scan(known, NOW)).as("once written, the next walk records it")
                .containsExactly(new FileScanner.Put(new FileMeta("big.bin", 32 << 20, NOW - 60_000, before.mode(), before.hash())));
    }

    @Test
    void shouldRecordAMoveBeforeANewFileThatTakesTheOldNameAsAFolder() throws Exception {
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        write("report", "the report");
        Map<String, FileMeta> known = record(Map.of(), scanner.scan(Map.of(), NOW));
        Files.move(root.resolve("report"), root.resolve("report_v1"));
        write("report/page1", "page one");
        List<FileScanner.Change> changes = scanner.scan(known, NOW);
        assertThat(changes).extracting(FileScanner.Change::path).containsExactly("report_v1", "report/page1");
        assertThat(changes.get(0)).isInstanceOf(FileScanner.Move.class);
    }

    @Test
    void shouldLeaveOutAFileItMayNotReadWithoutTakingItAsDeleted() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeFalse("root".equals(System.getProperty("user.name")), "root reads every file");
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        write("secret/a.txt", "a");
        Map<String, FileMeta> known = record(Map.of(), scanner.scan(Map.of(), NOW));
        Files.setPosixFilePermissions(root.resolve("secret"), java.nio.file.attribute.PosixFilePermissions.fromString("---------"));
        try {
            List<String> why = new java.util.ArrayList<>();
            assertThat(scanner.scan(known, NOW, why::add)).isEmpty();
            assertThat(why).singleElement().asString().contains("'secret' cannot be read");
        } finally {
            Files.setPosixFilePermissions(root.resolve("secret"), java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        }
    }

    @Test
    void shouldReportATouchAsNewTimeWithTheSameContent() throws Exception {
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        write("a.txt", "alpha");
        Map<String, FileMeta> known = record(Map.of(), scanner.scan(Map.of(), NOW));
        Files.setLastModifiedTime(root.resolve("a.txt"), FileTime.fromMillis(NOW - 60_000));
        List<FileScanner.Change> changes = scanner.scan(known, NOW);
        assertThat(changes).hasSize(1);
        FileMeta touched = ((FileScanner.Put) changes.get(0)).meta();
        assertThat(touched.hash()).isEqualTo(known.get("a.txt").hash());
        assertThat(touched.mtimeMillis()).isEqualTo(NOW - 60_000);
    }

    @Test
    void shouldHashAgainAFileWrittenInTheLastTwoSecondsEvenWithTheSameLengthAndTime() throws Exception {
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        Path f = write("a.txt", "aaaa");
        Files.setLastModifiedTime(f, FileTime.fromMillis(NOW - 500));
        Map<String, FileMeta> known = record(Map.of(), scanner.scan(Map.of(), NOW));
        Files.writeString(f, "bbbb"); // same length, and the same time as recorded
        Files.setLastModifiedTime(f, FileTime.fromMillis(NOW - 500));
        assertThat(scanner.scan(known, NOW)).hasSize(1);
    }

    @Test
    void shouldTakeOnlyFilesThePatternsSelectAndSkipLinksAndTheWorkingFolder() throws Exception {
        FileScanner scanner = new FileScanner(root, List.of("*.jpg", "docs/**"), List.of("*-draft.*"));
        write("a.jpg", "1");
        write("deep/b.jpg", "2");
        write("c.png", "3");
        write("docs/x/spec.pdf", "4");
        write("docs/spec-draft.pdf", "5");
        write(SafePath.WORK_DIR + "/abc.part", "6");
        Files.createSymbolicLink(root.resolve("link.jpg"), root.resolve("a.jpg"));
        assertThat(scanner.scan(Map.of(), NOW)).extracting(FileScanner.Change::path)
                .containsExactly("a.jpg", "deep/b.jpg", "docs/x/spec.pdf");
    }

    @Test
    void shouldWalkOnlyTheFoldersItIsGivenAndLeaveWhatIsRecordedElsewhereAsItIs() throws Exception {
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        write("a/b/one.txt", "1");
        write("a/two.txt", "2");
        write("ab/three.txt", "3");
        write("top.txt", "4");
        Map<String, FileMeta> known = record(Map.of(), scanner.scan(Map.of(), NOW));

        write("a/b/one.txt", "1, edited");
        write("a/b/deeper/new.txt", "5");
        write("top.txt", "4, edited"); // outside: not looked at
        Files.delete(root.resolve("ab/three.txt")); // "ab" is not inside "a": not taken as deleted
        Files.move(root.resolve("a/two.txt"), root.resolve("a/b/two.txt"));
        List<FileScanner.Change> changes = scanner.scan(known, NOW, why -> { }, List.of("a"));
        assertThat(changes).extracting(c -> c.getClass().getSimpleName() + " " + c.path())
                .containsExactlyInAnyOrder("Put a/b/one.txt", "Put a/b/deeper/new.txt", "Move a/b/two.txt");
        known = record(known, changes);

        assertThat(scanner.scan(known, NOW, why -> { }, List.of("a/b/deeper", "ab")))
                .containsExactly(new FileScanner.Delete("ab/three.txt"));
        assertThat(scanner.scan(known, NOW, why -> { }, List.of())).as("no folder: nothing walked").isEmpty();
    }

    @Test
    void shouldTakeTheFilesOfAGivenFolderThatIsGoneOrNowALinkAsDeletedWithoutFollowingTheLink(@TempDir Path outside) throws Exception {
        FileScanner scanner = new FileScanner(root, List.of(), List.of());
        write("a/b/one.txt", "1");
        write("c/two.txt", "2");
        Files.writeString(outside.resolve("one.txt"), "secret");
        Map<String, FileMeta> known = record(Map.of(), scanner.scan(Map.of(), NOW));

        Files.delete(root.resolve("a/b/one.txt"));
        Files.delete(root.resolve("a/b"));
        Files.createSymbolicLink(root.resolve("a/b"), outside);
        Files.delete(root.resolve("c/two.txt"));
        Files.delete(root.resolve("c"));
        assertThat(scanner.scan(known, NOW, why -> { }, List.of("a/b", "c")))
                .containsExactlyInAnyOrder(new FileScanner.Delete("a/b/one.txt"), new FileScanner.Delete("c/two.txt"));
        for (String bad : List.of("../elsewhere", SafePath.WORK_DIR, "/etc")) {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> scanner.scan(known, NOW, why -> { }, List.of(bad)))
                    .as(bad).isInstanceOf(io.syncline.api.UnsafePathException.class);
        }
    }
}
