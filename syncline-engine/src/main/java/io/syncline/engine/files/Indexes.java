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
 * The chunk indexes of large files a node received, worked out on a thread of their own (syncline-file-index) once
 * each file is in place, so that the next change of such a file finds its basis ready instead of reading the whole
 * file while the sender waits (about a second a GiB). An index is used only while the file has the length,
 * modification time and identity (inode) it had when it was read; a stale one could only cost a resend (the receiver
 * checks the SHA-256 of every file it builds). Bounded: at most MAX_CHUNKS chunks in all (about 40 bytes each), the
 * least recently used dropped first; at most a few files wait to be indexed, others are skipped.
 */
final class Indexes {
    /** Files at least this large are indexed ahead. */
    static final long MIN_SIZE = 64L << 20;
    private static final int MAX_CHUNKS = 1 << 21;

    private record Key(Path file, Object inode, long size, FileTime mtime, Chunker.Sizes sizes) {
    }

    private static final Map<Key, ChunkIndex> CACHE = new LinkedHashMap<>(16, 0.75f, true);
    private static int chunks;
    private static final ThreadPoolExecutor INDEXER = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(4), r -> {
        Thread t = new Thread(r, "syncline-file-index");
        t.setDaemon(true);
        t.setPriority(Thread.MIN_PRIORITY);
        return t;
    }, new ThreadPoolExecutor.DiscardPolicy());

    private Indexes() {
    }

    /** The index of {@code file} cut with {@code sizes}, if one was worked out for the file as it is now; else null. */
    static ChunkIndex get(Path file, Chunker.Sizes sizes) {
        Key k = key(file, sizes);
        if (k == null) {
            return null;
        }
        synchronized (CACHE) {
            return CACHE.get(k);
        }
    }

    /** Has {@code file}'s index worked out in the background, when it is large enough to be worth it. */
    static void prepare(Path file, long size) {
        if (size < MIN_SIZE) {
            return;
        }
        Chunker.Sizes sizes = Chunker.Sizes.forFile(size);
        INDEXER.execute(() -> {
            Key before = key(file, sizes);
            if (before == null || get(file, sizes) != null) {
                return;
            }
            ChunkIndex idx;
            try {
                idx = ChunkIndex.of(List.of(file), sizes);
            } catch (IOException e) {
                return; // gone or unreadable: the next basis reads the file as usual
            }
            if (before.equals(key(file, sizes))) { // not changed while it was read
                put(before, idx);
            }
        });
    }

    private static void put(Key k, ChunkIndex idx) {
        synchronized (CACHE) {
            ChunkIndex old = CACHE.put(k, idx);
            chunks += idx.size() - (old == null ? 0 : old.size());
            for (Iterator<ChunkIndex> it = CACHE.values().iterator(); chunks > MAX_CHUNKS && it.hasNext(); ) {
                chunks -= it.next().size();
                it.remove();
            }
        }
    }

    private static Key key(Path file, Chunker.Sizes sizes) {
        try {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            return a.isRegularFile() ? new Key(file, a.fileKey(), a.size(), a.lastModifiedTime(), sizes) : null;
        } catch (IOException e) {
            return null;
        }
    }
}
