package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import io.syncline.api.UnsafePathException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OpenDirsTest {
    @TempDir
    Path tmp;
    Path root;
    Path work;
    Path outside;

    @BeforeEach
    void folders() throws Exception {
        root = Files.createDirectories(tmp.resolve("root")).toRealPath();
        work = Files.createDirectories(root.resolve(SafePath.WORK_DIR));
        outside = Files.createDirectories(tmp.resolve("outside"));
    }

    private OpenDirs dirs() {
        OpenDirs d = OpenDirs.of(root);
        assumeThat(d).as("folders can be opened without following links here (SecureDirectoryStream)").isNotNull();
        return d;
    }

    @Test
    void renamesAFileOfTheWorkingFolderIntoItsFolderAndSaysWhenAFolderOfTheWayIsMissing() throws Exception {
        Files.createDirectories(root.resolve("a/b"));
        Files.writeString(work.resolve("1.new"), "one");
        Files.writeString(root.resolve("a/b/x.txt"), "old");
        try (OpenDirs d = dirs()) {
            assertThat(d.rename("1.new", "a/b/x.txt")).isTrue();
            Files.writeString(work.resolve("2.new"), "two");
            assertThat(d.rename("2.new", "top.txt")).isTrue();
            Files.writeString(work.resolve("3.new"), "three");
            assertThat(d.rename("3.new", "missing/y.txt")).isFalse();
        }
        assertThat(Files.readString(root.resolve("a/b/x.txt"))).isEqualTo("one");
        assertThat(Files.readString(root.resolve("top.txt"))).isEqualTo("two");
        assertThat(work.resolve("3.new")).exists(); // nothing done
        assertThat(root.resolve("missing")).doesNotExist();
    }

    @Test
    void aLinkPutInPlaceOfAFolderOnceItWasOpenedIsNeverFollowed() throws Exception {
        Files.createDirectories(root.resolve("a"));
        try (OpenDirs d = dirs()) {
            d.check("a/x.txt"); // opens a
            // The folder is moved away and a link to a folder outside put at its name: with a check by path and a rename
            // by path, a rename at that moment would land outside.
            Files.move(root.resolve("a"), root.resolve("a-moved"));
            Files.createSymbolicLink(root.resolve("a"), outside);
            Files.writeString(work.resolve("1.new"), "one");
            assertThat(d.rename("1.new", "a/x.txt")).isTrue();
        }
        assertThat(outside.resolve("x.txt")).doesNotExist();
        assertThat(Files.readString(root.resolve("a-moved/x.txt"))).isEqualTo("one");
        try (OpenDirs d = dirs()) { // opened anew: the link is refused
            Files.writeString(work.resolve("2.new"), "two");
            assertThatThrownBy(() -> d.rename("2.new", "a/y.txt")).isInstanceOf(UnsafePathException.class)
                    .hasMessageContaining("symbolic link 'a'");
        }
        assertThat(outside.resolve("y.txt")).doesNotExist();
    }

    @Test
    void refusesAWayThroughALinkOrAFileNamingIt() throws Exception {
        Files.createDirectories(root.resolve("a"));
        Files.createSymbolicLink(root.resolve("a/escape"), outside);
        Files.writeString(root.resolve("a/plain"), "a file");
        try (OpenDirs d = dirs()) {
            assertThatThrownBy(() -> d.check("a/escape/secret")).isInstanceOf(UnsafePathException.class)
                    .hasMessageContaining("a/escape/secret").hasMessageContaining("symbolic link 'a/escape'");
            assertThatThrownBy(() -> d.check("a/plain/x")).isInstanceOf(UnsafePathException.class)
                    .hasMessageContaining("'a/plain' is a file, not a folder");
            d.check("a/not-yet/x"); // folders not there yet pass: they are made when the file is put in place
            d.check("x");
        }
    }

    @Test
    void isNotUsedOnceClosed() throws Exception {
        OpenDirs d = dirs();
        d.check("x.txt");
        d.close();
        assertThatThrownBy(() -> d.check("a/x.txt")).isInstanceOf(java.nio.file.ClosedDirectoryStreamException.class);
        assertThatThrownBy(() -> d.rename("1.new", "x.txt")).isInstanceOf(java.nio.file.ClosedDirectoryStreamException.class);
    }

    @Test
    void aLinkMadeWhereACheckFoundNoFolderIsRefusedByTheRename() throws Exception {
        try (OpenDirs d = dirs()) {
            d.check("n/x.txt"); // n not there yet: passes, and is not looked for again by checks
            Files.createSymbolicLink(root.resolve("n"), outside);
            d.check("n/y.txt");
            Files.writeString(work.resolve("1.new"), "one");
            assertThatThrownBy(() -> d.rename("1.new", "n/x.txt")).isInstanceOf(UnsafePathException.class)
                    .hasMessageContaining("symbolic link 'n'");
        }
        try (var out = Files.list(outside)) {
            assertThat(out).isEmpty();
        }
    }

    @Test
    void aLinkAtTheFileItselfIsReplacedByARenameAndRefusedByARead() throws Exception {
        Path secret = Files.writeString(outside.resolve("secret"), "secret");
        Files.createSymbolicLink(root.resolve("link.txt"), secret);
        try (OpenDirs d = dirs()) {
            assertThatThrownBy(() -> d.read("link.txt")).isInstanceOf(UnsafePathException.class)
                    .hasMessageContaining("'link.txt' is a symbolic link");
            Files.writeString(work.resolve("1.new"), "mine");
            assertThat(d.rename("1.new", "link.txt")).isTrue();
        }
        assertThat(Files.isSymbolicLink(root.resolve("link.txt"))).isFalse();
        assertThat(Files.readString(root.resolve("link.txt"))).isEqualTo("mine");
        assertThat(Files.readString(secret)).isEqualTo("secret");
    }

    @Test
    void readsAFileThroughItsFolderAndSaysWhenItIsMissing() throws Exception {
        Files.createDirectories(root.resolve("a/b"));
        Files.writeString(root.resolve("a/b/ä 漢字.txt"), "content", StandardCharsets.UTF_8);
        try (OpenDirs d = dirs(); InputStream in = d.read("a/b/ä 漢字.txt")) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("content");
            assertThatThrownBy(() -> d.read("a/b/gone.txt")).isInstanceOf(NoSuchFileException.class);
            assertThatThrownBy(() -> d.read("a/gone/x.txt")).isInstanceOf(NoSuchFileException.class);
            assertThatThrownBy(() -> d.read("../etc/passwd")).isInstanceOf(UnsafePathException.class);
        }
    }

    @Test
    void keepsAtMostMaxFoldersOpenAndClosesThemAll() throws Exception {
        Path fds = Path.of("/proc/self/fd");
        assumeThat(Files.isDirectory(fds)).as("/proc/self/fd").isTrue();
        long before = count(fds);
        try (OpenDirs d = dirs()) {
            for (int i = 0; i < 3 * OpenDirs.MAX; i++) {
                Files.createDirectories(root.resolve("d" + i));
                Files.writeString(work.resolve(i + ".new"), "f" + i);
                assertThat(d.rename(i + ".new", "d" + i + "/f.txt")).isTrue();
            }
            // two descriptors per open folder (SecureDirectoryStream), the root and the working folder included
            assertThat(count(fds) - before).isBetween(2L, 2L * (OpenDirs.MAX + 1));
        }
        assertThat(count(fds)).isEqualTo(before);
        for (int i = 0; i < 3 * OpenDirs.MAX; i++) {
            assertThat(Files.readString(root.resolve("d" + i + "/f.txt"))).isEqualTo("f" + i);
        }
    }

    private static long count(Path fds) throws Exception {
        try (Stream<Path> s = Files.list(fds)) {
            return s.count() - 1; // (the listing's own)
        }
    }
}
