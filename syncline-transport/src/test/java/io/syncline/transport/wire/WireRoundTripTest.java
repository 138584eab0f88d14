package io.syncline.transport.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.syncline.api.BadBatchException;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Round trip of the batch wire format, and every kind of defect a reader must refuse by name. */
class WireRoundTripTest {
    private static final Instant SEALED = Instant.parse("2024-05-01T10:15:30.123Z");
    private static final Instant FIRST = Instant.parse("2024-05-01T10:15:00Z");
    private static final String PREAMBLE = "{\"format\":\"syncline-batches\",\"version\":1}\n";

    /** One batch as written: header and changes with rows as raw JSON text. */
    private record Sent(BatchHeader header, List<String[]> changes, List<Change> expected) {
    }

    private static List<Sent> threeBatches() {
        List<Sent> out = new ArrayList<>();
        // batch 1: inserts of assorted value kinds, including a nested JSON value, unicode and an explicit null
        List<String[]> c1 = new ArrayList<>();
        List<Change> e1 = new ArrayList<>();
        for (int i = 1; i <= 50; i++) {
            String name = i % 7 == 0 ? "caf\u00e9 \u2603 \"quoted\" " + i : "item-" + i;
            String row = "{\"id\":" + i + ",\"name\":" + json(name) + ",\"price\":" + i + ".50,\"big\":12345678901234567890,"
                    + "\"tags\":{\"a\":[1,2,{\"b\":null}]},\"note\":null}";
            c1.add(new String[] {"I", "product", null, row});
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("id", i);
            m.put("name", name);
            m.put("price", new BigDecimal(i + ".50"));
            m.put("big", new java.math.BigInteger("12345678901234567890"));
            m.put("tags", Map.of("a", Arrays.asList(1, 2, mapWithNull("b"))));
            m.put("note", null);
            e1.add(new Change.Insert("product", m));
        }
        out.add(new Sent(new BatchHeader(new BatchId("site-1", "products", 1), SEALED, FIRST), c1, e1));
        // batch 2: update, delete, reload
        List<String[]> c2 = List.of(
                new String[] {"U", "product", "{\"id\":1,\"name\":\"item-1\"}", "{\"id\":1,\"name\":\"renamed\"}"},
                new String[] {"D", "product", "{\"id\":2}", null},
                new String[] {"R", "category", null, "{\"code\":\"x\",\"ratio\":0.000001}"});
        List<Change> e2 = List.of(
                new Change.Update("product", Map.of("id", 1, "name", "item-1"), Map.of("id", 1, "name", "renamed")),
                new Change.Delete("product", Map.of("id", 2)),
                new Change.Reload("category", Map.of("code", "x", "ratio", new BigDecimal("0.000001"))));
        out.add(new Sent(new BatchHeader(new BatchId("site-1", "products", 2), SEALED.plusSeconds(1), FIRST), c2, e2));
        // batch 3: empty batch on another channel, without firstCaptured
        out.add(new Sent(new BatchHeader(new BatchId("site-1", "orders", 7), SEALED.plusSeconds(2), null), List.of(), List.of()));
        return out;
    }

