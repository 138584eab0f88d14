package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ChunkerTest {
    record Piece(long offset, int len, long id) {
    }

    static List<Piece> chunks(byte[] data) throws IOException {
        List<Piece> out = new ArrayList<>();
        Chunker.scan(new ByteArrayInputStream(data), Chunker.Sizes.LARGE, (offset, buf, from, len, id) -> out.add(new Piece(offset, len, id)));
        return out;
    }

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void shouldCutWithinTheSizeBoundsAndCoverTheWholeStream() throws Exception {
        byte[] data = random(3 * 1024 * 1024 + 17, 1);
        List<Piece> cs = chunks(data);
        long at = 0;
        for (int i = 0; i < cs.size(); i++) {
            Piece c = cs.get(i);
            assertThat(c.offset()).isEqualTo(at);
            assertThat(c.len()).isLessThanOrEqualTo(Chunker.Sizes.LARGE.max());
            if (i < cs.size() - 1) {
                assertThat(c.len()).isGreaterThanOrEqualTo(Chunker.Sizes.LARGE.min());
            }
            at += c.len();
        }
        assertThat(at).isEqualTo(data.length);
        double avg = data.length / (double) cs.size();
        assertThat(avg).as("average chunk size").isBetween(Chunker.Sizes.LARGE.avg() / 2.0, Chunker.Sizes.LARGE.avg() * 2.0);
    }

    @Test
    void shouldKeepMostChunksWhenBytesAreInsertedNearTheStart() throws Exception {
        byte[] data = random(2 * 1024 * 1024, 2);
        byte[] shifted = new byte[data.length + 7];
        System.arraycopy(data, 0, shifted, 0, 1000);
        System.arraycopy(data, 1000, shifted, 1007, data.length - 1000); // 7 bytes inserted at 1000
        Set<Long> before = new HashSet<>();
        chunks(data).forEach(c -> before.add(c.id()));
        List<Piece> after = chunks(shifted);
        long kept = after.stream().filter(c -> before.contains(c.id())).count();
        assertThat(kept).as("chunks unchanged by an insertion (content-defined cuts)").isGreaterThanOrEqualTo(after.size() - 2);
    }

    @Test
    void shouldCutSmallFilesIntoSmallChunksAndCoverEmptyInput() throws Exception {
        for (Chunker.Sizes sizes : List.of(Chunker.Sizes.SMALL, Chunker.Sizes.MEDIUM)) {
            byte[] data = random(sizes == Chunker.Sizes.SMALL ? 60_000 : 3_000_000, 3);
            List<Piece> cs = new ArrayList<>();
            long n = Chunker.scan(new ByteArrayInputStream(data), sizes, (o, b, f, l, id) -> cs.add(new Piece(o, l, id)));
            assertThat(n).isEqualTo(data.length);
            double avg = data.length / (double) cs.size();
            assertThat(avg).as("average chunk size for %s", sizes).isBetween(sizes.avg() / 2.0, sizes.avg() * 2.0);
        }
        assertThat(Chunker.Sizes.forFile(10_000)).isEqualTo(Chunker.Sizes.SMALL);
        assertThat(Chunker.Sizes.forFile(1 << 20)).isEqualTo(Chunker.Sizes.MEDIUM);
        assertThat(Chunker.Sizes.forFile(1L << 30)).isEqualTo(Chunker.Sizes.LARGE);
        assertThat(chunks(new byte[0])).isEmpty();
    }

    @Test
    void shouldGiveDifferentIdsToChunksThatDifferInOneByte() {
        byte[] a = random(5000, 4);
        long base = Chunker.id(a, 0, a.length);
        for (int i = 0; i < a.length; i += 37) {
            byte[] b = a.clone();
            b[i] ^= 1;
            assertThat(Chunker.id(b, 0, b.length)).as("byte %d flipped", i).isNotEqualTo(base);
        }
        assertThat(Chunker.id(a, 0, 4999)).as("one byte shorter").isNotEqualTo(base);
    }

    @Test
    void shouldIdAChunkByItsXxHash64() {
        // Reference values from the xxHash library (python3-xxhash 3.2.0, xxh64 with seed 0): the id is part of the protocol.
        byte[] seq47 = new byte[47];
        for (int i = 0; i < seq47.length; i++) {
            seq47[i] = (byte) i;
        }
        byte[] seq37 = new byte[37];
        byte[] mul100 = new byte[100];
        for (int i = 0; i < mul100.length; i++) {
            mul100[i] = (byte) (i * 7);
            if (i < seq37.length) {
                seq37[i] = (byte) i;
            }
        }
        byte[] inside = new byte[110]; // the id reads from an offset in a larger buffer
        System.arraycopy(mul100, 0, inside, 7, 100);
        assertThat(Chunker.id(new byte[0], 0, 0)).isEqualTo(0xef46db3751d8e999L);
        assertThat(Chunker.id("abc".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, 3)).isEqualTo(0x44bc2cf5ad770999L);
        assertThat(Chunker.id(seq37, 0, 37)).as("a 32-byte stripe, four bytes, one byte").isEqualTo(0xd93fa2dfee5c24c9L);
        assertThat(Chunker.id(seq47, 0, 15)).as("an eight-byte word, four bytes, three bytes").isEqualTo(0xa948f5f0f6abac2dL);
        assertThat(Chunker.id(seq47, 0, 47)).as("a stripe, an eight-byte word, four bytes, three bytes").isEqualTo(0x0d9883a03e7bfbb8L);
        assertThat(Chunker.id(inside, 7, 100)).as("three stripes and four bytes, at an offset").isEqualTo(0x8e2272c08247d5dbL);
    }
}
