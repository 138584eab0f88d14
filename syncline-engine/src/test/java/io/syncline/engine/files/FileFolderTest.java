package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.BadBatchException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileFolderTest {
    @TempDir
    Path tmp;

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    static String hash(byte[] b) {
        return ContentHash.of(b);
    }

    /** The sender's side: the delta of {@code content} against what the receiver listed. */
    static byte[] delta(byte[] content, ChunkIndex receiverBasis, Delta.Stats[] stats) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        stats[0] = Delta.encode(new ByteArrayInputStream(content), Chunker.Sizes.forFile(content.length),
                ChunkIndex.ofIds(receiverBasis.ids()), out);
        out.flush();
        return bytes.toByteArray();
    }

    @org.junit.jupiter.api.BeforeEach
    void forgetIndexesWorkedOutAhead() {
        Indexes.clear(); // (shared by the whole process)
    }

    @Test
    void shouldWriteANewFileWholeWithItsTimeAndPermissions() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        byte[] content = random(300_000, 1);
        FileMeta meta = new FileMeta("images/a b/ü.jpg", content.length, 1_700_000_000_000L, 0640, hash(content));
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] d = delta(content, folder.basis(meta), s);
        folder.receive(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta));
        Path f = folder.root().resolve("images/a b/ü.jpg");
        assertThat(Files.readAllBytes(f)).isEqualTo(content);
        assertThat(Files.getLastModifiedTime(f).toMillis()).isEqualTo(1_700_000_000_000L);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(f))).isEqualTo("rw-r-----");
        assertThat(s[0].literalBytes()).isEqualTo(content.length);
        assertThat(d.length).as("a first copy is not chunked: literals of %d bytes, then the end", Chunker.MAX)
                .isEqualTo(content.length + 5 * ((content.length + Chunker.MAX - 1) / Chunker.MAX) + 9);
        assertThat(folder.has(meta)).isTrue();
    }

    @Test
    void shouldHaveTheBasisOfALargeFileReadyAfterReceivingItAndNotUseItOnceTheFileChanged() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        byte[] content = random((int) Indexes.MIN_SIZE, 6);
        FileMeta meta = new FileMeta("big.bin", content.length, 1_700_000_000_000L, 0644, hash(content));
        Delta.Stats[] s = new Delta.Stats[1];
        folder.receive(meta, new DataInputStream(new ByteArrayInputStream(delta(content, folder.basis(meta), s))), folder.basis(meta));
        Path f = folder.root().resolve("big.bin");
        Chunker.Sizes sizes = Chunker.Sizes.forFile(content.length);
        // Asked for at once: the index is being worked out in the background (64 MiB take a while), and is waited for.
        ChunkIndex ready = Indexes.get(f, sizes);
        assertThat(ready).as("the received file's index, worked out in the background").isNotNull();
        ChunkIndex read = ChunkIndex.of(java.util.List.of(f), sizes);
        FileMeta next = new FileMeta("big.bin", content.length, 1_700_000_100_000L, 0644, hash(random(16, 7)));
        assertThat(folder.basis(next)).as("the basis of its next change: the index worked out ahead").isSameAs(ready);
        assertThat(folder.basis(next).ids()).isEqualTo(read.ids());

        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(random(100_000, 8)), 1_000_000); // edited here, in place
        }
        Files.setLastModifiedTime(f, java.nio.file.attribute.FileTime.fromMillis(1_700_000_050_000L));
        assertThat(Indexes.get(f, sizes)).as("not used for the file as it is now").isNull();
        assertThat(folder.basis(next).ids()).as("read again").isEqualTo(ChunkIndex.of(java.util.List.of(f), sizes).ids())
                .isNotEqualTo(read.ids());
    }

    @Test
    void shouldFlushALargeFileToDiskWhileItIsStillBeingWritten() throws Exception {
        Path f = tmp.resolve("large.bin");
        byte[] block = random(1 << 20, 5);
        com.dynatrace.hash4j.hashing.HashStream128 expected = ContentHash.stream();
        int blocks = (int) (Writeback.STEP * 5 / 2 >> 20); // two and a half steps
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
            Writeback out = new Writeback(new java.io.BufferedOutputStream(java.nio.channels.Channels.newOutputStream(ch), 64 * 1024),
                    () -> ch.force(false));
            for (int i = 0; i < blocks; i++) {
                block[0] = (byte) i;
                out.write(block, 0, block.length);
                expected.putBytes(block);
            }
            out.flush();
            out.settle();
            assertThat(out.started()).as("early flushes started while writing").isBetween(1, 2);
            ch.force(true);
        }
        assertThat(ContentHash.of(f)).as("what reached the file").isEqualTo(ContentHash.hex(expected.get()));
    }

    @Test
    void shouldFailTheFileWhenAnEarlyFlushFailsEvenIfTheFinalFlushSucceeds() throws Exception {
        Path f = tmp.resolve("failing.bin");
        byte[] block = random(1 << 20, 6);
        java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
        try (java.nio.channels.FileChannel real = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
            // The early flush fails, as after a write-back error of the disk; the file's own channel is the real one.
            Writeback out = new Writeback(new java.io.BufferedOutputStream(java.nio.channels.Channels.newOutputStream(real), 64 * 1024), () -> {
                calls.incrementAndGet();
                throw new java.io.IOException("EIO: write-back failed");
            });
            for (int i = 0; i < (int) (Writeback.STEP >> 20) + 1; i++) { // one step and a block: one early flush
                out.write(block, 0, block.length); // the failure does not stop the writing: it is reported by check()
            }
            out.flush();
            real.force(true); // the final flush succeeds: Linux reports a failed write-back only once
            assertThat(out.started()).as("early flushes started").isEqualTo(1);
            assertThat(calls.get()).as("the early flush ran").isEqualTo(1);
            assertThatThrownBy(out::check).isInstanceOf(java.io.IOException.class).hasMessage("EIO: write-back failed");
        }
    }

    @Test
    void shouldSendOnlyTheChangedChunksOfAFileEditedInPlace() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        byte[] old = random(8 * 1024 * 1024, 2);
        Files.write(folder.root().resolve("big.bin"), old);
        byte[] edited = old.clone();
        Random r = new Random(3);
        for (int i = 0; i < 10; i++) { // 10 scattered edits of 100 bytes
            int at = r.nextInt(edited.length - 100);
            for (int k = 0; k < 100; k++) {
                edited[at + k] ^= 0x5a;
            }
        }
        FileMeta meta = new FileMeta("big.bin", edited.length, 1_000L, -1, hash(edited));
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] d = delta(edited, folder.basis(meta), s);
        assertThat(s[0].literalBytes()).as("bytes sent for 10 edits").isLessThanOrEqualTo(10L * 2 * Chunker.Sizes.LARGE.max());
        assertThat(d.length).isLessThan(edited.length / 8);
        folder.receive(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta));
        assertThat(Files.readAllBytes(folder.root().resolve("big.bin"))).isEqualTo(edited);
    }

    @Test
    void shouldKeepTheTargetWhenAConnectionIsCutAndResumeWithTheRest() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Files.writeString(folder.root().resolve("doc.pdf"), "old version");
        byte[] content = random(2 * 1024 * 1024, 4);
        FileMeta meta = new FileMeta("doc.pdf", content.length, 5_000L, -1, hash(content));
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] full = delta(content, folder.basis(meta), s);
        byte[] cut = Arrays.copyOf(full, full.length * 6 / 10);
        assertThatThrownBy(() -> folder.receive(meta, new DataInputStream(new ByteArrayInputStream(cut)), folder.basis(meta)))
                .isInstanceOf(Delta.CutException.class).hasMessageContaining("doc.pdf");
        assertThat(Files.readString(folder.root().resolve("doc.pdf"))).isEqualTo("old version");

        ChunkIndex basis = folder.basis(meta); // now holds the chunks of the part received
        byte[] rest = delta(content, basis, s);
        assertThat(s[0].literalBytes()).as("bytes sent again after the cut").isLessThan(content.length / 2);
        folder.receive(meta, new DataInputStream(new ByteArrayInputStream(rest)), basis);
        assertThat(Files.readAllBytes(folder.root().resolve("doc.pdf"))).isEqualTo(content);
        try (var left = Files.list(folder.root().resolve(SafePath.WORK_DIR))) {
            assertThat(left).as("partial files after success").isEmpty();
        }
    }

    @Test
    void shouldAskWithoutABasisAfterABuildFromOneGaveTheWrongContent() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        byte[] old = random(500_000, 8);
        Files.write(folder.root().resolve("f.bin"), old);
        byte[] content = old.clone();
        content[250_000] ^= 1;
        FileMeta meta = new FileMeta("f.bin", content.length, 9_000L, -1, hash(content));
        ChunkIndex basis = folder.basis(meta);
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] d = delta(content, basis, s);
        byte[] changedMeanwhile = old.clone();
        changedMeanwhile[10] ^= 1; // the basis no longer says what the chunks hold: the build gives another hash
        Files.write(folder.root().resolve("f.bin"), changedMeanwhile);
        assertThatThrownBy(() -> folder.receive(meta, new DataInputStream(new ByteArrayInputStream(d)), basis))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("f.bin");
        assertThat(folder.basis(meta).size()).as("chunks offered for that content from now on").isZero();
        byte[] full = delta(content, folder.basis(meta), s);
        folder.receive(meta, new DataInputStream(new ByteArrayInputStream(full)), folder.basis(meta));
        assertThat(Files.readAllBytes(folder.root().resolve("f.bin"))).isEqualTo(content);
    }

    @Test
    void shouldRefuseContentThatIsNotWhatWasAnnouncedAndKeepTheTarget() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Files.writeString(folder.root().resolve("a.txt"), "kept");
        byte[] content = "new content".getBytes();
        FileMeta announced = new FileMeta("a.txt", content.length, 1L, -1, hash("other content".getBytes()));
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] d = delta(content, folder.basis(announced), s);
        assertThatThrownBy(() -> folder.receive(announced, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(announced)))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("changed at the sender");
        assertThat(Files.readString(folder.root().resolve("a.txt"))).isEqualTo("kept");
    }

    @Test
    void shouldRefuseAMalformedDeltaNamingTheFile() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        FileMeta meta = new FileMeta("x.bin", 1, 1L, -1, hash(new byte[] {1}));
        byte[] junk = {'Z', 0, 0};
        assertThatThrownBy(() -> folder.receive(meta, new DataInputStream(new ByteArrayInputStream(junk)), folder.basis(meta)))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("x.bin").hasMessageContaining("unknown delta op 90");
        byte[] outside = {'C', 0, 0, 0, 5, 0, 0, 0, 1};
        assertThatThrownBy(() -> folder.receive(meta, new DataInputStream(new ByteArrayInputStream(outside)), folder.basis(meta)))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("outside the 0 chunks");
        assertThat(Files.exists(folder.root().resolve("x.bin"))).isFalse();
    }

    @Test
    void shouldRefuseADeltaThatBuildsMoreThanAnnouncedAndKeepNothingOfIt() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Files.write(folder.root().resolve("old.bin"), random(200_000, 12));
        FileMeta basisOf = new FileMeta("old.bin", 200_000, 1L, -1, hash(new byte[] {1}));
        ChunkIndex basis = folder.basis(basisOf);
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        for (int i = 0; i < 1000; i++) { // copies the whole basis again and again: 200 MB from a few KB
            out.writeByte('C');
            out.writeInt(0);
            out.writeInt(basis.size());
        }
        out.flush();
        FileMeta meta = new FileMeta("old.bin", 10, 2L, -1, hash(new byte[10]));
        assertThatThrownBy(() -> folder.receive(meta, new DataInputStream(new ByteArrayInputStream(bytes.toByteArray())), basis))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("more than the 10 bytes announced");
        try (var left = Files.list(folder.root().resolve(SafePath.WORK_DIR))) {
            assertThat(left).as("nothing kept of a malformed delta").isEmpty();
        }
    }

    @Test
    void shouldNotWriteThroughALinkPlantedInTheWorkingFolder() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Path victim = Files.writeString(tmp.resolve("victim.txt"), "precious");
        byte[] content = "synced".getBytes();
        FileMeta meta = new FileMeta("out.txt", content.length, 3L, 0666, hash(content));
        Files.createSymbolicLink(folder.root().resolve(SafePath.WORK_DIR).resolve(meta.hash() + ".new"), victim);
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] d = delta(content, folder.basis(meta), s);
        folder.receive(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta));
        assertThat(Files.readString(victim)).isEqualTo("precious");
        assertThat(Files.isSymbolicLink(folder.root().resolve("out.txt"))).isFalse();
        assertThat(Files.readString(folder.root().resolve("out.txt"))).isEqualTo("synced");
    }

    @Test
    void shouldGiveSmallFilesReceivedLaterExactlyTheirPermissionsWhetherTheUmaskWouldTakeBitsOrNot() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        // Modes the usual umask (022) leaves whole (given at creation) and modes it would cut (set after creation),
        // and one no umask cuts (none).
        String[] modes = {"rw-r-----", "rwxr-x---", "rw-rw-rw-", "rwxrwxrwx", "r--------", "---------", "rw--w--w-"};
        java.util.List<java.util.concurrent.Future<Delta.Stats>> done = new java.util.ArrayList<>();
        for (int i = 0; i < modes.length; i++) {
            byte[] content = ("mode " + modes[i]).getBytes();
            int mode = FileFolder.mode(PosixFilePermissions.fromString(modes[i]));
            FileMeta meta = new FileMeta("m/f" + i, content.length, 1_700_000_000_000L + i, mode, hash(content));
            done.add(folder.receiveLater(meta, new DataInputStream(new ByteArrayInputStream(delta(content, folder.basis(meta),
                    new Delta.Stats[1]))), folder.basis(meta)));
        }
        folder.flush();
        for (var f : done) {
            f.get();
        }
        for (int i = 0; i < modes.length; i++) {
            Path f = folder.root().resolve("m/f" + i);
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(f))).as("m/f%d", i).isEqualTo(modes[i]);
            assertThat(Files.size(f)).isEqualTo(("mode " + modes[i]).length()); // (not read: some modes forbid it)
            assertThat(Files.getLastModifiedTime(f).toMillis()).isEqualTo(1_700_000_000_000L + i);
        }
    }

    @Test
    void shouldPutFilesReceivedLaterInPlaceOnceSettledEvenWithTheSameContentTwice() throws Exception {
        // each file flushed on its own (as where there is no syncfs)
        receiveManyLater(new FileFolder(tmp.resolve("hub"), FileFolder.PARTIAL_MAX_AGE, java.time.Clock.systemUTC(), (root, store) -> null),
                FileFolder.MAX_UNSETTLED * 6 + 5); // more than may be under way at once
    }

    @Test
    void shouldPutFilesReceivedLaterInPlaceThroughAGroupFlush() throws Exception {
        java.util.concurrent.atomic.AtomicInteger flushes = new java.util.concurrent.atomic.AtomicInteger();
        GroupFlush group = new GroupFlush(flushes::incrementAndGet, "test");
        receiveManyLater(new FileFolder(tmp.resolve("hub"), FileFolder.PARTIAL_MAX_AGE, java.time.Clock.systemUTC(), (root, store) -> group),
                FileFolder.MAX_UNSETTLED_GROUPED + 5);
        assertThat(flushes.get()).isPositive();
    }

    @Test
    void aSecondFileForAPathUnderWayWaitsForTheFirstSoTheLaterEndsInPlace() throws Exception {
        java.util.concurrent.Semaphore mayFlush = new java.util.concurrent.Semaphore(0);
        GroupFlush group = new GroupFlush(mayFlush::acquireUninterruptibly, "test");
        FileFolder folder = new FileFolder(tmp.resolve("hub"), FileFolder.PARTIAL_MAX_AGE, java.time.Clock.systemUTC(), (root, store) -> group);
        ChunkIndex none = ChunkIndex.ofIds(new long[0]);
        byte[] first = "first version".getBytes();
        byte[] later = "the later version".getBytes();
        FileMeta m1 = new FileMeta("d/p.txt", first.length, 1_000L, 0644, hash(first));
        FileMeta m2 = new FileMeta("d/p.txt", later.length, 2_000L, 0644, hash(later));
        var f1 = folder.receiveLater(m1, new DataInputStream(new ByteArrayInputStream(delta(first, none, new Delta.Stats[1]))), none);
        java.util.concurrent.atomic.AtomicReference<java.util.concurrent.Future<Delta.Stats>> f2 = new java.util.concurrent.atomic.AtomicReference<>();
        java.util.concurrent.atomic.AtomicReference<Throwable> failed = new java.util.concurrent.atomic.AtomicReference<>();
        Thread second = new Thread(() -> {
            try {
                f2.set(folder.receiveLater(m2, new DataInputStream(new ByteArrayInputStream(delta(later, none, new Delta.Stats[1]))), none));
            } catch (Throwable t) {
                failed.set(t);
            }
        }, "second-receiver");
        second.start();
        org.awaitility.Awaitility.await("the second file waits for the first, or is handed over").atMost(java.time.Duration.ofSeconds(10))
                .until(() -> !second.isAlive() || (second.getState() == Thread.State.WAITING
                        && java.util.Arrays.stream(second.getStackTrace()).anyMatch(e -> e.getMethodName().equals("settle"))));
        assertThat(second.isAlive()).as("the second file for d/p.txt waits until the first is in place").isTrue();
        assertThat(f1).isNotDone();
        mayFlush.release(1_000);
        second.join(10_000);
        assertThat(failed.get()).isNull();
        folder.flush();
        assertThat(f1.get()).isNotNull();
        assertThat(f2.get().get()).isNotNull();
        assertThat(Files.readAllBytes(folder.root().resolve("d/p.txt"))).isEqualTo(later);
    }

    @Test
    void aFailedGroupFlushPutsNothingInPlaceAndLeavesNothingBehind() throws Exception {
        GroupFlush group = new GroupFlush(() -> {
            throw new java.io.IOException("EIO");
        }, "test");
        FileFolder folder = new FileFolder(tmp.resolve("hub"), FileFolder.PARTIAL_MAX_AGE, java.time.Clock.systemUTC(), (root, store) -> group);
        Files.writeString(folder.root().resolve("a.txt"), "old");
        java.util.List<java.util.concurrent.Future<Delta.Stats>> done = new java.util.ArrayList<>();
        for (String path : new String[] {"a.txt", "d/b.txt"}) {
            byte[] content = ("new " + path).getBytes();
            FileMeta meta = new FileMeta(path, content.length, 3L, 0644, hash(content));
            done.add(folder.receiveLater(meta, new DataInputStream(new ByteArrayInputStream(delta(content, folder.basis(meta),
                    new Delta.Stats[1]))), folder.basis(meta)));
        }
        folder.flush();
        for (var f : done) {
            assertThatThrownBy(f::get).cause().hasMessageContaining("is not known to be on disk").cause().hasMessage("EIO");
        }
        assertThat(Files.readString(folder.root().resolve("a.txt"))).isEqualTo("old");
        assertThat(folder.root().resolve("d/b.txt")).doesNotExist();
        try (var left = Files.list(folder.root().resolve(SafePath.WORK_DIR))) {
            assertThat(left).as("nothing left in the working folder").isEmpty();
        }
    }

    private void receiveManyLater(FileFolder folder, int n) throws Exception {
        java.util.List<java.util.concurrent.Future<Delta.Stats>> done = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            byte[] content = random(1_000 + i, i % 7); // files 0, 7, 14... share a seed but not a length
            byte[] same = i % 10 == 9 ? random(1_000 + i - 1, (i - 1) % 7) : content; // every tenth: the previous file's content
            FileMeta meta = new FileMeta(path(i), same.length, 1_700_000_000_000L + i, 0600, hash(same));
            byte[] d = delta(same, folder.basis(meta), new Delta.Stats[1]);
            done.add(folder.receiveLater(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta)));
        }
        folder.flush();
        assertThat(done).allMatch(java.util.concurrent.Future::isDone);
        for (int i = 0; i < n; i++) {
            byte[] content = i % 10 == 9 ? random(1_000 + i - 1, (i - 1) % 7) : random(1_000 + i, i % 7);
            Path f = folder.root().resolve(path(i));
            assertThat(Files.readAllBytes(f)).as("file %d", i).isEqualTo(content);
            assertThat(Files.getLastModifiedTime(f).toMillis()).isEqualTo(1_700_000_000_000L + i);
            assertThat(done.get(i).get().size()).isEqualTo(content.length);
        }
        try (var left = Files.list(folder.root().resolve(SafePath.WORK_DIR))) {
            assertThat(left).as("nothing left in the working folder").isEmpty();
        }
    }

    /** Nested folders that do not exist yet, each wanted by 40 files in a row: by several flush threads at once. */
    private static String path(int i) {
        return "d" + (i / 40) + "/e/f" + i;
    }

    @Test
    void shouldFailOnlyTheFileReceivedLaterThatCannotBePutInPlace() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Files.createDirectories(folder.root().resolve("taken")); // a folder where the second file is to go
        java.util.List<java.util.concurrent.Future<Delta.Stats>> done = new java.util.ArrayList<>();
        String[] paths = {"a", "taken", "c"};
        for (int i = 0; i < paths.length; i++) {
            byte[] content = random(500, 40 + i);
            FileMeta meta = new FileMeta(paths[i], content.length, 1_000L, -1, hash(content));
            byte[] d = delta(content, folder.basis(meta), new Delta.Stats[1]);
            done.add(folder.receiveLater(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta)));
        }
        folder.settle();
        assertThat(done.get(0).get().size()).isEqualTo(500);
        assertThatThrownBy(() -> done.get(1).get()).hasCauseInstanceOf(BadBatchException.class)
                .hasMessageContaining("file 'taken' cannot be written: a folder of that name is in the way");
        assertThat(done.get(2).get().size()).isEqualTo(500);
        assertThat(Files.readAllBytes(folder.root().resolve("c"))).isEqualTo(random(500, 42));
        assertThat(Files.isDirectory(folder.root().resolve("taken"))).isTrue();
        try (var left = Files.list(folder.root().resolve(SafePath.WORK_DIR))) {
            assertThat(left).as("nothing left in the working folder").isEmpty();
        }
    }

    @Test
    void shouldRefuseAFileReceivedLaterWhoseWayGoesThroughALinkBeforeReadingItAndWriteNothingOutside() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Files.createDirectories(folder.root().resolve("a"));
        Files.createSymbolicLink(folder.root().resolve("a/escape"), outside);
        byte[] content = random(2_000, 5);
        ChunkIndex none = ChunkIndex.ofIds(new long[0]);
        byte[] d = delta(content, none, new Delta.Stats[1]);
        ByteArrayInputStream in = new ByteArrayInputStream(d);
        FileMeta meta = new FileMeta("a/escape/x", content.length, 1_000L, -1, hash(content));
        assertThatThrownBy(() -> folder.receiveLater(meta, new DataInputStream(in), none))
                .isInstanceOf(io.syncline.api.UnsafePathException.class).hasMessageContaining("symbolic link 'a/escape'");
        assertThat(in.available()).as("nothing of its content read").isEqualTo(d.length);
        // A file where a folder is needed is named too; a path whose folders are all real goes on.
        Files.writeString(folder.root().resolve("a/plain"), "a file");
        FileMeta underFile = new FileMeta("a/plain/x", content.length, 1_000L, -1, hash(content));
        assertThatThrownBy(() -> folder.receiveLater(underFile, new DataInputStream(new ByteArrayInputStream(d)), none))
                .isInstanceOf(io.syncline.api.UnsafePathException.class).hasMessageContaining("'a/plain' is a file, not a folder");
        FileMeta fine = new FileMeta("a/b/x", content.length, 1_000L, -1, hash(content));
        folder.receiveLater(fine, new DataInputStream(new ByteArrayInputStream(d)), none);
        folder.flush();
        assertThat(Files.readAllBytes(folder.root().resolve("a/b/x"))).isEqualTo(content);
        try (var out = Files.list(outside)) {
            assertThat(out).isEmpty();
        }
    }

    @Test
    void shouldMakeNoFolderThroughALinkThatReplacedAFolderOpenedForTheExchange() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Path d = Files.createDirectories(folder.root().resolve("d"));
        byte[] content = random(2_000, 5);
        ChunkIndex none = ChunkIndex.ofIds(new long[0]);
        byte[] delta = delta(content, none, new Delta.Stats[1]);
        FileMeta meta = new FileMeta("d/e/f", content.length, 1_000L, -1, hash(content));
        // Checked (d opened, e missing), then, before the rename, d moved away and a link to outside put at its name.
        FileFolder.Check swap = () -> {
            Files.move(d, folder.root().resolve("d-moved"));
            Files.createSymbolicLink(d, outside);
            return true;
        };
        assertThatThrownBy(() -> folder.receive(meta, new DataInputStream(new ByteArrayInputStream(delta)), none, swap))
                .isInstanceOf(io.syncline.api.UnsafePathException.class).hasMessageContaining("symbolic link 'd'");
        folder.flush();
        try (var out = Files.list(outside)) {
            assertThat(out).as("no folder made through the link").isEmpty();
        }
    }

    @Test
    void shouldRefuseAtOnceAFileReceivedLaterThatIsNotWhatWasAnnounced() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        byte[] content = random(2_000, 5);
        FileMeta meta = new FileMeta("x", content.length, 1_000L, -1, hash(random(2_000, 6)));
        byte[] d = delta(content, folder.basis(meta), new Delta.Stats[1]);
        assertThatThrownBy(() -> folder.receiveLater(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta)))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("file 'x': received 2000 bytes");
        folder.flush();
        assertThat(Files.exists(folder.root().resolve("x"))).isFalse();
    }

    @Test
    void shouldWriteAnEmptyFile() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        FileMeta meta = new FileMeta("empty", 0, 2_000L, -1, hash(new byte[0]));
        Delta.Stats[] s = new Delta.Stats[1];
        byte[] d = delta(new byte[0], folder.basis(meta), s);
        folder.receive(meta, new DataInputStream(new ByteArrayInputStream(d)), folder.basis(meta));
        assertThat(Files.size(folder.root().resolve("empty"))).isZero();
    }

    @Test
    void shouldMoveALocalCopyAndDeleteWithTheFoldersLeftEmpty() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Path a = Files.createDirectories(folder.root().resolve("old/deep")).resolve("a.jpg");
        Files.writeString(a, "image");
        FileMeta moved = new FileMeta("new/a.jpg", 5, 3_000L, -1, hash("image".getBytes()));
        assertThat(folder.copyLocal("old/deep/a.jpg", moved, true)).isTrue();
        assertThat(Files.readString(folder.root().resolve("new/a.jpg"))).isEqualTo("image");
        assertThat(Files.exists(folder.root().resolve("old"))).as("emptied folders removed").isFalse();
        assertThat(folder.copyLocal("old/deep/a.jpg", moved, true)).as("source gone").isFalse();
        folder.delete("new/a.jpg");
        folder.delete("new/a.jpg"); // deleting again is no error
        assertThat(Files.exists(folder.root().resolve("new"))).isFalse();
    }

    @Test
    void shouldKeepTheWorkingFolderToItsOwnUser() throws Exception {
        Path root = tmp.resolve("hub");
        Path work = Files.createDirectories(root.resolve(SafePath.WORK_DIR));
        Files.setPosixFilePermissions(work, PosixFilePermissions.fromString("rwxrwxrwx")); // as an older version left it
        new FileFolder(root);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(work))).isEqualTo("rwx------");

        // Deleted while the process runs (its permissions are set once per process, at the first folder of a root):
        // the next exchange's folder makes it again, as it was.
        Files.delete(work);
        new FileFolder(root);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(work))).isEqualTo("rwx------");
    }

    @Test
    void shouldMoveAFileOntoTheFolderItWasIn() throws Exception {
        // At the sender: mv a/deep/b.jpg x; rm -r a; mv x a. Its scanner records the move of a/deep/b.jpg to a.
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Files.writeString(Files.createDirectories(folder.root().resolve("a/deep")).resolve("b.jpg"), "image");
        FileMeta moved = new FileMeta("a", 5, 3_000L, -1, hash("image".getBytes()));
        assertThat(folder.copyLocal("a/deep/b.jpg", moved, true)).isTrue();
        assertThat(folder.root().resolve("a")).isRegularFile().hasContent("image");
        assertThat(folder.root().resolve(SafePath.WORK_DIR)).isEmptyDirectory();
    }

    @Test
    void shouldLeaveAFileWhereItWasWhenItsMoveOntoItsFolderFindsOtherFilesThere() throws Exception {
        FileFolder folder = new FileFolder(tmp.resolve("hub"));
        Path b = Files.createDirectories(folder.root().resolve("a/deep")).resolve("b.jpg");
        Files.writeString(b, "image");
        Path other = Files.writeString(folder.root().resolve("a/other.jpg"), "other");
        FileMeta moved = new FileMeta("a", 5, 3_000L, -1, hash("image".getBytes()));
        assertThatThrownBy(() -> folder.copyLocal("a/deep/b.jpg", moved, true))
                .isInstanceOf(BadBatchException.class).hasMessageContaining("file 'a' cannot be written: a folder of that name is in the way");
        assertThat(b).hasContent("image");
        assertThat(other).hasContent("other");

        folder.delete("a/other.jpg"); // as when the deletion comes after all
        assertThat(folder.copyLocal("a/deep/b.jpg", moved, true)).isTrue();
        assertThat(folder.root().resolve("a")).isRegularFile().hasContent("image");
    }

    @Test
    void shouldDeletePartialFilesOlderThanTheirAgeAtMostOnceAnHour() throws Exception {
        // Ages count from a file's last change (ctime; files made now): the clock is moved on instead.
        java.time.Instant now = java.time.Instant.now();
        java.time.Duration week = java.time.Duration.ofDays(7);
        Path root = tmp.resolve("folder");
        Path work = Files.createDirectories(root.resolve(SafePath.WORK_DIR));
        Path part = partial(work, "aaaa.part");
        Path fresh = partial(work, "bbbb.new");
        // Being put in place: it has the source's time, years old, but was written just now.
        Files.setLastModifiedTime(fresh, java.nio.file.attribute.FileTime.from(now.minus(java.time.Duration.ofDays(3000))));
        Path other = partial(work, "notes.txt");

        new FileFolder(root, week, at(now.plus(java.time.Duration.ofDays(6))));
        assertThat(part).as("changed 6 days ago: kept to resume from").exists();
        assertThat(fresh).as("changed just now, whatever its modification time").exists();

        Path later = partial(work, "cccc.part");
        new FileFolder(root, week, at(now.plus(java.time.Duration.ofDays(8)).minus(java.time.Duration.ofMinutes(10))));
        assertThat(part).doesNotExist();
        assertThat(fresh).doesNotExist();
        assertThat(other).as("not a partial file").exists();
        Path again = partial(work, "dddd.part");
        new FileFolder(root, week, at(now.plus(java.time.Duration.ofDays(8)).plus(java.time.Duration.ofMinutes(20))));
        assertThat(again).as("looked at once an hour at most").exists();
        new FileFolder(root, week, at(now.plus(java.time.Duration.ofDays(8)).plus(java.time.Duration.ofMinutes(51))));
        assertThat(again).doesNotExist();
        assertThat(later).doesNotExist();

        Path other2 = tmp.resolve("other");
        Path young = partial(Files.createDirectories(other2.resolve(SafePath.WORK_DIR)), "eeee.part");
        new FileFolder(other2, java.time.Duration.ZERO, at(now.plus(java.time.Duration.ofMinutes(30))));
        assertThat(young).as("an age below an hour counts as an hour").exists();
    }

    private static java.time.Clock at(java.time.Instant t) {
        return java.time.Clock.fixed(t, java.time.ZoneOffset.UTC);
    }

    private static Path partial(Path work, String name) throws Exception {
        return Files.write(work.resolve(name), new byte[] {1, 2, 3});
    }
}
