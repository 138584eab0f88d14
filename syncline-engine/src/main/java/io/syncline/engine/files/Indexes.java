package io.syncline.engine.files;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/*
 * The chunks of large files, worked out ahead on a thread of their own (syncline-file-index): at the receiver, the
 * index of each large file once it is in place, so that the next change of that file finds its basis ready instead of
 * reading the whole file while the sender waits (about a second a GiB); at the sender, the list of a changed large
 * file's chunks, worked out while the walk hashes the file (the other processor), so that sending its delta needs no
 * second pass of cutting. Either is used only while the file has the length, modification time and identity (inode)
 * it had when it was read; a stale one could only cost a resend (the receiver checks the content hash of every file it
 * builds). Bounded: at most MAX_CHUNKS chunks in all (about 40 bytes each in an index, 12 in a list), the least
 * recently used dropped first; at most a few files wait, others are skipped.
 */
final class Indexes {
    /** Files at least this large are indexed ahead. */
    static final long MIN_SIZE = 64L << 20;
    /** Chunks kept in all: about an eighth of the heap at most (an index takes up to 80 bytes a chunk while it grows). */
    private static final long MAX_CHUNKS = Math.min(1 << 21, Runtime.getRuntime().maxMemory() / 640);

    /**
     * The file, as it was when read (its inode, or its path where the file system has none; an index also by its
     * path, since it names where its chunks are), and what was worked out.
     */
    private record Key(Object file, Path path, long size, FileTime mtime, Chunker.Sizes sizes, boolean list) {
    }

    /** A file's chunks in order, as Chunker cuts it: for a sender. */
    record ChunkList(long[] ids, int[] lengths) {
    }

    private static final Map<Key, Object> CACHE = new LinkedHashMap<>(16, 0.75f, true);
    private static long chunks;
    private static final ThreadPoolExecutor INDEXER = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(4), r -> {
        Thread t = new Thread(r, "syncline-file-index");
        t.setDaemon(true);
        return t;
    }, new ThreadPoolExecutor.DiscardPolicy());

    private Indexes() {
    }

    /** The index of {@code file} cut with {@code sizes}, if one was worked out for the file as it is now; else null. */
    static ChunkIndex get(Path file, Chunker.Sizes sizes) {
        return (ChunkIndex) cached(key(file, sizes, false));
    }

    /** The list of {@code file}'s chunks cut with {@code sizes}, if one was worked out for the file as it is now; else null. */
    static ChunkList list(Path file, Chunker.Sizes sizes) {
        return (ChunkList) cached(key(file, sizes, true));
    }

    private static Object cached(Key k) {
        if (k == null) {
            return null;
        }
        synchronized (CACHE) {
            return CACHE.get(k);
        }
    }

    /** Has the list of {@code file}'s chunks worked out in the background (a sender, about to hash it), when it is large. */
    static void prepareList(Path file, long size) {
        ahead(file, size, true, sizes -> {
            int[] n = {0};
            long[][] ids = {new long[1024]};
            int[][] lengths = {new int[1024]};
            try (java.io.InputStream in = Files.newInputStream(file, LinkOption.NOFOLLOW_LINKS)) {
                Chunker.scan(in, sizes, (offset, buf, from, len, id) -> {
                    if (n[0] == ids[0].length) {
                        ids[0] = java.util.Arrays.copyOf(ids[0], n[0] * 2);
                        lengths[0] = java.util.Arrays.copyOf(lengths[0], n[0] * 2);
                    }
                    ids[0][n[0]] = id;
                    lengths[0][n[0]++] = len;
                });
            }
            return new ChunkList(java.util.Arrays.copyOf(ids[0], n[0]), java.util.Arrays.copyOf(lengths[0], n[0]));
        });
    }

    /** Has {@code file}'s index worked out in the background (a receiver, the file just in place), when it is large. */
    static void prepare(Path file, long size) {
        ahead(file, size, false, sizes -> ChunkIndex.of(List.of(file), sizes));
    }

    /** What is worked out from a file's bytes, cut with the given sizes. */
    @FunctionalInterface
    private interface Work {
        Object from(Chunker.Sizes sizes) throws IOException;
    }

    /**
     * Works out {@code work} for {@code file} on the background thread, unless the file is small, has more chunks than
     * may be kept, or has it already; keeps it only if the file did not change while it was read. A file that is gone
     * or unreadable is skipped: the sender cuts it, or the receiver reads it, as usual.
     */
    private static void ahead(Path file, long size, boolean list, Work work) {
        Chunker.Sizes sizes = Chunker.Sizes.forFile(size);
        if (size < MIN_SIZE || size / sizes.avg() > MAX_CHUNKS) {
            return;
        }
        INDEXER.execute(() -> {
            Key before = key(file, sizes, list);
            if (before == null || cached(before) != null) {
                return;
            }
            Object done;
            try {
                done = work.from(sizes);
            } catch (IOException | RuntimeException e) {
                return;
            }
            if (before.equals(key(file, sizes, list))) {
                put(before, done);
            }
        });
    }

    private static void put(Key k, Object value) {
        synchronized (CACHE) {
            Object old = CACHE.put(k, value);
            chunks += count(value) - (old == null ? 0 : count(old));
            for (Iterator<Object> it = CACHE.values().iterator(); chunks > MAX_CHUNKS && it.hasNext(); ) {
                chunks -= count(it.next());
                it.remove();
            }
        }
    }

    private static int count(Object v) {
        return v instanceof ChunkIndex idx ? idx.size() : ((ChunkList) v).ids().length;
    }

    /** Forgets every index and list (tests). */
    static void clear() {
        synchronized (CACHE) {
            CACHE.clear();
            chunks = 0;
        }
    }

    private static Key key(Path file, Chunker.Sizes sizes, boolean list) {
        try {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            Path path = file.toAbsolutePath().normalize();
            Object id = a.fileKey() != null ? a.fileKey() : path;
            return a.isRegularFile() ? new Key(id, list ? null : path, a.size(), a.lastModifiedTime(), sizes, list) : null;
        } catch (IOException e) {
            return null;
        }
    }
}
