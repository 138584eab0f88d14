package io.syncline.engine.files;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Group commit for received files: files written to the working folder (not flushed) are handed here, and one thread
 * per file system flushes them all to disk with one {@link SyncFs#sync syncfs}, then renames each into place. A file is
 * renamed only after a flush that began after it was written, and only if no flush failed since it was begun; so a file
 * still appears whole or not at all, as with a flush of each file, and the disk writes a group's files in one pass
 * instead of one cache flush per file. While one group is flushed the next gathers, so groups grow with the load.
 * <p>
 * A failed flush (or a write-back error it reports) fails every file begun before it ended: their written files are
 * deleted and their futures fail, so the exchange fails and is sent again; nothing is put in place that is not known
 * to be on disk.
 */
final class GroupFlush {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(GroupFlush.class);
    /** One per file system (mount entry), for the life of the process (a thread and a descriptor each). */
    private static final Map<java.nio.file.FileStore, GroupFlush> BY_FILE_SYSTEM = new ConcurrentHashMap<>();
    private static final AtomicInteger THREADS = new AtomicInteger();
    /** Whether the log said why there is no group flush. */
    private static final java.util.concurrent.atomic.AtomicBoolean TOLD = new java.util.concurrent.atomic.AtomicBoolean();

    /** Flushes the file system to disk; throws when that failed or a write-back on it failed since the last call. */
    interface Sync {
        void sync() throws IOException;
    }

    /** Puts a flushed file in place. */
    interface Install {
        Delta.Stats install() throws IOException;
    }

    /** Deletes a written file that is not to be put in place. */
    interface Discard {
        void discard() throws IOException;
    }

    private record Entry(long begun, String path, Install install, Discard discard, CompletableFuture<Delta.Stats> done) {
    }

    private final Sync sync;
    private final LinkedBlockingQueue<Entry> queue = new LinkedBlockingQueue<>();
    /** Flushes ended so far. */
    private final AtomicLong ended = new AtomicLong();
    /** Files begun before this many flushes had ended are failed (a flush that ended since failed). */
    private volatile long failedBefore;

    GroupFlush(Sync sync, String name) {
        this.sync = sync;
        Thread t = new Thread(this::run, "syncline-file-syncfs-" + THREADS.incrementAndGet() + " (" + name + ")");
        t.setDaemon(true); // like the flush threads: a receiver always waits for what it handed over
        t.start();
    }

    /**
     * File system types (as {@link java.nio.file.FileStore#type} names them) on which a syncfs makes what was written
     * durable and reports failures: local ones. Elsewhere (network and FUSE file systems, 9p, ...) syncfs may return
     * without the data being anywhere safe, and each file is flushed on its own.
     */
    static final Set<String> FILE_SYSTEMS = Set.of("ext4", "xfs", "btrfs");
    /** File systems (mount entries) a group flush could not be had for: said once each. */
    private static final Set<java.nio.file.FileStore> REFUSED = ConcurrentHashMap.newKeySet();

    /**
     * The group flush of {@code folder}'s file system {@code store} (one per mount entry), or null where each file is to
     * be flushed on its own: no syncfs here, a file system not in {@link #FILE_SYSTEMS}, or syncfs could not be opened
     * (logged once).
     */
    static GroupFlush forFolder(Path folder, java.nio.file.FileStore store) {
        if (SyncFs.unavailable() != null) {
            if (TOLD.compareAndSet(false, true)) {
                LOG.info("received files are flushed to disk one by one, not in groups: no syncfs here ({})", SyncFs.unavailable());
            }
            return null;
        }
        if (!FILE_SYSTEMS.contains(store.type()) || REFUSED.contains(store)) {
            if (REFUSED.add(store)) {
                LOG.info("received files in {} are flushed to disk one by one: its file system is {} (groups only on {})",
                        folder, store.type(), FILE_SYSTEMS);
            }
            return null;
        }
        GroupFlush g = BY_FILE_SYSTEM.get(store);
        if (g == null) {
            synchronized (BY_FILE_SYSTEM) {
                g = BY_FILE_SYSTEM.get(store);
                if (g == null) {
                    try {
                        SyncFs fs = SyncFs.open(folder).orElseThrow();
                        g = new GroupFlush(fs::sync, String.valueOf(store));
                        BY_FILE_SYSTEM.put(store, g);
                    } catch (IOException | RuntimeException e) {
                        if (REFUSED.add(store)) {
                            LOG.warn("received files in {} are flushed to disk one by one: {}", folder, e.toString());
                        }
                        return null;
                    }
                }
            }
        }
        return g;
    }

    /** Call before writing a file that is to be {@link #add added}: what to pass to add. */
    long begin() {
        return ended.get();
    }

    /**
     * Hands over a file written (and closed) since {@link #begin} gave {@code begun}: {@code done} completes with what
     * {@code install} returns once a flush after now has succeeded, or fails (and {@code discard} is called).
     */
    void add(long begun, String path, Install install, Discard discard, CompletableFuture<Delta.Stats> done) {
        queue.add(new Entry(begun, path, install, discard, done));
    }

    private void run() {
        List<Entry> group = new ArrayList<>();
        while (true) {
            try {
                group.add(queue.take());
            } catch (InterruptedException e) {
                continue; // a daemon thread of the process: it ends with it
            }
            queue.drainTo(group);
            try {
                flush(group);
            } catch (Throwable t) { // (an Error): this thread must go on, or every receiver on the file system waits for good
                failedBefore = ended.incrementAndGet();
                IOException failed = new IOException("the group flush failed: " + t, t);
                for (Entry e : group) {
                    if (!e.done().isDone()) {
                        fail(e, failed);
                    }
                }
            }
            group.clear();
        }
    }

    /** Flushes the file system, then puts each file of {@code group} in place, or fails it. */
    private void flush(List<Entry> group) {
        IOException failed = null;
        try {
            sync.sync();
        } catch (IOException | RuntimeException e) {
            failed = e instanceof IOException io ? io : new IOException(e.toString(), e);
        }
        long now = ended.incrementAndGet();
        if (failed != null) {
            failedBefore = now;
            LOG.error("flushing received files to disk failed; they are not put in place and are received again: {}", failed.toString());
        }
        long failedBefore = this.failedBefore;
        for (Entry e : group) {
            if (failed != null || e.begun() < failedBefore) {
                fail(e, failed);
                continue;
            }
            try {
                e.done().complete(e.install().install());
            } catch (Throwable t) {
                e.done().completeExceptionally(t);
            }
        }
    }

    private static void fail(Entry e, IOException cause) {
        try {
            e.discard().discard();
        } catch (IOException | RuntimeException ignored) {
            // the working folder's sweep takes it later
        }
        IOException failure = new IOException("file '" + e.path() + "' was written but is not known to be on disk"
                + " (a flush of its file system failed since it was begun); it is not put in place", cause);
        e.done().completeExceptionally(failure);
    }
}
