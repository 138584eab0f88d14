package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DeltaTest {
    @TempDir
    Path dir;

    private static byte[] delta(byte[] content, int length, ChunkIndex have, boolean fromArray) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            Chunker.Sizes sizes = Chunker.Sizes.forFile(length);
            Delta.Stats s = fromArray ? Delta.encode(content, length, sizes, have, out)
                    : Delta.encode(new ByteArrayInputStream(content, 0, length), sizes, have, out);
            assertThat(s.size()).isEqualTo(length);
        }
        return bytes.toByteArray();
    }

    @Test
    void shouldEncodeContentHeldInAnArrayAsItsStreamIsEncodedAndDecodeToIt() throws IOException {
        Random rnd = new Random(5);
        for (int length : new int[] {0, 1, 4096, Chunker.MAX, Chunker.MAX + 1, 3 * Chunker.MAX + 5, FreshContent.MAX_FILE}) {
            byte[] content = new byte[length + 7]; // (only the first length bytes are the file's)
            rnd.nextBytes(content);
            byte[] file = java.util.Arrays.copyOf(content, length);

            byte[] literal = delta(content, length, ChunkIndex.ofIds(new long[0]), true);
            assertThat(literal).as(length + " bytes, no basis").isEqualTo(delta(content, length, ChunkIndex.ofIds(new long[0]), false));
            assertThat(decoded(literal, ChunkIndex.ofIds(new long[0]), length)).as(length + " bytes").isEqualTo(file);

            // A basis: the same file with its first half changed, so that chunks of its second half are copied.
            byte[] older = file.clone();
            for (int i = 0; i < length / 2; i++) {
                older[i] ^= 0x5a;
            }
            Path basisFile = Files.write(dir.resolve("basis-" + length), older);
            ChunkIndex basis = ChunkIndex.of(List.of(basisFile), Chunker.Sizes.forFile(length));
            ChunkIndex have = ChunkIndex.ofIds(basis.ids());
            byte[] withBasis = delta(content, length, have, true);
            assertThat(withBasis).as(length + " bytes, with a basis").isEqualTo(delta(content, length, have, false));
            assertThat(decoded(withBasis, basis, length)).as(length + " bytes, with a basis").isEqualTo(file);
            if (length >= 3 * Chunker.MAX) {
                assertThat(withBasis.length).as("chunks of the second half copied, not sent").isLessThan(length * 3 / 4);
            }
        }
    }

    private static byte[] decoded(byte[] delta, ChunkIndex basis, int length) throws IOException {
        ByteArrayOutputStream file = new ByteArrayOutputStream();
        Delta.Stats s = Delta.decode(new DataInputStream(new ByteArrayInputStream(delta)), basis, file, "f", length);
        assertThat(s.size()).isEqualTo(length);
        return file.toByteArray();
    }
}
