package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ChunkerTest {
    record Piece(long offset, int len, long id) {
    }

    static List<Piece> chunks(byte[] data) throws IOException {
        List<Piece> out = new ArrayList<>();
        Chunker.scan(new ByteArrayInputStream(data), (offset, buf, from, len, id) -> out.add(new Piece(offset, len, id)));
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
            assertThat(c.len()).isLessThanOrEqualTo(Chunker.MAX);
            if (i < cs.size() - 1) {
                assertThat(c.len()).isGreaterThanOrEqualTo(Chunker.MIN);
            }
            at += c.len();
        }
        assertThat(at).isEqualTo(data.length);
        double avg = data.length / (double) cs.size();
        assertThat(avg).as("average chunk size").isBetween(Chunker.AVG / 2.0, Chunker.AVG * 2.0);
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
    void shouldHashTheWholeStreamAndHandleEmptyInput() throws Exception {
        byte[] data = random(100_000, 3);
        Chunker.Result r = Chunker.scan(new ByteArrayInputStream(data), (o, b, f, l, id) -> { });
        assertThat(r.size()).isEqualTo(100_000);
        assertThat(r.sha256()).isEqualTo(HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(data)));
        List<Piece> none = chunks(new byte[0]);
        assertThat(none).isEmpty();
        assertThat(Chunker.scan(new ByteArrayInputStream(new byte[0]), (o, b, f, l, id) -> { }).sha256())
                .isEqualTo("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
