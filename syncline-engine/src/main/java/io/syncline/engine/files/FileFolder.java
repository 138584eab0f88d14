package io.syncline.engine.files;

import io.syncline.api.BadBatchException;
import io.syncline.api.SyncException;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/*
 * A channel's folder at the node that receives files. A file appears whole or not at all: it is built in the folder's
 * working folder (SafePath.WORK_DIR, same file system), checked against the announced length and content hash, flushed to
 * disk, given its modification time and permissions, and then renamed over the target in one atomic step; the folders
 * renamed into are flushed by flush(), once per exchange rather than once per file (a folder flush after each of many
 * small files doubled their cost), before the receiver records the changes as applied. A transfer that breaks keeps what it wrote as <hash>.part, and the next attempt
 * offers those chunks in its basis, so only the rest travels again (chunks are known by the id of their content, so
 * a partial file can never contribute a wrong byte). Every path from the other side goes through
 * SafePath first. One writer per folder at a time (the caller's lock). receiveLater leaves the writing, the flush and
 * the rename of each file to the flush threads, so the flushes of many small files overlap, or, where a GroupFlush can
 * be had, the writing to the flush threads and the flush and rename to the group flush, which flushes the files of
 * many at once (one syncfs); flush() waits for them first.
 */
public final class FileFolder {
    /**
     * Contents (by folder and hash) whose build from a basis gave another hash: asked for again with no basis, so a
     * chunk id two different chunks share cannot hold a file back for good. Bounded: cleared when it grows large.
     */
    private static final Set<String> NO_BASIS = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** The working folder's permissions: its files are this process's, being built or set aside (rwx------). */
    private static final Set<PosixFilePermission> WORK_MODE = EnumSet.of(PosixFilePermission.OWNER_READ,
            PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_EXECUTE);
    /**
     * Roots whose working folder was rid of what earlier processes left (files named before content hashes, old
     * versions set aside) and given its permissions, once per process each.
     */
    private static final Set<Path> SWEPT = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** How long a broken transfer's partial file is kept when the caller does not say (files.partialMaxAge). */
    public static final java.time.Duration PARTIAL_MAX_AGE = java.time.Duration.ofDays(7);
    /** A working folder is looked at for old partial files at most this often; it is also the least age swept. */
    static final long SWEEP_EVERY_MILLIS = 3_600_000;
    /** Per root, when its working folder was last looked at for old partial files (clock millis). */
    private static final java.util.Map<Path, Long> SWEPT_AT = new java.util.concurrent.ConcurrentHashMap<>();
    private final Path root;
    private final Path work;
    private final boolean posix;
    /** The permission bits a file created in the working folder loses (see masked()); -1 until found. */
    private volatile int masked = -1;
    /** At most this many files of {@link #receiveLater} are under way at a time, each flushed on its own. */
    static final int MAX_UNSETTLED = 64;
    /** The same with a {@link GroupFlush}, where a file waits for the next flush of many: what it holds is a name. */
    static final int MAX_UNSETTLED_GROUPED = 1024;
    /** Files of {@link #receiveLater} up to this size are received into memory (see buildInMemory). */
    static final int SMALL_FILE = 256 << 10;
    /**
     * Files of {@link #receiveLater} under way in the whole process (each may hold an open file): at most 256. Beyond,
     * the receiving thread puts its file in place itself.
     */
    private static final java.util.concurrent.Semaphore UNDER_WAY = new java.util.concurrent.Semaphore(256);
    /** Bytes of small files received into memory and not written yet, every folder's together: at most 32 MiB. */
    private static final java.util.concurrent.Semaphore IN_MEMORY = new java.util.concurrent.Semaphore(32 << 20);
    /**
     * Flush and put in place the files of {@link #receiveLater}, every folder's: several at once, so that the disk
     * commits their flushes together (8 rather than 4: as fast or faster in interleaved runs of bench/files,
     * docs/benchmarks.md). Daemon threads, like Writeback's: what they have under way is always waited for
     * by a receiver (settle, flush) before it answers.
     */
    private static final ExecutorService FLUSHERS = Executors.newFixedThreadPool(8, new java.util.concurrent.ThreadFactory() {
        private final java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();

        @Override
        public Thread newThread(Runnable r) {
            Thread t = new Thread(r, "syncline-file-flush-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        }
    });
    /** Folders with renames or deletions not flushed to disk yet (see {@link #flush}); the flush threads add to it. */
    private final Set<Path> dirty = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** Files of {@link #receiveLater} not known to be settled, oldest first (the receiving thread's). */
    private final java.util.ArrayDeque<Future<?>> unsettled = new java.util.ArrayDeque<>();
    /** Their contents' hashes: one content is built under one name at a time. */
    private final Set<String> underWay = new java.util.HashSet<>();
    /**
     * Their paths: one file of a path is under way at a time (the flush threads end their files in any order, so files
     * of one path under way together could be put in place in any order; and a basis is read from the file at the path).
     */
    private final Set<String> pathsUnderWay = new java.util.HashSet<>();
    /** Gives the group flush of a folder's file system, or null where each file is to be flushed on its own. */
    private final java.util.function.BiFunction<Path, java.nio.file.FileStore, GroupFlush> groups;
    /** The file system of {@link #root} (looked up once: on Linux, each look reads the mount table). */
    private final java.nio.file.FileStore store;
    /** Flushes the files of {@link #receiveLater} to disk in groups; null where each is flushed on its own. */
    private GroupFlush group;
    /** Whether {@link #group} was looked for (at the first receiveLater: a folder that receives nothing needs none). */
    private boolean grouped;
    /** See {@link #dirs()}; {@code noDirs}: they cannot be opened so here. */
    private OpenDirs dirs;
    private boolean noDirs;

    public FileFolder(Path root) throws IOException {
        this(root, PARTIAL_MAX_AGE, java.time.Clock.systemUTC());
    }

    /**
     * @param partialMaxAge how long what a broken transfer wrote (a {@code .part}, or a {@code .new} left by a process
     *                      that died) is kept for the transfer to resume from, from its last change (its ctime: a file's
     *                      modification time is the source's, set before its flush); older ones are deleted, at most
     *                      once an hour per folder (a transfer that comes later is sent whole again); at least an hour
     */
    public FileFolder(Path root, java.time.Duration partialMaxAge, java.time.Clock clock) throws IOException {
        this(root, partialMaxAge, clock, GroupFlush::forFolder);
    }

    /** @param groups gives the group flush of a folder and its file system, or null to flush each file on its own */
    FileFolder(Path root, java.time.Duration partialMaxAge, java.time.Clock clock,
               java.util.function.BiFunction<Path, java.nio.file.FileStore, GroupFlush> groups)
            throws IOException {
        this.groups = groups;
        Files.createDirectories(root);
        this.root = root.toRealPath();
        this.work = this.root.resolve(SafePath.WORK_DIR);
        if (Files.isSymbolicLink(work)) {
            throw new IOException(work + " is a symbolic link; Syncline's working folder must be a real folder inside " + this.root);
        }
        this.store = Files.getFileStore(this.root);
        this.posix = store.supportsFileAttributeView("posix");
        if (posix) { // (made again with its permissions if someone deleted it since the process started)
            Files.createDirectories(work, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(WORK_MODE));
        } else {
            Files.createDirectories(work);
        }
        if (SWEPT.add(this.root)) { // once per process: a folder is made per exchange
            if (posix && !Files.getPosixFilePermissions(work, LinkOption.NOFOLLOW_LINKS).equals(WORK_MODE)) {
                Files.setPosixFilePermissions(work, WORK_MODE); // only this process's user writes in it (setAttributes)
            }
            sweepSha256Leftovers();
            Reaper.releaseLeftovers(work); // old versions a process that died had set aside
        }
        long now = clock.millis();
        boolean[] due = {false};
        SWEPT_AT.compute(this.root, (k, last) -> {
            if (last == null || now - last >= SWEEP_EVERY_MILLIS || now < last) {
                due[0] = true;
                return now;
            }
            return last;
        });
        if (due[0]) {
            sweepOldPartials(now - Math.max(SWEEP_EVERY_MILLIS, partialMaxAge.toMillis()));
        }
    }

    /**
     * Deletes the partial files of the working folder last changed before {@code olderThan} (clock millis). A failure
     * leaves them for the next sweep: it does not stop the transfer that came.
     */
    private void sweepOldPartials(long olderThan) {
        try (DirectoryStream<Path> left = Files.newDirectoryStream(work, "*.{part,new}")) {
            for (Path f : left) {
                try {
                    if (Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS) && changed(f) < olderThan) {
                        Files.deleteIfExists(f);
                    }
                } catch (java.nio.file.NoSuchFileException e) {
                    // taken meanwhile
                }
            }
        } catch (IOException | java.nio.file.DirectoryIteratorException e) {
            // an hour later
        }
    }

    /**
     * Deletes what transfers broken before 2026-11-30 left in the working folder, named by SHA-256 (64 hex digits):
     * no content is asked for by those names any more.
     */
    private void sweepSha256Leftovers() throws IOException {
        try (DirectoryStream<Path> left = Files.newDirectoryStream(work, "*.{part,new}")) {
            for (Path f : left) {
                String name = f.getFileName().toString();
                if (name.indexOf('.') == 64 && name.substring(0, 64).chars().allMatch(ch -> ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f')) {
                    Files.deleteIfExists(f);
                }
            }
        }
    }

    /**
     * Flushes to disk the folders this object renamed files into or deleted files from since the last flush. Call it
     * before recording that the changes are applied: until then a crash may undo a rename (and the change is applied
     * again, which is harmless).
     *
     * @throws IOException when the disk failed to write a folder: its renames are not known to be on disk, and the
     *                     changes must not be recorded as applied
     */
    public void flush() throws IOException {
        settle();
        try {
            for (Path dir : dirty) {
                syncDirectory(dir);
            }
            dirty.clear();
        } finally {
            closeDirs(); // (nothing is under way after settle)
        }
    }

    /**
     * The folders files are renamed into, opened as they are needed (see OpenDirs), or null where the platform cannot
     * open them so. Closed by {@link #flush}, which every exchange ends with; opened again if more comes.
     */
    private synchronized OpenDirs dirs() {
        if (dirs == null && !noDirs) {
            dirs = OpenDirs.of(root);
            noDirs = dirs == null;
        }
        return dirs;
    }

    private synchronized void closeDirs() {
        if (dirs != null) {
            dirs.close();
            dirs = null;
        }
    }

    public Path root() {
        return root;
    }

    /**
     * The file a checked path names here, or null when a file stands where the path needs a folder (a file that is to
     * become a folder: the change that deletes it comes first when the changes are applied, so the question whether the
     * content is here already is simply answered no).
     */
    private Path fileOrNull(String path) throws IOException {
        try {
            return file(path);
        } catch (io.syncline.api.UnsafePathException e) {
            if (e.getMessage().contains("is a file, not a folder")) {
                return null;
            }
            throw e;
        }
    }

    /** The file a checked path names here (no links on the way). */
    public Path file(String path) throws IOException {
        return SafePath.resolve(root, path);
    }

    /**
     * As {@link #file}, for a file to be put in place by {@link #install}: where folders can be opened without following
     * links (OpenDirs), its folders are looked at once per exchange, and the rename goes through them.
     */
    private Path checked(String path) throws IOException {
        OpenDirs d = dirs();
        if (d == null) {
            return file(path);
        }
        Path p = SafePath.join(root, path);
        d.check(path);
        return p;
    }

    /**
     * True when {@code path} holds {@code meta}'s content. Only a file of the same length and modification time is read
     * and hashed: one with another time is taken as different (an edited file, the common case, is then not read twice;
     * a file only touched costs a delta of copies instead).
     */
    public boolean holds(String path, FileMeta meta) throws IOException {
        Path f = fileOrNull(path);
        if (f == null) {
            return false;
        }
        java.nio.file.attribute.BasicFileAttributes a = f.getFileSystem().provider().readAttributesIfExists(f,
                java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        return a != null && a.isRegularFile() && a.size() == meta.size() && a.lastModifiedTime().toMillis() == meta.mtimeMillis() && ContentHash.of(f).equals(meta.hash());
    }

    /** True when {@code path} holds {@code meta}'s content, whatever its time: for the source of a move or copy. */
    public boolean sameContent(String path, FileMeta meta) throws IOException {
        Path f = fileOrNull(path);
        return f != null && Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS) && Files.size(f) == meta.size() && ContentHash.of(f).equals(meta.hash());
    }

    /** True when {@code meta.path()} already holds {@code meta}'s content; then its time and permissions are set as in meta. */
    public boolean has(FileMeta meta) throws IOException {
        settle();
        if (!holds(meta.path(), meta)) {
            return false;
        }
        setAttributes(file(meta.path()), meta);
        return true;
    }

    /**
     * The chunks this node can build {@code meta}'s file from without receiving them: those of the file now at its
     * path and of a partial earlier transfer of the same content.
     */
    public ChunkIndex basis(FileMeta meta) throws IOException {
        if (underWay.contains(meta.hash()) || pathsUnderWay.contains(meta.path())) {
            settle(); // its new file is in the working folder, not a leftover; the file at its path is the last one
        }
        Path fresh = work.resolve(meta.hash() + ".new");
        if (Files.exists(fresh)) { // left by a transfer whose process died: what it wrote is worth keeping too
            keepPartial(fresh, part(meta.hash()));
        }
        List<Path> sources = new ArrayList<>();
        Chunker.Sizes sizes = Chunker.Sizes.forFile(meta.size());
        if (!NO_BASIS.contains(root + "/" + meta.hash())) {
            Path current = fileOrNull(meta.path());
            if (current != null && meta.size() >= Indexes.MIN_SIZE && !Files.exists(part(meta.hash()))) {
                ChunkIndex ready = Indexes.get(current, sizes); // a large file received earlier, indexed since
                if (ready != null) {
                    return ready;
                }
            }
            sources.add(current);
            sources.add(part(meta.hash()));
        }
        return ChunkIndex.of(sources, sizes);
    }

    /**
     * Reads {@code meta}'s delta from {@code in} against {@code basis} and puts the file in place atomically.
     *
     * @throws BadBatchException when the delta is malformed or what it builds is not {@code meta}'s content (the
     *     target is untouched; a cut keeps the bytes received for the next attempt)
     */
    public Delta.Stats receive(FileMeta meta, DataInputStream in, ChunkIndex basis) throws IOException {
        return receive(meta, in, basis, () -> true);
    }

    /** A check made just before a file is put in place. */
    @FunctionalInterface
    public interface Check {
        boolean holds() throws IOException;
    }

    /**
     * {@link #receive(FileMeta, DataInputStream, ChunkIndex)}, but the file is put in place only if {@code stillWanted}
     * holds once it is built (checked just before the rename: two-way, the path was not changed here meanwhile); null
     * when it was not (what was built is kept as a partial file, so asking again costs nothing).
     */
    public Delta.Stats receive(FileMeta meta, DataInputStream in, ChunkIndex basis, Check stillWanted) throws IOException {
        settle();
        Path target = checked(meta.path());
        Built b = build(meta, in, basis);
        if (!stillWanted.holds()) {
            b.close();
            keepPartial(b.fresh(), part(meta.hash()));
            return null;
        }
        return putInPlace(b, target);
    }

    /**
     * {@link #receive(FileMeta, DataInputStream, ChunkIndex)}, but the file's flush to disk, its attributes and its
     * rename are left to the flush threads: the flushes of many small files overlap, and the disk commits them together,
     * while the next file arrives; with a {@link GroupFlush}, the flush threads write the file and give it its
     * attributes, and the group flush flushes it with the others written meanwhile and renames it. The file is in place
     * once the returned future is done, or failed as receive fails; {@link #settle} and {@link #flush} wait for every
     * one. At most {@value #MAX_UNSETTLED} are under way at a time ({@value #MAX_UNSETTLED_GROUPED} with a group flush,
     * where a file that waits for it holds neither memory nor an open file): beyond, this waits for the oldest. A file
     * with the same content as one under way waits for every one, since both are built under the content's name, and so
     * does a file for a path already under way (the later must end up in place, and the flush threads end their
     * files in any order). Only for changes that need nothing else of the
     * folder in between: a deletion, a move or a check of what is here first settles.
     *
     * @throws BadBatchException as receive, when what arrived is not the announced file (nothing is put in place)
     */
    public Future<Delta.Stats> receiveLater(FileMeta meta, DataInputStream in, ChunkIndex basis) throws IOException {
        Path target = checked(meta.path());
        if (!grouped) {
            group = groups.apply(root, store);
            grouped = true;
        }
        if (underWay.contains(meta.hash()) || pathsUnderWay.contains(meta.path())) {
            settle();
        }
        while (unsettled.size() >= (group == null ? MAX_UNSETTLED : MAX_UNSETTLED_GROUPED)) {
            await(unsettled.poll());
        }
        if (!UNDER_WAY.tryAcquire()) {
            // Every flush thread has work enough (many exchanges at once): this one puts its file in place itself.
            return java.util.concurrent.CompletableFuture.completedFuture(putInPlace(build(meta, in, basis), target));
        }
        java.util.concurrent.CompletableFuture<Delta.Stats> done = new java.util.concurrent.CompletableFuture<>();
        try {
            GroupFlush g = group;
            long begun = g == null ? 0 : g.begin(); // before anything of the file is written
            Built b = meta.size() <= SMALL_FILE && IN_MEMORY.tryAcquire((int) meta.size())
                    ? buildInMemory(meta, in, basis) : build(meta, in, basis);
            underWay.add(meta.hash());
            pathsUnderWay.add(meta.path());
            try {
                FLUSHERS.execute(() -> {
                    try {
                        if (g == null) {
                            done.complete(putInPlace(b, target));
                        } else {
                            prepare(b, false);
                            Built written = b.written(); // not its content: that memory goes back now
                            g.add(begun, meta.path(), () -> installBuilt(written, target), () -> Files.deleteIfExists(written.fresh()), done);
                        }
                    } catch (Throwable t) {
                        done.completeExceptionally(t);
                    } finally {
                        UNDER_WAY.release(); // its file is closed: what is left to do holds neither memory nor a file
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException e) {
                b.close();
                if (b.content() == null) {
                    Files.deleteIfExists(b.fresh());
                }
                throw new IOException("file '" + meta.path() + "' could not be handed to a flush thread", e);
            }
        } catch (IOException | RuntimeException | Error e) {
            UNDER_WAY.release();
            throw e;
        }
        unsettled.add(done);
        return done;
    }

    /**
     * Writes a file built in memory into the working folder, created with {@code mode} (none: the process's default);
     * its channel is left open, not flushed yet.
     */
    private static FileChannel written(Built b, java.nio.file.attribute.FileAttribute<?>... mode) throws IOException {
        try {
            FileChannel ch = createNew(b.fresh(), mode);
            try {
                java.nio.ByteBuffer buf = java.nio.ByteBuffer.wrap(b.content());
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                return ch;
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
        } finally {
            b.close(); // the bytes are in the file (or it failed): their memory goes back
        }
    }

    /**
     * Creates {@code fresh}, replacing what a failed attempt left there. CREATE_NEW with NOFOLLOW_LINKS: a link planted
     * in the working folder is never written through (it is deleted and the file created in its place).
     */
    private static FileChannel createNew(Path fresh, java.nio.file.attribute.FileAttribute<?>... mode) throws IOException {
        Set<java.nio.file.OpenOption> options = Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS);
        try {
            return FileChannel.open(fresh, options, mode);
        } catch (java.nio.file.FileAlreadyExistsException e) {
            Files.delete(fresh);
            return FileChannel.open(fresh, options, mode);
        }
    }

    /** No attribute: created files get the process's default permissions, set afterwards. */
    private static final java.nio.file.attribute.FileAttribute<?>[] DEFAULT_MODE = new java.nio.file.attribute.FileAttribute<?>[0];

    /**
     * The permissions to create {@code meta}'s file with, when creating it so gives exactly them: the bits the
     * process's umask (or the working folder's default ACL) takes away from a new file's mode, found once by creating
     * a file there, are none of them. Else none: the permissions are then set after, by a second open (fchmod).
     */
    private java.nio.file.attribute.FileAttribute<?>[] creationMode(FileMeta meta) {
        if (!posix || meta.mode() < 0) {
            return DEFAULT_MODE;
        }
        int masked = masked();
        if ((meta.mode() & 0777 & masked) != 0) {
            return DEFAULT_MODE;
        }
        return new java.nio.file.attribute.FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(permissions(meta.mode()))};
    }

    /** The permission bits a file created in the working folder loses (see creationMode); all of them if not known. */
    private int masked() {
        int m = masked;
        if (m < 0) {
            Path probe = work.resolve(".mode-" + java.util.UUID.randomUUID());
            try {
                Files.createFile(probe, PosixFilePermissions.asFileAttribute(permissions(0777)));
                try {
                    m = ~mode(Files.getPosixFilePermissions(probe, LinkOption.NOFOLLOW_LINKS)) & 0777;
                } finally {
                    Files.deleteIfExists(probe);
                }
            } catch (IOException | RuntimeException e) {
                m = 0777; // not known: permissions are set after creation, as always
            }
            masked = m;
        }
        return m;
    }

    /** Waits until every file of {@link #receiveLater} is in place or has failed (its future says which). */
    public void settle() {
        for (Future<?> f = unsettled.poll(); f != null; f = unsettled.poll()) {
            await(f);
        }
        underWay.clear();
        pathsUnderWay.clear();
    }

    private static void await(Future<?> f) {
        boolean interrupted = false;
        while (true) {
            try {
                f.get();
                break;
            } catch (InterruptedException e) {
                interrupted = true; // the file is being put in place: its end is waited for, not abandoned
            } catch (java.util.concurrent.ExecutionException e) {
                break; // the caller learns it from its own future
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * A file received and checked: in the working folder, its channel still open and not flushed yet, or (a small file
     * of {@link #receiveLater}) in {@code content}, holding that many bytes of {@link #IN_MEMORY}, not written yet.
     */
    private record Built(FileMeta meta, Path fresh, FileChannel channel, Delta.Stats stats, byte[] content, boolean fromBasis) {
        /** The file once written and closed: what is left to put it in place. */
        Built written() {
            return new Built(meta, fresh, null, stats, null, fromBasis);
        }

        void close() {
            if (content != null) {
                IN_MEMORY.release(content.length);
                return;
            }
            try {
                channel.close();
            } catch (IOException ignored) {
                // nothing was flushed through it yet, and the file is dropped or kept as a partial one
            }
        }
    }

    /**
     * Reads a small file's delta into memory and checks it, so that a flush thread creates and writes the file, not the
     * receiving thread: creating a file waits while the file system commits other files' flushes, and the receiving
     * thread would wait for each in turn. The caller holds {@code meta.size()} bytes of {@link #IN_MEMORY}, released
     * here on failure, else once the file is written. A cut keeps nothing (a small file is simply sent again).
     */
    private Built buildInMemory(FileMeta meta, DataInputStream in, ChunkIndex basis) throws IOException {
        try {
            byte[] content = new byte[(int) meta.size()];
            int[] filled = new int[1];
            // (decode never writes more than the announced size: the bytes go straight into the file's array, once)
            Delta.Stats got = Delta.decode(in, basis, new java.io.OutputStream() {
                @Override
                public void write(int b) {
                    content[filled[0]++] = (byte) b;
                }

                @Override
                public void write(byte[] b, int off, int len) {
                    System.arraycopy(b, off, content, filled[0], len);
                    filled[0] += len;
                }
            }, meta.path(), meta.size());
            if (got.size() != meta.size() || !got.hash().equals(meta.hash())) {
                throw notAnnounced(meta, got);
            }
            return new Built(meta, work.resolve(meta.hash() + ".new"), null, got, content, basis.size() > 0);
        } catch (IOException | RuntimeException | Error e) {
            IN_MEMORY.release((int) meta.size());
            throw e;
        }
    }

    private BadBatchException notAnnounced(FileMeta meta, Delta.Stats got) {
        if (got.copiedBytes() > 0) {
            if (NO_BASIS.size() > 10_000) {
                NO_BASIS.clear();
            }
            NO_BASIS.add(root + "/" + meta.hash()); // in case a chunk id matched a different chunk
        }
        return new BadBatchException(SyncException.Stage.APPLY, "file '" + meta.path() + "': received " + got.size()
                + " bytes with content hash " + got.hash() + " but " + meta.size() + " bytes with " + meta.hash()
                + " were announced (the file changed at the sender while it was sent; it is sent again)");
    }

    /**
     * Reads {@code meta}'s delta into a new file of the working folder and checks it against the announced length and
     * hash. On failure nothing is left but a partial file worth keeping (a cut), and the exception goes on.
     */
    private Built build(FileMeta meta, DataInputStream in, ChunkIndex basis) throws IOException {
        Path fresh = work.resolve(meta.hash() + ".new");
        Path part = part(meta.hash());
        boolean cut = false;
        FileChannel ch = createNew(fresh);
        try {
            Delta.Stats got;
            Writeback out = new Writeback(new BufferedOutputStream(Channels.newOutputStream(ch), 64 * 1024), () -> ch.force(false));
            try {
                got = Delta.decode(in, basis, out, meta.path(), meta.size());
            } catch (Delta.CutException | IOException e) { // the data stopped (a cut connection, a peer gone): not malformed
                cut = true;
                throw e;
            } finally {
                out.flush();
                out.settle();
            }
            out.check();
            if (got.size() != meta.size() || !got.hash().equals(meta.hash())) {
                BadBatchException refused = notAnnounced(meta, got);
                Files.deleteIfExists(part); // what was built is not that content: nothing of it is kept
                throw refused;
            }
            return new Built(meta, fresh, ch, got, null, basis.size() > 0);
        } catch (IOException | RuntimeException e) {
            ch.close();
            if (cut) {
                keepPartial(fresh, part); // a correct start of the file, worth keeping for the next attempt
            } else {
                Files.deleteIfExists(fresh); // malformed, or not the announced content: nothing of it is kept
            }
            throw e;
        }
    }

    /** Flushes a built file to disk, gives it its attributes and renames it over {@code target}. */
    private Delta.Stats putInPlace(Built b, Path target) throws IOException {
        prepare(b, true);
        return installBuilt(b, target);
    }

    /**
     * Writes a built file (if built in memory), gives it its attributes, flushes it to disk if {@code force} (else a
     * {@link GroupFlush} does) and closes it. On failure it is deleted.
     */
    private void prepare(Built b, boolean force) throws IOException {
        java.nio.file.attribute.FileAttribute<?>[] mode = b.content() == null ? DEFAULT_MODE : creationMode(b.meta());
        try (FileChannel ch = b.content() == null ? b.channel() : written(b, mode)) {
            // before the flush, which then writes them with the file's creation; the mode only if not given at it
            setAttributes(b.fresh(), b.meta(), mode.length == 0, true);
            if (force) {
                ch.force(true);
            }
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(b.fresh()); // not known to be on disk: nothing of it is kept
            throw e;
        }
    }

    /** Renames a built file, flushed to disk, over {@code target}. */
    private Delta.Stats installBuilt(Built b, Path target) throws IOException {
        FileMeta meta = b.meta();
        try {
            install(b.fresh(), target, meta.path(), b.fromBasis());
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(b.fresh()); // (a folder in the way): nothing is left in the working folder
            throw e;
        }
        Path part = part(meta.hash());
        // A partial earlier transfer is only looked for when a basis had chunks (it is one of a basis's sources): a stat in
        // the working folder per file was a fifth of the group flush thread's time in a first copy. One a basis did not
        // read (an empty one, or content that came without a basis) is left to the sweep of old partial files.
        if (b.fromBasis() && part.toFile().exists()) { // (a stat costs no exception, which deleteIfExists's does inside)
            Files.deleteIfExists(part);
        }
        NO_BASIS.remove(root + "/" + meta.hash());
        Indexes.prepare(target, meta.size()); // its next change finds its basis ready
        return b.stats();
    }

    /**
     * Puts {@code meta}'s content at its path by copying a file of this folder that holds the same content (a file the
     * sender renamed or copied), without receiving it. False when {@code from} no longer holds that content.
     */
    public boolean copyLocal(String from, FileMeta meta, boolean move) throws IOException {
        settle();
        Path source = file(from);
        if (!sameContent(from, meta)) {
            return false;
        }
        Path target = file(meta.path());
        if (move) {
            setAttributes(source, meta);
            Path moving = source;
            if (source.startsWith(target) && Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
                // Moved onto a folder of its own way (a/b to a): the sender emptied that folder, its deletions come
                // before its moves, so the file goes to the working folder first and takes the folders it leaves empty.
                moving = work.resolve(meta.hash() + ".new");
                move(source, moving);
                pruneEmptyParents(source);
            }
            try {
                install(moving, target, meta.path(), true);
            } catch (IOException | RuntimeException e) {
                if (moving != source) { // (the folder still holds other files): the file goes back, nothing changed
                    putBack(moving, source, from, meta.hash(), e);
                }
                throw e;
            }
            if (moving == source) {
                pruneEmptyParents(source);
            }
            return true;
        }
        Path fresh = work.resolve(meta.hash() + ".new");
        Files.copy(source, fresh, StandardCopyOption.REPLACE_EXISTING);
        try (FileChannel ch = FileChannel.open(fresh, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
        setAttributes(fresh, meta);
        install(fresh, target, meta.path(), true);
        return true;
    }

    /**
     * Puts a file set aside for a move back at its path {@code from} after the move failed ({@code failure}); if that
     * fails too, it is kept as a partial file of its content, so the content's transfer is built from it.
     */
    private void putBack(Path moving, Path source, String from, String hash, Exception failure) {
        try {
            file(from); // the way back is still made of real folders
            Files.createDirectories(source.getParent());
            move(moving, source);
        } catch (IOException | RuntimeException e) {
            failure.addSuppressed(e);
            try {
                keepPartial(moving, part(hash));
            } catch (IOException | RuntimeException kept) {
                failure.addSuppressed(kept);
            }
        }
    }

    /** Deletes the file at {@code path} if there is one, and the folders it leaves empty. */
    public void delete(String path) throws IOException {
        settle();
        Path f = file(path);
        if (Files.isDirectory(f, LinkOption.NOFOLLOW_LINKS)) {
            throw new BadBatchException(SyncException.Stage.APPLY, "file '" + path + "' is to be deleted but is a folder here");
        }
        Path aside = Reaper.setAside(f, work); // a large file is freed afterwards, not in the deletion
        boolean deleted;
        try {
            deleted = Files.deleteIfExists(f);
        } catch (IOException | RuntimeException e) {
            Reaper.keep(aside);
            throw e;
        }
        Reaper.release(aside);
        if (deleted) {
            dirty.add(f.getParent());
            pruneEmptyParents(f);
        }
    }

    /**
     * Renames {@code from} over {@code target}, making the folders it needs. The rename is tried first: the folders are
     * usually there, and a folder in the way fails it, so neither is looked for beforehand. A large old version is set
     * aside and freed afterwards (Reaper), not during the rename; only if {@code mayReplace}. A file built without a
     * basis (new at the sender, sent without an offer) seldom replaces one, and the look for the old version (a stat of
     * a path that is not there) was a quarter of the group flush thread's time per small file; when it does (the hub
     * held the path already, a content asked for again without a basis), the rename frees the old version itself,
     * which for a large one holds that file system's group flush thread meanwhile (about 0.85 s per GiB).
     */
    private void install(Path from, Path target, String path, boolean mayReplace) throws IOException {
        OpenDirs d = from.getParent().equals(work) ? dirs() : null;
        if (d == null) {
            file(path); // the way is still made of real folders
        }
        Path aside = mayReplace ? Reaper.setAside(target, work) : null;
        try {
            moveOrMakeWay(from, target, path, d);
        } catch (IOException | RuntimeException e) {
            Reaper.keep(aside);
            throw e;
        }
        Reaper.release(aside);
        dirty.add(target.getParent());
        dirty.add(from.getParent());
    }

    /** {@code d}: renames {@code from} (in the working folder) through the folders it opened, or null: by path. */
    private void moveOrMakeWay(Path from, Path target, String path, OpenDirs d) throws IOException {
        try {
            if (d == null) {
                move(from, target);
            } else if (!d.rename(from.getFileName().toString(), path)) { // a folder of its way is missing
                file(path); // the way, by path as it is made below, has no link (one may have replaced an open folder)
                Files.createDirectories(target.getParent()); // (another flush thread may have just made them)
                if (!d.rename(from.getFileName().toString(), path)) {
                    throw new java.nio.file.NoSuchFileException(target.getParent().toString(), null, "made, then gone");
                }
            }
        } catch (java.nio.file.NoSuchFileException e) {
            if (!Files.exists(from, LinkOption.NOFOLLOW_LINKS)) {
                throw e;
            }
            if (d != null) {
                file(path); // (checked above only through the open folders, one of which is gone by now)
            }
            Files.createDirectories(target.getParent()); // (another flush thread may have just made them)
            file(path); // also the folders just made
            move(from, target);
        } catch (IOException e) {
            if (Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
                throw new BadBatchException(SyncException.Stage.APPLY, "file '" + path + "' cannot be written: a folder of that name is in the way");
            }
            throw e;
        }
    }

    private void move(Path from, Path target) throws IOException {
        try {
            Files.move(from, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the file system of " + root + " cannot rename atomically; file channels need one that can", e);
        }
    }

    /**
     * Keeps what a failed attempt wrote, if it is more than an earlier attempt kept. Always safe: the next basis knows
     * chunks by the id of their actual content, so bytes that are not the file's are simply never asked for.
     */
    private void keepPartial(Path fresh, Path part) throws IOException {
        if (Files.exists(fresh) && (!Files.exists(part) || Files.size(fresh) > Files.size(part))) {
            Files.move(fresh, part, StandardCopyOption.REPLACE_EXISTING);
        } else {
            Files.deleteIfExists(fresh);
        }
    }

    private void pruneEmptyParents(Path f) throws IOException {
        for (Path dir = f.getParent(); dir != null && !dir.equals(root) && dir.startsWith(root); dir = dir.getParent()) {
            try {
                Files.delete(dir);
            } catch (DirectoryNotEmptyException | java.nio.file.NoSuchFileException e) {
                return;
            }
        }
    }

    /**
     * When the file was last changed (written, renamed, given its times): its ctime where the platform has one, else its
     * modification time.
     */
    private static long changed(Path f) throws IOException {
        try {
            return ((FileTime) Files.getAttribute(f, "unix:ctime", LinkOption.NOFOLLOW_LINKS)).toMillis();
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return Files.getLastModifiedTime(f, LinkOption.NOFOLLOW_LINKS).toMillis();
        }
    }

    private Path part(String hash) {
        return work.resolve(hash + ".part");
    }

    /**
     * Flushes a folder's entries (a rename or delete in it) to disk; a no-op where the platform cannot open a folder
     * (Windows) or the folder is gone (pruned when it was left empty). A failed flush throws.
     */
    private static void syncDirectory(Path dir) throws IOException {
        FileChannel ch;
        try {
            ch = FileChannel.open(dir, StandardOpenOption.READ);
        } catch (IOException | UnsupportedOperationException e) {
            return; // the rename itself is still atomic
        }
        try (ch) {
            ch.force(true);
        } catch (IOException e) {
            throw new IOException("could not flush folder " + dir + " to disk: its renamed and deleted files are not known"
                    + " to be on disk (" + e.getMessage() + ")", e);
        }
    }

    private void setAttributes(Path f, FileMeta meta) throws IOException {
        setAttributes(f, meta, true, false);
    }

    /**
     * {@code made}: {@code f} is a file of the working folder this process created (exclusively; only its user can write
     * in that folder, {@link #WORK_MODE}, so no link has replaced it since): its time is set by path (java.io.File: stat
     * and utimes, which follow links, as rsync's receiver does), not through the attribute view,
     * which opens, reads and closes the file besides (a quarter of a flush thread's time per small file). The view
     * otherwise, and where the path fails.
     */
    private void setAttributes(Path f, FileMeta meta, boolean withMode, boolean made) throws IOException {
        if (withMode && meta.mode() >= 0 && posix) {
            Files.getFileAttributeView(f, java.nio.file.attribute.PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
                    .setPermissions(permissions(meta.mode()));
        }
        if (made && meta.mtimeMillis() >= 0 && f.toFile().setLastModified(meta.mtimeMillis())) {
            return;
        }
        Files.getFileAttributeView(f, java.nio.file.attribute.BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
                .setTimes(FileTime.fromMillis(meta.mtimeMillis()), null, null);
    }

    static Set<PosixFilePermission> permissions(int mode) {
        Set<PosixFilePermission> out = EnumSet.noneOf(PosixFilePermission.class);
        PosixFilePermission[] order = {PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
            PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
            PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ};
        for (int i = 0; i < order.length; i++) {
            if ((mode & (1 << i)) != 0) {
                out.add(order[i]);
            }
        }
        return out;
    }

    static int mode(Set<PosixFilePermission> perms) {
        int m = 0;
        for (PosixFilePermission p : perms) {
            m |= switch (p) {
                case OTHERS_EXECUTE -> 01;
                case OTHERS_WRITE -> 02;
                case OTHERS_READ -> 04;
                case GROUP_EXECUTE -> 010;
                case GROUP_WRITE -> 020;
                case GROUP_READ -> 040;
                case OWNER_EXECUTE -> 0100;
                case OWNER_WRITE -> 0200;
                case OWNER_READ -> 0400;
            };
        }
        return m;
    }
}
