package io.syncline.transport.wire;

import com.fasterxml.jackson.core.JsonGenerator;
import io.syncline.api.BatchHeader;
import java.io.Closeable;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Instant;
import java.util.zip.Deflater;
import java.util.zip.GZIPOutputStream;

/**
 * Writes a batch stream. Each row writes itself into the stream (canonical JSON, see {@link Row}); nothing is
 * held beyond the current change, so the writer's memory does not depend on batch size. Not thread-safe; one
 * writer per HTTP exchange.
 */
public final class WireWriter implements Closeable {
    private final Gzip gzip;

    /**
     * gzip at the fastest level that can release its native memory without closing the HTTP stream under it. Its
     * flush() is a sync flush: everything written so far reaches the reader, which can then decode it whole.
     */
    private static final class Gzip extends GZIPOutputStream {
        Gzip(OutputStream out) throws IOException {
            super(out, 1 << 16, true);
            def.setLevel(Deflater.BEST_SPEED);
        }

        void release() {
            def.end();
        }
    }
    private final JsonGenerator json;
    private long inBatch = -1;
    private long seq;
    private boolean ended;

    public WireWriter(OutputStream out) throws IOException {
        this.gzip = new Gzip(out);
        this.json = WireFormat.MAPPER.getFactory().createGenerator(gzip);
        json.setRootValueSeparator(null);
        json.writeStartObject();
        json.writeStringField("format", WireFormat.NAME);
        json.writeNumberField("version", WireFormat.VERSION);
        json.writeEndObject();
        json.writeRaw('\n');
    }

    /** Starts a batch. */
    public void beginBatch(BatchHeader h) throws IOException {
        beginBatch(h, false);
    }

    /**
     * Starts a batch; with {@code reload}, a reload: the whole content of the channel's tables for this destination, as
     * the source held it when batch {@code h} was its last (docs/protocol.md, "Fetch").
     */
    public void beginBatch(BatchHeader h, boolean reload) throws IOException {
        beginBatch(h, reload, null);
    }

    /**
     * Starts a batch, a reload or not, with the source's token for it ({@code null} for none): the destination echoes the
     * token of the last batch it applied, so a source restored from a backup is recognised (docs/protocol.md, "Fetch").
     */
    public void beginBatch(BatchHeader h, boolean reload, String token) throws IOException {
        if (inBatch >= 0) {
            throw new IllegalStateException("batch " + seq + " not ended");
        }
        json.writeStartObject();
        json.writeObjectFieldStart("batch");
        json.writeStringField("source", h.id().source());
        json.writeStringField("channel", h.id().channel());
        json.writeNumberField("seq", h.id().sequence());
        json.writeStringField("sealedAt", h.sealedAt().toString());
        if (h.firstCaptured() != null) {
            json.writeStringField("firstCaptured", h.firstCaptured().toString());
        }
        if (h.stamp() > 0) {
            json.writeNumberField("stamp", h.stamp());
        }
        if (reload) {
            json.writeBooleanField("reload", true);
        }
        if (token != null) {
            json.writeStringField("token", token);
        }
        json.writeEndObject();
        json.writeEndObject();
        json.writeRaw('\n');
        inBatch = 0;
        seq = h.id().sequence();
    }

    /** A row that writes itself as one JSON object (canonical form, docs/protocol.md) into the wire's generator. */
    @FunctionalInterface
    public interface Row {
        void writeTo(JsonGenerator g) throws IOException;
    }

    /** Writes one change whose rows are canonical JSON objects as text (or null). */
    public void change(String op, String table, String oldRow, String newRow) throws IOException {
        change(op, table, oldRow == null ? null : g -> g.writeRawValue(oldRow), newRow == null ? null : g -> g.writeRawValue(newRow));
    }

    /** Writes one change; each row writes itself straight into the stream (or is null). */
    public void change(String op, String table, Row oldRow, Row newRow) throws IOException {
        if (inBatch < 0) {
            throw new IllegalStateException("change outside a batch");
        }
        json.writeStartObject();
        json.writeStringField("op", op);
        json.writeStringField("t", table);
        if (oldRow != null) {
            json.writeFieldName("o");
            oldRow.writeTo(json);
        }
        if (newRow != null) {
            json.writeFieldName("n");
            newRow.writeTo(json);
        }
        json.writeEndObject();
        json.writeRaw('\n');
        inBatch++;
    }

    /** Ends the current batch with its change count, which the reader verifies. */
    public void endBatch() throws IOException {
        json.writeStartObject();
        json.writeObjectFieldStart("end");
        json.writeNumberField("seq", seq);
        json.writeNumberField("changes", inBatch);
        json.writeEndObject();
        json.writeEndObject();
        json.writeRaw('\n');
        inBatch = -1;
        json.flush();
    }

    /** Flushes what was written so far through the compressor to the stream (for streaming responses). */
    public void flush() throws IOException {
        json.flush();
        gzip.flush();
    }

    /**
     * Ends the stream without its final marker, after a failure part way through a batch: the reader then sees a cut
     * stream ("truncated"), not a batch that ends early followed by a proper end. {@link #close} then does nothing.
     */
    public void abort() {
        if (!ended) {
            ended = true;
            gzip.release();
        }
    }

    /** Writes the final marker and finishes the gzip stream; does not close the underlying stream. */
    @Override
    public void close() throws IOException {
        if (ended) {
            return;
        }
        ended = true;
        json.writeStartObject();
        json.writeBooleanField("done", true);
        json.writeStringField("at", Instant.now().toString());
        json.writeEndObject();
        json.writeRaw('\n');
        json.close();
        gzip.finish();
        gzip.release();
    }
}
