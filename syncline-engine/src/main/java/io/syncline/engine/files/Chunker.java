package io.syncline.engine.files;

import java.io.IOException;
import java.io.InputStream;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/*
 * Content-defined chunking (the FastCDC scheme: a gear rolling hash, normalized chunk sizes), so that a file edited in
 * place or with bytes inserted keeps most of its chunk boundaries, and the receiver can say which chunks it already
 * has. Boundaries depend only on the bytes and on the chunk sizes: both nodes cut the same content the same way. A cut
 * is taken where the top bits of the rolling hash are zero (more bits before the average size, fewer after), never
 * before the minimum or after the maximum.
 *
 * Chunk sizes scale with the file (Sizes.forFile): 256 B to 4 KiB (1 KiB on average) for files under 64 KiB, 1 to 16
 * KiB (4 KiB) under 128 MiB, 4 to 64 KiB (16 KiB) from there (rsync's blocks, the square root of the file's size, are
 * 4 KiB at 16 MiB and 16 KiB at 256 MiB). Both sides choose them by the size of the new file, which
 * the sender announces, so a small file changed a little sends a little, and a large one is not described by more
 * ids than it needs. A chunk is known by a 64-bit hash of its bytes (an id: xxHash64; fast, not cryptographic). The whole file
 * is checked by its content hash at the receiver before it is used, so a wrong match can never put a wrong byte in place; the
 * receiver then asks again with no basis at all (see FileFolder).
 *
 * The gear table and the id function are part of the protocol (docs/protocol.md). Memory: one buffer of twice the
 * largest chunk, whatever the size of the file.
 */
public final class Chunker {
    /** The largest chunk of any size class. */
    public static final int MAX = 64 * 1024;
    /**
     * A buffer of {@link #MAX} bytes per thread, for a read or a write of one chunk that keeps nothing of it afterwards
     * (ContentHash.of, Delta's literals and decode; none of them calls another). Allocating and zeroing one per file
     * was about 9 % of the site thread's processor samples while it sent 10,000 small files (bench/files, async-profiler).
     */
    private static final ThreadLocal<byte[]> BUFFER = ThreadLocal.withInitial(() -> new byte[MAX]);
    private static final long[] GEAR = gear(0x53796e636c696e65L); // "Syncline"
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    /** This thread's buffer of {@link #MAX} bytes (see BUFFER): not to be kept, nor used by two callers at once. */
    static byte[] buffer() {
        return BUFFER.get();
    }

    /** Chunk sizes: minimum, average and maximum, and the number of hash bits that must be zero before and after the average. */
    public record Sizes(int min, int avg, int max, int hardBits, int easyBits) {
        public static final Sizes SMALL = new Sizes(256, 1024, 4 * 1024, 12, 8);
        public static final Sizes MEDIUM = new Sizes(1024, 4 * 1024, 16 * 1024, 14, 10);
        public static final Sizes LARGE = new Sizes(4 * 1024, 16 * 1024, 64 * 1024, 16, 12);

        /** The sizes both sides use for a file of {@code size} bytes (the new version's size). */
        public static Sizes forFile(long size) {
            return size < 64 * 1024 ? SMALL : size < 128L * 1024 * 1024 ? MEDIUM : LARGE;
        }
    }

    private Chunker() {
    }

    /** Receives the chunks of a stream in order; {@code buf[from, from + len)} holds the chunk's bytes during the call. */
    @FunctionalInterface
    public interface Sink {
        void chunk(long offset, byte[] buf, int from, int len, long id) throws IOException;
    }

    /** Reads {@code in} to its end, handing each chunk to {@code sink}; returns the number of bytes read. */
    public static long scan(InputStream in, Sizes sizes, Sink sink) throws IOException {
        byte[] buf = new byte[2 * sizes.max()];
        long hard = -1L << (64 - sizes.hardBits());
        long easy = -1L << (64 - sizes.easyBits());
        int start = 0;
        int end = 0;
        long offset = 0;
        boolean eof = false;
        while (true) {
            if (!eof && end - start < sizes.max()) { // keep at least a maximum chunk ahead, so every cut sees a whole window
                System.arraycopy(buf, start, buf, 0, end - start);
                end -= start;
                start = 0;
                int n;
                while (end < buf.length && (n = in.read(buf, end, buf.length - end)) > 0) {
                    end += n;
                }
                eof = end < buf.length;
            }
            if (start == end) {
                break;
            }
            int len = cut(buf, start, end - start, sizes, hard, easy);
            sink.chunk(offset, buf, start, len, id(buf, start, len));
            offset += len;
            start += len;
        }
        return offset;
    }

