package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The content hash is part of the protocol: pinned to the xxHash library's own XXH3-128 values (python3-xxhash). */
class ContentHashTest {
    @TempDir
    Path tmp;

    @Test
    void shouldGiveTheXxh3Of128BitsThatTheXxHashLibraryGives() throws Exception {
        byte[] pattern = new byte[1280];
        for (int i = 0; i < pattern.length; i++) {
            pattern[i] = (byte) i;
        }
        byte[] as = new byte[100_000];
        Arrays.fill(as, (byte) 'a');
        assertThat(ContentHash.of(new byte[0])).isEqualTo("99aa06d3014798d86001c324468d497f");
        assertThat(ContentHash.of("abc".getBytes(StandardCharsets.US_ASCII))).isEqualTo("06b05ab6733a618578af5f94892f3950");
        assertThat(ContentHash.of(pattern)).isEqualTo("d92ab3a1cb0542a74844b009e164352e");
        assertThat(ContentHash.of(as)).isEqualTo("819d5302938c790308f809ef04c54838");
        // Read from a file in 64 KiB pieces, and fed in pieces of other sizes: the same.
        Path f = tmp.resolve("as.bin");
        Files.write(f, as);
        assertThat(ContentHash.of(f)).isEqualTo("819d5302938c790308f809ef04c54838");
        var h = ContentHash.stream();
        for (int off = 0; off < as.length; off += 7_001) {
            h.putBytes(as, off, Math.min(7_001, as.length - off));
        }
        assertThat(ContentHash.hex(h.get())).isEqualTo("819d5302938c790308f809ef04c54838");
        // A part of a larger array (a walk hashes a file where it read it, in a ring buffer).
        byte[] around = new byte[pattern.length + 300];
        Arrays.fill(around, (byte) 7);
        System.arraycopy(pattern, 0, around, 100, pattern.length);
        assertThat(ContentHash.of(around, 100, pattern.length)).isEqualTo("d92ab3a1cb0542a74844b009e164352e");
    }

    @Test
    void shouldTellAWellFormedHashFromOtherText() {
        assertThat(ContentHash.isWellFormed("06b05ab6733a618578af5f94892f3950")).isTrue();
        assertThat(ContentHash.isWellFormed(ContentHash.UNKNOWN)).isTrue();
        assertThat(ContentHash.isWellFormed("06B05AB6733A618578AF5F94892F3950")).as("upper case").isFalse();
        assertThat(ContentHash.isWellFormed("06b05ab6733a618578af5f94892f395")).as("31 digits").isFalse();
        assertThat(ContentHash.isWellFormed("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")).as("a SHA-256").isFalse();
        assertThat(ContentHash.isWellFormed("06b05ab6733a618578af5f94892f395g")).isFalse();
        assertThat(ContentHash.isWellFormed(null)).isFalse();
    }
}
