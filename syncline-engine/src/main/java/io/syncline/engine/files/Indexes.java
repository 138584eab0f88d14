package io.syncline.engine.files;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/*
 * The chunks of large files a receiver has, worked out ahead on a thread of their own (syncline-file-index): the index
 * of each large file once it is in place, so that the next change of that file finds its basis ready instead of
 * reading the whole file while the sender waits (about a second a GiB). An index is used only while the file has the
 * length, modification time, identity (inode) and path it had when it was read; a stale one could only cost a resend
 * (the receiver checks the content hash of every file it builds). Bounded: at most MAX_CHUNKS chunks in all (about 40
 * bytes each), the least recently used dropped first; at most a few files wait, others are skipped. Who asks for an
 * index while it is being worked out waits for it (at most WAIT_SECONDS) rather than reading the file a second time
 * beside the thread that reads it: with two processors, the two would share them, and neither be done sooner.
 *
 * (Until 2026-11-30 a sender also listed a changed large file's chunks here while its walk hashed the file with
 * SHA-256, about as slow as cutting. With XXH3-128 the list became the longer of the two, and cutting while sending
 * streams the delta at once, so the receiver builds and flushes the file meanwhile: a GiB changed in 1,000 places went
 * from 3.5 to 4.2 s to 2.5 to 3.5 s.)
 */
final class Indexes {
    /** Files at least this large are indexed ahead. */
    static final long MIN_SIZE = 64L << 20;
    /** Chunks kept in all: about an eighth of the heap at most (an index takes up to 80 bytes a chunk while it grows). */
    private static final long MAX_CHUNKS = Math.min(1 << 21, Runtime.getRuntime().maxMemory() / 640);

    /**
     * The file, as it was when read: its inode (or its path where the file system has none), its path (an index names
     * where its chunks are), length and time, and the chunk sizes.
     */
    private record Key(Object file, Path path, long size, FileTime mtime, Chunker.Sizes sizes) {
    }

    /** How long a caller waits for an index being worked out before it reads the file itself. */
    static final long WAIT_SECONDS = 30;

    private static final Map<Key, ChunkIndex> CACHE = new LinkedHashMap<>(16, 0.75f, true);
    /** What is queued or being worked out: completed with the index, or null when none came of it. Guarded by CACHE. */
    private static final Map<Key, CompletableFuture<ChunkIndex>> UNDER_WAY = new HashMap<>();
    private static long chunks;
    private static final ThreadPoolExecutor INDEXER = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(4), r -> {
        Thread t = new Thread(r, "syncline-file-index");
        t.setDaemon(true);
        return t;
    }, new ThreadPoolExecutor.AbortPolicy());

    private Indexes() {
    }

    /**
     * The index of {@code file} cut with {@code sizes}, if one was (or is being) worked out for the file as it is now;
     * else null.
     */
    static ChunkIndex get(Path file, Chunker.Sizes sizes) {
        Key k = key(file, sizes);
        if (k == null) {
            return null;
        }
        CompletableFuture<ChunkIndex> f;
        synchronized (CACHE) {
            ChunkIndex v = CACHE.get(k);
            if (v != null) {
                return v;
            }
            f = UNDER_WAY.get(k);
        }
        if (f == null) {
            return null;
        }
        try {
            return f.get(WAIT_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        } catch (ExecutionException | TimeoutException e) {
            return null;
        }
    }

    /**
     * Has {@code file}'s index worked out in the background (a receiver, the file just in place), unless the file is
     * small, has more chunks than may be kept, or has one already; it is kept only if the file did not change while it
     * was read. A file that is gone or unreadable is skipped: the receiver reads it as usual.
     */
    static void prepare(Path file, long size) {
        Chunker.Sizes sizes = Chunker.Sizes.forFile(size);
        if (size < MIN_SIZE || size / sizes.avg() > MAX_CHUNKS) {
            return;
        }
        Key before = key(file, sizes);
        if (before == null) {
            return;
        }
        CompletableFuture<ChunkIndex> result = new CompletableFuture<>();
        synchronized (CACHE) {
            if (CACHE.containsKey(before) || UNDER_WAY.containsKey(before)) {
                return;
            }
            UNDER_WAY.put(before, result);
        }
        try {
            INDEXER.execute(() -> {
                ChunkIndex done = null;
                try {
                    ChunkIndex worked = ChunkIndex.of(List.of(file), sizes);
                    if (before.equals(key(file, sizes))) { // else the file changed while it was read
                        put(before, worked);
                        done = worked;
                    }
                } catch (IOException | RuntimeException e) {
                    // gone or unreadable: whoever needs it reads the file as usual
                } finally {
                    settle(before, result, done);
                }
            });
        } catch (RejectedExecutionException e) { // a few files wait already: skipped
            settle(before, result, null);
        }
    }

    private static void settle(Key k, CompletableFuture<ChunkIndex> result, ChunkIndex done) {
        synchronized (CACHE) {
            UNDER_WAY.remove(k);
        }
        result.complete(done);
    }

    private static void put(Key k, ChunkIndex value) {
        synchronized (CACHE) {
            ChunkIndex old = CACHE.put(k, value);
            chunks += value.size() - (old == null ? 0 : old.size());
            for (Iterator<ChunkIndex> it = CACHE.values().iterator(); chunks > MAX_CHUNKS && it.hasNext(); ) {
                chunks -= it.next().size();
                it.remove();
            }
        }
    }

    /** Forgets every index (tests). */
    static void clear() {
        synchronized (CACHE) {
            CACHE.clear();
            chunks = 0;
        }
    }

    private static Key key(Path file, Chunker.Sizes sizes) {
        try {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            Path path = file.toAbsolutePath().normalize();
            Object id = a.fileKey() != null ? a.fileKey() : path;
            return a.isRegularFile() ? new Key(id, path, a.size(), a.lastModifiedTime(), sizes) : null;
        } catch (IOException e) {
            return null;
        }
    }
}
