package io.syncline.engine.files;

import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/*
 * Content-defined chunking (the FastCDC scheme: a gear rolling hash, normalized chunk sizes), so that a file edited in
 * place or with bytes inserted keeps most of its chunk boundaries, and the receiver can say which chunks it already
 * has. Boundaries depend only on the bytes: both nodes cut the same content the same way. A cut is taken where the top
 * bits of the rolling hash are zero: 16 bits before the average size (harder), 12 after (easier), never before MIN or
 * after MAX bytes. A chunk is known by the first 8 bytes of its SHA-256 (an id); the whole file by its full SHA-256,
 * which the receiver checks before a file is used, so an id that two different chunks share can never go unnoticed.
 *
 * The gear table is part of the protocol (docs/protocol.md): 256 values of SplitMix64 from a fixed seed. Memory: one
 * buffer of 2 * MAX bytes, whatever the size of the file.
 */
public final class Chunker {
    public static final int MIN = 4 * 1024;
    public static final int AVG = 16 * 1024;
    public static final int MAX = 64 * 1024;
    private static final long MASK_HARD = -1L << (64 - 16);
    private static final long MASK_EASY = -1L << (64 - 12);
    private static final long[] GEAR = gear(0x53796e636c696e65L); // "Syncline"

    private Chunker() {
    }

    /** Receives the chunks of a stream in order; {@code buf[from, from + len)} holds the chunk's bytes during the call. */
    @FunctionalInterface
    public interface Sink {
        void chunk(long offset, byte[] buf, int from, int len, long id) throws IOException;
    }

    /** What a whole stream was: its length and SHA-256 (lower-case hex). */
    public record Result(long size, String sha256) {
    }

    /** Reads {@code in} to its end, handing each chunk to {@code sink}. */
    public static Result scan(InputStream in, Sink sink) throws IOException {
        MessageDigest whole = sha256();
        MessageDigest part = sha256();
        byte[] buf = new byte[2 * MAX];
        int start = 0;
        int end = 0;
        long offset = 0;
        boolean eof = false;
        while (true) {
            if (!eof && end - start < MAX) { // keep at least MAX bytes ahead, so every cut sees a whole window
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
            int len = cut(buf, start, end - start);
            whole.update(buf, start, len);
            part.update(buf, start, len);
            sink.chunk(offset, buf, start, len, id(part.digest()));
            offset += len;
            start += len;
        }
        return new Result(offset, HexFormat.of().formatHex(whole.digest()));
    }

    /** The length of the chunk starting at {@code buf[start]}, with {@code n} bytes available (all there are, or at least MAX). */
    static int cut(byte[] buf, int start, int n) {
        if (n <= MIN) {
            return n;
        }
        int end = Math.min(n, MAX);
        int normal = Math.min(end, AVG);
        long h = 0;
        int i = MIN;
        for (; i < normal; i++) {
            h = (h << 1) + GEAR[buf[start + i] & 0xff];
            if ((h & MASK_HARD) == 0) {
                return i + 1;
            }
        }
        for (; i < end; i++) {
            h = (h << 1) + GEAR[buf[start + i] & 0xff];
            if ((h & MASK_EASY) == 0) {
                return i + 1;
            }
        }
        return end;
    }

    /** A chunk's id: the first 8 bytes of its SHA-256, big-endian. */
    static long id(byte[] digest) {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (digest[i] & 0xff);
        }
        return v;
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