    private static Map<String, Object> mapWithNull(String key) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(key, null);
        return m;
    }

    private static String json(String s) {
        try {
            return WireFormat.MAPPER.writeValueAsString(s);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static byte[] write(List<Sent> batches) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (WireWriter w = new WireWriter(bytes)) {
            for (Sent b : batches) {
                w.beginBatch(b.header());
                for (String[] c : b.changes()) {
                    w.change(c[0], c[1], c[2], c[3]);
                }
                w.endBatch();
            }
        }
        return bytes.toByteArray();
    }

    /** A batch read completely: its header and changes, end marker verified. */
    private record Read(BatchHeader header, List<Change> changes) {
    }

    /** Reads every batch; completed batches are added to {@code out} as each one's end marker is verified. */
    private static void readAll(byte[] stream, List<Read> out) throws IOException {
        try (WireReader r = new WireReader(new ByteArrayInputStream(stream))) {
            BatchHeader h;
            while ((h = r.nextBatch()) != null) {
                List<Change> changes = new ArrayList<>();
                Iterator<Change> it = r.changes();
                while (it.hasNext()) {
                    changes.add(it.next());
                }
                out.add(new Read(h, changes));
            }
        }
    }

    private static byte[] gzip(String text) throws IOException {
        return gzip(text.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] gzip(byte[] raw) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(bytes)) {
            gz.write(raw);
        }
        return bytes.toByteArray();
    }

    private static BadBatchException badRead(byte[] stream) {
        try {
            readAll(stream, new ArrayList<>());
        } catch (BadBatchException e) {
            return e;
        } catch (IOException | RuntimeException e) {
            throw new AssertionError("expected BadBatchException, got " + e, e);
        }
        throw new AssertionError("expected BadBatchException, but the stream was read without error");
    }

    private static String header(long seq) {
        return "{\"batch\":{\"source\":\"site-1\",\"channel\":\"products\",\"seq\":" + seq + ",\"sealedAt\":\"" + SEALED + "\"}}\n";
    }

    private static String end(long seq, long count) {
        return "{\"end\":{\"seq\":" + seq + ",\"changes\":" + count + "}}\n";
    }

    private static final String DONE = "{\"done\":true,\"at\":\"" + SEALED + "\"}\n";
    private static final String INSERT = "{\"op\":\"I\",\"t\":\"product\",\"n\":{\"id\":1}}\n";

    // ---- round trip ------------------------------------------------------------------------------

    @Test
    void shouldReadBackEveryBatchAndChangeExactlyAsWritten() throws IOException {
        List<Sent> sent = threeBatches();
        List<Read> read = new ArrayList<>();
        readAll(write(sent), read);
        assertThat(read).hasSize(3);
        for (int i = 0; i < sent.size(); i++) {
            assertThat(read.get(i).header()).as("header of batch %d", i).isEqualTo(sent.get(i).header());
            assertThat(read.get(i).changes()).as("changes of batch %d", i).containsExactlyElementsOf(sent.get(i).expected());
        }
    }

    @Test
    void shouldDeliverEverythingWrittenBeforeAFlushToTheReader() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        WireWriter w = new WireWriter(bytes);
        BatchHeader header = new BatchHeader(new BatchId("site-1", "products", 1), SEALED, FIRST);
        w.beginBatch(header);
        w.change("I", "product", null, "{\"id\":1}");
        w.flush();
        // Only what the flush pushed through the compressor: the stream goes on later, the reader must not wait for it.
        try (WireReader r = new WireReader(new ByteArrayInputStream(bytes.toByteArray()))) {
            assertThat(r.nextBatch()).isEqualTo(header);
            Iterator<Change> changes = r.changes();
            assertThat(changes.next()).isEqualTo(new Change.Insert("product", Map.of("id", 1)));
            assertThatThrownBy(changes::hasNext).isInstanceOf(BadBatchException.class).hasMessageContaining("truncated");
        }
    }

    @Test
    void shouldMarkAReloadAndOnlyThatBatch() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        BatchHeader reload = new BatchHeader(new BatchId("hq", "catalog", 0), SEALED, null);
        BatchHeader next = new BatchHeader(new BatchId("hq", "catalog", 1), SEALED, FIRST);
        try (WireWriter w = new WireWriter(bytes)) {
            w.beginBatch(reload, true);
            w.change("R", "product", null, "{\"id\":1}");
            w.endBatch();
            w.beginBatch(next);
            w.endBatch();
        }
        try (WireReader r = new WireReader(new ByteArrayInputStream(bytes.toByteArray()))) {
            assertThat(r.nextBatch()).isEqualTo(reload);
            assertThat(r.isReload()).isTrue();
            r.changes().forEachRemaining(c -> assertThat(c).isEqualTo(new Change.Reload("product", Map.of("id", 1))));
            assertThat(r.nextBatch()).isEqualTo(next);
            assertThat(r.isReload()).isFalse();
            assertThat(r.changes().hasNext()).isFalse();
            assertThat(r.nextBatch()).isNull();
        }
    }

    @Test
    void shouldReadAStreamWithoutBatches() throws IOException {
        List<Read> read = new ArrayList<>();
        readAll(write(List.of()), read);
        assertThat(read).isEmpty();
    }

    @Test
    void shouldRefuseToReadNextBatchBeforeTheCurrentOneIsFinished() throws IOException {
        try (WireReader r = new WireReader(new ByteArrayInputStream(write(threeBatches())))) {
            r.nextBatch();
            assertThatThrownBy(r::nextBatch).isInstanceOf(IllegalStateException.class).hasMessageContaining("not fully read");
        }
    }

    // ---- defects ---------------------------------------------------------------------------------

    @Test
    void shouldRefuseAStreamThatIsNotGzip() {
        BadBatchException e = badRead((PREAMBLE + header(1) + INSERT + end(1, 1) + DONE).getBytes(StandardCharsets.UTF_8));
        assertThat(e).hasMessageContaining("not gzip");
    }

    @Test
    void shouldRefuseAnEmptyBody() {
        assertThat(badRead(new byte[0]).getMessage()).containsAnyOf("truncated", "empty");
    }

    @ParameterizedTest
    @ValueSource(strings = {"hello, this is not JSON at all", "<html><body>502 Bad Gateway</body></html>", "{\"format\": syncline"})
    void shouldRefuseGzipOfSomethingThatIsNotJson(String text) throws IOException {
        assertThat(badRead(gzip(text))).hasMessageContaining("malformed batch stream");
    }

    @Test
    void shouldRefuseGzipOfJsonThatIsNotAnObject() throws IOException {
        assertThat(badRead(gzip("[1, 2, 3]"))).hasMessageContaining("malformed batch stream").hasMessageContaining("preamble");
    }

    @Test
    void shouldRefuseGzipOfNothing() throws IOException {
        assertThat(badRead(gzip(""))).hasMessageContaining("empty batch stream");
    }

    @Test
    void shouldRefuseAWrongFormatName() throws IOException {
        assertThat(badRead(gzip("{\"format\":\"other-batches\",\"version\":1}\n" + DONE)))
                .hasMessageContaining("not a Syncline batch stream").hasMessageContaining("other-batches");
        assertThat(badRead(gzip("{\"version\":1}\n" + DONE))).hasMessageContaining("not a Syncline batch stream");
    }

    @ParameterizedTest
    @ValueSource(strings = {"2", "0", "-1", "\"1\"", "null", "1.5", "99999999999"})
    void shouldRefuseAnUnsupportedVersion(String version) throws IOException {
        assertThat(badRead(gzip("{\"format\":\"syncline-batches\",\"version\":" + version + "}\n" + DONE)))
                .hasMessageContaining("unsupported wire format version").hasMessageContaining(version.replace("\"", ""));
    }

    @Test
    void shouldRefuseABatchWhoseEndMarkerIsMissingBeforeTheNextBatch() throws IOException {
        BadBatchException e = badRead(gzip(PREAMBLE + header(1) + INSERT + header(2) + INSERT + end(2, 1) + DONE));
        assertThat(e).hasMessageContaining("site-1/products#1").hasMessageContaining("end marker");
    }

    @Test
    void shouldRefuseABatchWhoseEndMarkerIsMissingBeforeTheFinalMarker() throws IOException {
        BadBatchException e = badRead(gzip(PREAMBLE + header(1) + INSERT + DONE));
        assertThat(e).hasMessageContaining("site-1/products#1").hasMessageContaining("end marker");
    }

    @Test
    void shouldRefuseAStreamThatEndsWithoutEndMarker() throws IOException {
        BadBatchException e = badRead(gzip(PREAMBLE + header(1) + INSERT));
        assertThat(e).hasMessageContaining("truncated");
    }

    @Test
    void shouldRefuseAStreamThatEndsWithoutTheFinalMarker() throws IOException {
        BadBatchException e = badRead(gzip(PREAMBLE + header(1) + INSERT + end(1, 1)));
        assertThat(e).hasMessageContaining("truncated");
    }

    @Test
    void shouldShowAStreamAbortedPartWayThroughABatchAsCutAndNotAsAnEarlyEnd() throws IOException {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        try (WireWriter w = new WireWriter(out)) {
            w.beginBatch(new BatchHeader(new BatchId("site-1", "products", 1), SEALED, FIRST));
            w.change("I", "product", null, "{\"id\":1}");
            w.flush();
            w.abort(); // as a sender does when reading the batch's next rows failed
        }
        BadBatchException e = badRead(out.toByteArray());
        assertThat(e).hasMessageContaining("truncated").hasMessageNotContaining("final marker");
    }

    @Test
    void shouldRefuseEveryTruncationOfARealStreamOrReadOnlyCompleteBatches() throws IOException {
        List<Sent> sent = threeBatches();
        byte[] full = write(sent);
        for (int cut = 0; cut < full.length; cut++) {
            byte[] part = Arrays.copyOf(full, cut);
            List<Read> read = new ArrayList<>();
            try {
                readAll(part, read);
                fail("a stream cut at byte " + cut + " of " + full.length + " was read as complete (" + read.size() + " batches)");
            } catch (BadBatchException e) {
                assertThat(e.getMessage()).as("message for a cut at %d", cut).containsAnyOf("truncated", "corrupt");
            } catch (RuntimeException e) {
                fail("a stream cut at byte " + cut + " of " + full.length + " gave " + e + " instead of a BadBatchException", e);
            }
            // every batch that completed (end marker verified) must be complete and equal to what was sent
            assertThat(read.size()).isLessThanOrEqualTo(sent.size());
            for (int i = 0; i < read.size(); i++) {
                assertThat(read.get(i).header()).isEqualTo(sent.get(i).header());
                assertThat(read.get(i).changes()).as("batch %d of a stream cut at %d", i, cut)
                        .containsExactlyElementsOf(sent.get(i).expected());
            }
        }
    }

    @Test
    void shouldRefuseTrailingDataAfterTheFinalMarker() throws IOException {
        assertThat(badRead(gzip(PREAMBLE + DONE + "{\"batch\":{}}\n"))).hasMessageContaining("after the final marker");
    }

    @Test
    void shouldRefuseAStreamCutInsideTheGzipDataAtManyPoints() throws IOException {
        // a larger stream (several deflate blocks), cut at many points: a changes iterator must never end without the marker
        List<Sent> sent = new ArrayList<>();
        List<Change> all = new ArrayList<>();
        for (int b = 1; b <= 5; b++) {
            List<String[]> cs = new ArrayList<>();
            List<Change> es = new ArrayList<>();
            for (int i = 0; i < 2000; i++) {
                int id = b * 10_000 + i;
                cs.add(new String[] {"I", "t", null, "{\"id\":" + id + ",\"v\":\"" + Integer.toHexString(id * 7919) + "\"}"});
                es.add(new Change.Insert("t", Map.of("id", id, "v", Integer.toHexString(id * 7919))));
            }
            sent.add(new Sent(new BatchHeader(new BatchId("s", "c", b), SEALED, FIRST), cs, es));
            all.addAll(es);
        }
        byte[] full = write(sent);
        for (int cut = 0; cut < full.length - 8; cut += Math.max(1, full.length / 400)) {
            byte[] part = Arrays.copyOf(full, cut);
            List<Change> seen = new ArrayList<>();
            int completed = 0;
            try (WireReader r = new WireReader(new ByteArrayInputStream(part))) {
                while (r.nextBatch() != null) {
                    Iterator<Change> it = r.changes();
                    while (it.hasNext()) {
                        seen.add(it.next());
                    }
                    completed++;
                }
                fail("a stream cut at " + cut + " of " + full.length + " bytes was read to its end");
            } catch (BadBatchException e) {
                assertThat(e.getMessage()).containsAnyOf("truncated", "corrupt");
            } catch (RuntimeException e) {
                fail("a stream cut at byte " + cut + " gave " + e + " instead of a BadBatchException", e);
            }
            assertThat(seen).as("changes seen in a stream cut at %d", cut).isEqualTo(all.subList(0, seen.size()));
            assertThat(seen.size()).as("changes of completed batches, cut at %d", cut).isGreaterThanOrEqualTo(completed * 2000);
        }
    }

    @Test
    void shouldRefuseAnEndMarkerWhoseCountDoesNotMatch() throws IOException {
        assertThat(badRead(gzip(PREAMBLE + header(1) + INSERT + INSERT + end(1, 3) + DONE)))
                .hasMessageContaining("site-1/products#1").hasMessageContaining("end marker says 3 changes but 2 were sent");
        assertThat(badRead(gzip(PREAMBLE + header(1) + INSERT + INSERT + end(1, 1) + DONE)))
                .hasMessageContaining("end marker says 1 changes but 2 were sent");
        assertThat(badRead(gzip(PREAMBLE + header(1) + INSERT + "{\"end\":{\"seq\":1}}\n" + DONE)))
                .hasMessageContaining("end marker says null changes");
    }

    @Test
    void shouldRefuseAnEndMarkerThatNamesAnotherBatch() throws IOException {
        assertThat(badRead(gzip(PREAMBLE + header(1) + INSERT + end(2, 1) + DONE)))
                .hasMessageContaining("site-1/products#1").hasMessageContaining("end marker names batch 2");
    }

    @ParameterizedTest
    @ValueSource(strings = {"{\"t\":\"product\",\"n\":{\"id\":1}}", "{\"op\":\"I\",\"n\":{\"id\":1}}", "{\"op\":1,\"t\":\"product\",\"n\":{}}",
            "{\"op\":\"I\",\"t\":null,\"n\":{}}", "{}"})
    void shouldRefuseAChangeWithoutOpOrTable(String change) throws IOException {
        assertThat(badRead(gzip(PREAMBLE + header(1) + change + "\n" + end(1, 1) + DONE)))
                .hasMessageContaining("site-1/products#1").hasMessageContaining("lacks 'op' or 't'");
    }

    @ParameterizedTest
    @ValueSource(strings = {"X", "i", "II", ""})
    void shouldRefuseAnUnknownOpCode(String op) throws IOException {
        assertThat(badRead(gzip(PREAMBLE + header(1) + "{\"op\":\"" + op + "\",\"t\":\"product\",\"n\":{\"id\":1}}\n" + end(1, 1) + DONE)))
                .hasMessageContaining("site-1/products#1").hasMessageContaining("unknown change operation code '" + op + "'");
    }

    @ParameterizedTest
    @ValueSource(strings = {"{\"op\":\"I\",\"t\":\"p\",\"n\":[1,2]}", "{\"op\":\"I\",\"t\":\"p\",\"n\":\"row\"}",
            "{\"op\":\"U\",\"t\":\"p\",\"o\":5,\"n\":{\"id\":1}}", "{\"op\":\"D\",\"t\":\"p\",\"o\":true}"})
    void shouldRefuseARowThatIsNotAnObject(String change) throws IOException {
        assertThat(badRead(gzip(PREAMBLE + header(1) + change + "\n" + end(1, 1) + DONE)))
                .hasMessageContaining("site-1/products#1").hasMessageContaining("row that is not a JSON object");
    }

    @ParameterizedTest
    @ValueSource(strings = {"{\"op\":\"I\",\"t\":\"p\"}", "{\"op\":\"U\",\"t\":\"p\",\"n\":{\"id\":1}}", "{\"op\":\"D\",\"t\":\"p\",\"n\":{\"id\":1}}",
            "{\"op\":\"R\",\"t\":\"p\",\"n\":null}"})
    void shouldRefuseAChangeThatLacksTheRowItsOpNeeds(String change) throws IOException {
        assertThat(badRead(gzip(PREAMBLE + header(1) + change + "\n" + end(1, 1) + DONE)))
                .hasMessageContaining("site-1/products#1").hasMessageContaining("lacks row");
    }

    @ParameterizedTest
    @ValueSource(strings = {"{\"batch\":{\"source\":\"site-1\",\"channel\":\"products\",\"sealedAt\":\"2024-05-01T10:15:30Z\"}}",
            "{\"batch\":{\"source\":\"site-1\",\"channel\":\"products\",\"seq\":0,\"sealedAt\":\"2024-05-01T10:15:30Z\"}}",
            "{\"batch\":{\"source\":\"site-1\",\"channel\":\"products\",\"seq\":-1,\"sealedAt\":\"2024-05-01T10:15:30Z\",\"reload\":true}}",
            "{\"batch\":{\"source\":\"site-1\",\"channel\":\"products\",\"seq\":3,\"sealedAt\":\"2024-05-01T10:15:30Z\",\"reload\":\"yes\"}}",
            "{\"batch\":{\"source\":\"bad name!\",\"channel\":\"products\",\"seq\":1,\"sealedAt\":\"2024-05-01T10:15:30Z\"}}",
            "{\"batch\":{\"source\":\"site-1\",\"channel\":\"products\",\"seq\":1,\"sealedAt\":\"yesterday\"}}",
            "{\"batch\":{\"source\":\"site-1\",\"seq\":1,\"sealedAt\":\"2024-05-01T10:15:30Z\"}}",
            "{\"batch\":\"site-1\"}", "{\"end\":{\"seq\":1,\"changes\":0}}"})
    void shouldRefuseABadBatchHeader(String headerLine) throws IOException {
        assertThat(badRead(gzip(PREAMBLE + headerLine + "\n" + end(1, 0) + DONE)).getMessage())
                .containsAnyOf("bad batch header", "batch header lacks", "expected a batch header");
    }

    @Test
    void shouldRefuseGarbageAfterAValidPreamble() throws IOException {
        assertThat(badRead(gzip(PREAMBLE + header(1) + "{\"op\":\"I\",\"t\":\"product\",\"n\":{\"id\":1}\n" + end(1, 1) + DONE)))
                .hasMessageContaining("malformed batch stream");
        assertThat(badRead(gzip(PREAMBLE + header(1) + "42\n" + end(1, 1) + DONE)))
                .hasMessageContaining("expected an object");
    }

    @Test
    void shouldRefuseCorruptCompressedData() throws IOException {
        byte[] full = write(threeBatches());
        List<Read> original = new ArrayList<>();
        readAll(full, original);
        for (int at = 12; at < full.length - 8; at += 7) {
            byte[] corrupt = full.clone();
            corrupt[at] ^= (byte) 0x5A;
            try {
                List<Read> read = new ArrayList<>();
                readAll(corrupt, read);
                // Deflate ignores some bits (padding after a block's end, code lengths of symbols never used): a flip
                // there decodes to the very same bytes, which the CRC then rightly accepts. Anything else must fail.
                assertThat(read).as("a stream with byte %d flipped was read without error", at).isEqualTo(original);
            } catch (BadBatchException expected) {
                // gzip CRC, a deflate error or the JSON it decodes to: all must be refused as a bad batch
            } catch (RuntimeException e) {
                fail("a stream with byte " + at + " flipped gave " + e + " instead of a BadBatchException", e);
            }
        }
    }
}