    /** The length of the chunk starting at {@code buf[start]}, with {@code n} bytes available (all there are, or at least max). */
    static int cut(byte[] buf, int start, int n, Sizes sizes, long hard, long easy) {
        if (n <= sizes.min()) {
            return n;
        }
        int end = Math.min(n, sizes.max());
        int normal = Math.min(end, sizes.avg());
        long h = 0;
        int i = sizes.min();
        for (; i < normal; i++) {
            h = (h << 1) + GEAR[buf[start + i] & 0xff];
            if ((h & hard) == 0) {
                return i + 1;
            }
        }
        for (; i < end; i++) {
            h = (h << 1) + GEAR[buf[start + i] & 0xff];
            if ((h & easy) == 0) {
                return i + 1;
            }
        }
        return end;
    }

    private static final long P1 = 0x9E3779B185EBCA87L;
    private static final long P2 = 0xC2B2AE3D27D4EB4FL;
    private static final long P3 = 0x165667B19E3779F9L;
    private static final long P4 = 0x85EBCA77C2B2AE63L;
    private static final long P5 = 0x27D4EB2F165667C5L;
    private static final VarHandle INTS = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

    /**
     * A chunk's id: xxHash64 (seed 0) of {@code buf[from, from + len)}, a published 64-bit hash (four independent lanes
     * over 32-byte stripes, so the processor runs them side by side: about 30 times faster than SHA-256 here). Not
     * cryptographic: see the class comment for why a collision can never put a wrong byte in place.
     */
    static long id(byte[] buf, int from, int len) {
        int i = 0;
        long h;
        if (len >= 32) {
            long v1 = P1 + P2;
            long v2 = P2;
            long v3 = 0;
            long v4 = -P1;
            for (; i + 32 <= len; i += 32) {
                v1 = round(v1, (long) LONGS.get(buf, from + i));
                v2 = round(v2, (long) LONGS.get(buf, from + i + 8));
                v3 = round(v3, (long) LONGS.get(buf, from + i + 16));
                v4 = round(v4, (long) LONGS.get(buf, from + i + 24));
            }
            h = Long.rotateLeft(v1, 1) + Long.rotateLeft(v2, 7) + Long.rotateLeft(v3, 12) + Long.rotateLeft(v4, 18);
            h = merge(h, v1);
            h = merge(h, v2);
            h = merge(h, v3);
            h = merge(h, v4);
        } else {
            h = P5;
        }
        h += len;
        for (; i + 8 <= len; i += 8) {
            h ^= round(0, (long) LONGS.get(buf, from + i));
            h = Long.rotateLeft(h, 27) * P1 + P4;
        }
        if (i + 4 <= len) {
            h ^= ((int) INTS.get(buf, from + i) & 0xffffffffL) * P1;
            h = Long.rotateLeft(h, 23) * P2 + P3;
            i += 4;
        }
        for (; i < len; i++) {
            h ^= (buf[from + i] & 0xffL) * P5;
            h = Long.rotateLeft(h, 11) * P1;
        }
        h ^= h >>> 33;
        h *= P2;
        h ^= h >>> 29;
        h *= P3;
        h ^= h >>> 32;
        return h;
    }

    private static long round(long acc, long input) {
        return Long.rotateLeft(acc + input * P2, 31) * P1;
    }

    private static long merge(long h, long v) {
        return (h ^ round(0, v)) * P1 + P4;
    }

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JVM has no SHA-256", e);
        }
    }

    private static long[] gear(long seed) {
        long[] g = new long[256];
        long x = seed;
        for (int i = 0; i < g.length; i++) { // SplitMix64
            x += 0x9e3779b97f4a7c15L;
            long z = x;
            z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
            z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
            g[i] = z ^ (z >>> 31);
        }
        return g;
    }
}
