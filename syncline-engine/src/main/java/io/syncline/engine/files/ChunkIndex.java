package io.syncline.engine.files;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Where the chunks a node already holds are: chunk id to (file, offset, length), for the receiver of a delta; or just
 * the set of ids the receiver has, for the sender. Open addressing over primitive arrays: about 40 bytes a chunk (a
 * 4 GiB file at the average chunk size is 262,144 chunks, about 10 MB), where boxed maps would take several times that.
 * The first place an id was seen wins. Not thread-safe; built, then read.
 */
public final class ChunkIndex {
    private final List<Path> sources = new ArrayList<>();
    // (small to start with: most indexes are of one small file, or empty, one per file sent or received)
    private long[] ids = new long[8];
    private long[] offsets = new long[8];
    private int[] lengths = new int[8];
    private int[] sourceOf = new int[8];
    private int size;
    private int[] table = new int[16]; // entry + 1; 0 is empty

    /** An index of the chunks of {@code files} (those that exist and are regular files), cut with {@code sizes}, read once each. */
    public static ChunkIndex of(List<Path> files, Chunker.Sizes sizes) throws IOException {
        ChunkIndex idx = new ChunkIndex();
        for (Path f : files) {
            if (f != null && Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                int src = idx.sources.size();
                idx.sources.add(f);
                try (InputStream in = Files.newInputStream(f)) {
                    Chunker.scan(in, sizes, (offset, buf, from, len, id) -> idx.add(id, src, offset, len));
                }
            }
        }
        return idx;
    }

    /** An index of bare ids (no places): what the other side said it has. */
    public static ChunkIndex ofIds(long[] have) {
        ChunkIndex idx = new ChunkIndex();
        for (long id : have) {
            idx.add(id, -1, 0, 0);
        }
        return idx;
    }

    void add(long id, int source, long offset, int length) {
        if (find(id) >= 0) {
            return;
        }
        if (size == ids.length) {
            int n = size * 2;
            ids = Arrays.copyOf(ids, n);
            offsets = Arrays.copyOf(offsets, n);
            lengths = Arrays.copyOf(lengths, n);
            sourceOf = Arrays.copyOf(sourceOf, n);
        }
        ids[size] = id;
        offsets[size] = offset;
        lengths[size] = length;
        sourceOf[size] = source;
        size++;
        if (size * 2 > table.length) {
            table = new int[table.length * 2];
            for (int i = 0; i < size; i++) {
                place(i);
            }
        } else {
            place(size - 1);
        }
    }

    private void place(int entry) {
        int mask = table.length - 1;
        int slot = slot(ids[entry], mask);
        while (table[slot] != 0) {
            slot = (slot + 1) & mask;
        }
        table[slot] = entry + 1;
    }

    /** The entry of {@code id}, or -1. */
    public int find(long id) {
        int mask = table.length - 1;
        int slot = slot(id, mask);
        int e;
        while ((e = table[slot]) != 0) {
            if (ids[e - 1] == id) {
                return e - 1;
            }
            slot = (slot + 1) & mask;
        }
        return -1;
    }

    private static int slot(long id, int mask) {
        long h = id * 0x9e3779b97f4a7c15L;
        return (int) (h ^ (h >>> 32)) & mask;
    }

    public int size() {
        return size;
    }

    /** Every id, in the order first seen. */
    public long[] ids() {
        return Arrays.copyOf(ids, size);
    }

    public Path source(int entry) {
        return sources.get(sourceOf[entry]);
    }

    public long offset(int entry) {
        return offsets[entry];
    }

    public int length(int entry) {
        return lengths[entry];
    }
}
