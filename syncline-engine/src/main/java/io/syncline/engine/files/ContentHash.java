package io.syncline.engine.files;

import com.dynatrace.hash4j.hashing.HashStream128;
import com.dynatrace.hash4j.hashing.HashValue128;
import com.dynatrace.hash4j.hashing.Hashing;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;

/**
 * The name of a file's content: XXH3-128 of its bytes (the 128-bit XXH3 of the xxHash family, with its default seed
 * and secret), as 32 lower-case hex digits, high half first (the xxHash library's canonical form). It is what the
 * receiver checks a built file against and what finds a moved file or content already there; rsync checks whole files
 * with the same function. It is not a cryptographic hash: two contents sharing one are astronomically unlikely by
 * chance (2^-128), but could be made on purpose. Nothing here rests on that being impossible: nodes authenticate, and
 * a node that made such a pair could only muddle the copies of its own files (it can send any content anyway). (Until 2026-11-30 this was SHA-256, which cost about
 * a second per GiB on each side, four times XXH3-128 here.)
 */
public final class ContentHash {
    /** Hex digits of a content hash. */
    public static final int DIGITS = 32;
    /**
     * Stands for a hash not worked out yet: a file recorded before content was named this way. A walk hashes such a
     * file again whatever its length and time.
     */
    public static final String UNKNOWN = "0".repeat(DIGITS);

    private static final HexFormat HEX = HexFormat.of();

    private ContentHash() {
    }

    /** A hash of bytes fed in pieces. */
    static HashStream128 stream() {
        return Hashing.xxh3_128().hashStream();
    }

    /** The hex form of a finished hash. */
    static String hex(HashValue128 v) {
        return HEX.toHexDigits(v.getMostSignificantBits()) + HEX.toHexDigits(v.getLeastSignificantBits());
    }

    /** The hash of {@code bytes}. */
    public static String of(byte[] bytes) {
        return hex(Hashing.xxh3_128().hashBytesTo128Bits(bytes));
    }

    /** The hash of {@code length} bytes of {@code bytes} from {@code offset}. */
    static String of(byte[] bytes, int offset, int length) {
        return hex(Hashing.xxh3_128().hashBytesTo128Bits(bytes, offset, length));
    }

    /** The hash of a file's content, read in a stream. */
    public static String of(Path f) throws IOException {
        HashStream128 h = stream();
        byte[] buf = Chunker.buffer();
        try (InputStream in = Files.newInputStream(f)) {
            int n;
            while ((n = in.read(buf)) > 0) {
                h.putBytes(buf, 0, n);
            }
        }
        return hex(h.get());
    }

    /** True for a well-formed hash: {@link #DIGITS} lower-case hex digits. */
    public static boolean isWellFormed(String s) {
        if (s == null || s.length() != DIGITS) {
            return false;
        }
        for (int i = 0; i < DIGITS; i++) {
            char ch = s.charAt(i);
            if (!(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f')) {
                return false;
            }
        }
        return true;
    }
}
