package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReaperTest {
    @TempDir
    Path tmp;

    @Test
    void shouldKeepALargeFilesOldVersionUnderASecondNameUntilReleased() throws Exception {
        Path work = Files.createDirectories(tmp.resolve("work"));
        Path file = Files.write(tmp.resolve("big.bin"), FileFolderTest.random((int) Reaper.LARGE, 1));
        Path aside = Reaper.setAside(file, work);
        assertThat(aside).isNotNull();
        assertThat(aside.getParent()).isEqualTo(work);
        assertThat(Files.isSameFile(aside, file)).as("a second name of the same file").isTrue();

        Path fresh = Files.writeString(tmp.resolve("fresh"), "new version");
        Files.move(fresh, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        assertThat(Files.readAllBytes(aside)).as("the old version outlives the rename").isEqualTo(FileFolderTest.random((int) Reaper.LARGE, 1));

        Reaper.release(aside);
        await().atMost(Duration.ofSeconds(10)).until(() -> !Files.exists(aside));
        assertThat(Files.readString(file)).isEqualTo("new version");
    }

    @Test
    void shouldLeaveSmallMissingAndOtherFilesAlone() throws Exception {
        Path work = Files.createDirectories(tmp.resolve("work"));
        Path small = Files.write(tmp.resolve("small"), new byte[(int) Reaper.LARGE - 1]);
        Path folder = Files.createDirectories(tmp.resolve("folder"));
        Path link = Files.createSymbolicLink(tmp.resolve("link"), Files.write(tmp.resolve("large"), new byte[(int) Reaper.LARGE]));
        assertThat(Reaper.setAside(small, work)).isNull();
        assertThat(Reaper.setAside(tmp.resolve("missing"), work)).isNull();
        assertThat(Reaper.setAside(folder, work)).isNull();
        assertThat(Reaper.setAside(link, work)).as("a symbolic link, even to a large file").isNull();
        try (Stream<Path> s = Files.list(work)) {
            assertThat(s).isEmpty();
        }
    }

    @Test
    void shouldDeleteTheSecondNameAtOnceWhenTheFileStays() throws Exception {
        Path work = Files.createDirectories(tmp.resolve("work"));
        Path file = Files.write(tmp.resolve("big.bin"), new byte[(int) Reaper.LARGE]);
        Path aside = Reaper.setAside(file, work);
        Reaper.keep(aside);
        assertThat(aside).doesNotExist();
        assertThat(file).exists();
        Reaper.keep(null); // nothing set aside: nothing to do
        Reaper.release(null);
    }

    @Test
    void shouldSetAsideTheOldVersionsOfLargeFilesAFolderReplacesOrDeletesAndFreeThemOnTheReapersThread() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Path work = folder.root().resolve(SafePath.WORK_DIR);
        byte[] old = FileFolderTest.random(2 << 20, 2);
        Path big = Files.write(folder.root().resolve("big.bin"), old);
        Path oldProbe = Files.createLink(tmp.resolve("old-probe"), big); // to know the old version by
        byte[] edited = old.clone();
        edited[12345] ^= 1;
        FileMeta meta = new FileMeta("big.bin", edited.length, 1_000L, -1, ContentHash.of(edited));
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] d = FileFolderTest.delta(edited, folder.basis(meta), s);
        Files.write(Files.createDirectories(folder.root().resolve("sub")).resolve("other.bin"), old);
        Path otherProbe = Files.createLink(tmp.resolve("other-probe"), folder.root().resolve("sub/other.bin"));

        java.util.concurrent.CountDownLatch holding = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        Reaper.THREAD.execute(() -> { // the reaper is held: what it is given waits
            holding.countDown();
            try {
                release.await(30, java.util.concurrent.TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            assertThat(holding.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
            folder.receive(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta));
            assertThat(Files.readAllBytes(big)).isEqualTo(edited);
            assertThat(aside(work)).as("the replaced version, under its second name until the reaper frees it").singleElement()
                    .satisfies(p -> assertThat(Files.isSameFile(p, oldProbe)).isTrue());

            folder.delete("sub/other.bin");
            assertThat(folder.root().resolve("sub")).as("deleted, and its folder with it").doesNotExist();
            assertThat(aside(work)).hasSize(2).anySatisfy(p -> assertThat(Files.isSameFile(p, otherProbe)).isTrue());
        } finally {
            release.countDown();
        }
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(aside(work)).as("freed afterwards").isEmpty());
    }

    private static java.util.List<Path> aside(Path work) throws Exception {
        try (Stream<Path> s = Files.list(work)) {
            return s.filter(p -> p.getFileName().toString().endsWith(Reaper.SUFFIX)).toList();
        }
    }

    @Test
    void shouldFreeOldVersionsAProcessThatDiedLeftBehind() throws Exception {
        Path root = tmp.resolve("folder");
        Path work = Files.createDirectories(root.resolve(SafePath.WORK_DIR));
        Path left = Files.write(work.resolve("0b7c2f0e-5b7e-4c1e-9a55-4d7e7b0a1c2d" + Reaper.SUFFIX), new byte[10]);
        Path part = Files.write(work.resolve("aaaa.part"), new byte[10]);
        Path notOurs = Files.write(work.resolve("notes.old"), new byte[10]);
        new FileFolder(root);
        await().atMost(Duration.ofSeconds(10)).until(() -> !Files.exists(left));
        assertThat(part).as("a partial file is kept to resume from").exists();
        assertThat(notOurs).as("not a name the reaper gives").exists();
    }
}
