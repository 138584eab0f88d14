package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.api.io.TempDir;

class GroupFlushTest {
    private static final Delta.Stats STATS = new Delta.Stats(1, "h", 1, 0);

    /** What the group did, in order: "sync N" when a flush ended, "install P" / "discard P" per file. */
    private final List<String> events = new CopyOnWriteArrayList<>();

    private CompletableFuture<Delta.Stats> add(GroupFlush g, long begun, String path) {
        CompletableFuture<Delta.Stats> done = new CompletableFuture<>();
        g.add(begun, path, () -> {
            events.add("install " + path);
            return STATS;
        }, () -> events.add("discard " + path), done);
        return done;
    }

    @Test
    void aFileIsPutInPlaceOnlyAfterAFlushThatBeganAfterItWasHandedOver() throws Exception {
        Semaphore mayEnd = new Semaphore(0);
        CountDownLatch firstBegan = new CountDownLatch(1);
        AtomicInteger syncs = new AtomicInteger();
        GroupFlush g = new GroupFlush(() -> {
            firstBegan.countDown();
            mayEnd.acquireUninterruptibly();
            events.add("sync " + syncs.incrementAndGet());
        }, "test");
        CompletableFuture<Delta.Stats> a = add(g, g.begin(), "a");
        assertThat(firstBegan.await(10, TimeUnit.SECONDS)).isTrue();
        CompletableFuture<Delta.Stats> b = add(g, g.begin(), "b"); // handed over while the flush for a runs
        mayEnd.release();
        assertThat(a.get(10, TimeUnit.SECONDS)).isEqualTo(STATS);
        assertThat(b).isNotDone(); // the flush that ended began before b was handed over
        mayEnd.release();
        assertThat(b.get(10, TimeUnit.SECONDS)).isEqualTo(STATS);
        assertThat(events).containsExactly("sync 1", "install a", "sync 2", "install b");
    }

    @Test
    void aFailedFlushFailsEveryFileBegunBeforeItEndedAndPutsNoneInPlace() throws Exception {
        Semaphore mayEnd = new Semaphore(0);
        CountDownLatch firstBegan = new CountDownLatch(1);
        AtomicInteger syncs = new AtomicInteger();
        GroupFlush g = new GroupFlush(() -> {
            if (syncs.incrementAndGet() == 1) {
                firstBegan.countDown();
                mayEnd.acquireUninterruptibly();
                throw new IOException("EIO on the disk");
            }
            events.add("sync");
        }, "test");
        CompletableFuture<Delta.Stats> a = add(g, g.begin(), "a");
        assertThat(firstBegan.await(10, TimeUnit.SECONDS)).isTrue();
        long begunDuringTheFailingFlush = g.begin(); // its data may be among what the failed flush wrote
        mayEnd.release();
        assertThatThrownBy(() -> a.get(10, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                .cause().hasMessageContaining("file 'a' was written but is not known to be on disk")
                .cause().hasMessage("EIO on the disk");
        long begunAfter = g.begin();
        CompletableFuture<Delta.Stats> b = add(g, begunDuringTheFailingFlush, "b");
        CompletableFuture<Delta.Stats> c = add(g, begunAfter, "c");
        assertThatThrownBy(() -> b.get(10, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                .cause().hasMessageContaining("file 'b' was written but is not known to be on disk");
        assertThat(c.get(10, TimeUnit.SECONDS)).isEqualTo(STATS);
        assertThat(events).startsWith("discard a", "sync").contains("discard b").endsWith("install c")
                .doesNotContain("install a", "install b");
    }

    @Test
    void aFailedInstallFailsThatFileAlone() throws Exception {
        Semaphore mayBegin = new Semaphore(0);
        GroupFlush g = new GroupFlush(mayBegin::acquireUninterruptibly, "test");
        CompletableFuture<Delta.Stats> bad = new CompletableFuture<>();
        g.add(g.begin(), "bad", () -> {
            throw new IOException("a folder of that name is in the way");
        }, () -> events.add("discard bad"), bad);
        CompletableFuture<Delta.Stats> good = add(g, g.begin(), "good");
        mayBegin.release(2); // one group or two
        assertThatThrownBy(() -> bad.get(10, TimeUnit.SECONDS)).cause().hasMessage("a folder of that name is in the way");
        assertThat(good.get(10, TimeUnit.SECONDS)).isEqualTo(STATS);
        assertThat(events).containsExactly("install good");
    }

    @Test
    void anErrorInAFlushFailsItsGroupAndTheThreadGoesOn() throws Exception {
        AtomicInteger syncs = new AtomicInteger();
        GroupFlush g = new GroupFlush(() -> {
            if (syncs.incrementAndGet() == 1) {
                throw new StackOverflowError("deep");
            }
        }, "test");
        CompletableFuture<Delta.Stats> a = add(g, g.begin(), "a");
        assertThatThrownBy(() -> a.get(10, TimeUnit.SECONDS)).cause().hasMessageContaining("file 'a' was written but is not known to be on disk")
                .cause().hasMessageContaining("StackOverflowError");
        CompletableFuture<Delta.Stats> b = add(g, g.begin(), "b");
        assertThat(b.get(10, TimeUnit.SECONDS)).isEqualTo(STATS);
        assertThat(events).containsExactly("discard a", "install b");
    }

    @Test
    @EnabledOnOs(OS.LINUX)
    void syncfsIsUsedOnLocalFileSystemsOfLinuxWithJava22OrLater(@TempDir Path dir) throws IOException {
        assumeTrue(SyncFs.kernelAtLeast(System.getProperty("os.version"), 5, 17), "a kernel before 5.17");
        if (Runtime.version().feature() < 22) {
            assertThat(SyncFs.unavailable()).contains("Java " + Runtime.version().feature());
            assertThat(GroupFlush.forFolder(dir, Files.getFileStore(dir))).isNull();
            return;
        }
        assertThat(SyncFs.unavailable()).isNull();
        Files.writeString(dir.resolve("f"), "not flushed yet");
        try (SyncFs fs = SyncFs.open(dir).orElseThrow()) {
            fs.sync(); // no write-back error on this file system: returns normally
            fs.close();
            assertThatThrownBy(fs::sync).hasMessageContaining("closed");
        }
        assertThatThrownBy(() -> SyncFs.open(dir.resolve("missing"))).isInstanceOf(IOException.class).hasMessageContaining("missing");
        java.nio.file.FileStore store = Files.getFileStore(dir);
        if (GroupFlush.FILE_SYSTEMS.contains(store.type())) {
            assertThat(GroupFlush.forFolder(dir, store)).isNotNull()
                    .isSameAs(GroupFlush.forFolder(dir.resolve("f"), Files.getFileStore(dir.resolve("f"))));
        } else {
            assertThat(GroupFlush.forFolder(dir, store)).isNull();
        }
    }

    @Test
    void kernelVersionsAreCompared() {
        assertThat(SyncFs.kernelAtLeast("6.18.44-fc-v782", 5, 8)).isTrue();
        assertThat(SyncFs.kernelAtLeast("5.8.0", 5, 8)).isTrue();
        assertThat(SyncFs.kernelAtLeast("5.7.19", 5, 8)).isFalse();
        assertThat(SyncFs.kernelAtLeast("4.19.0", 5, 8)).isFalse();
        assertThat(SyncFs.kernelAtLeast("unknown", 5, 8)).isFalse();
    }
}
