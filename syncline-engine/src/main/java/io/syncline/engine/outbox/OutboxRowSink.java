package io.syncline.engine.outbox;

import com.fasterxml.jackson.core.JsonGenerator;
import io.syncline.engine.codec.Json;
import java.io.IOException;
import java.time.Instant;

/**
 * Receives a sealed batch's changes, in order. The rows are written straight from the outbox into the receiver's
 * generator, without a text copy in between; a row is valid only during the call that receives it.
 */
@FunctionalInterface
public interface OutboxRowSink {
    /**
     * One change. {@code origin}: the node whose batch, applied here, made the change (the origin tag of
     * {@link io.syncline.engine.dialect.Dialect#beginApply}); null for a change made here.
     */
    void accept(String op, String table, Row oldRow, Row newRow, Instant capturedAt, String origin) throws IOException;

    /** One row in canonical form (docs/protocol.md, "Values"): a JSON object. */
    @FunctionalInterface
    interface Row {
        /** Writes the row as one JSON object into {@code g}, which must be configured like {@link Json#FACTORY}. */
        void writeTo(JsonGenerator g) throws IOException;

        /** The row as canonical JSON text. */
        default String text() throws IOException {
            java.io.StringWriter out = new java.io.StringWriter(128);
            try (JsonGenerator g = Json.FACTORY.createGenerator(out)) {
                writeTo(g);
            }
            return out.toString();
        }

        /** A row held as canonical JSON text; null stays null. */
        static Row ofJson(String json) {
            return json == null ? null : g -> g.writeRawValue(json);
        }
    }
}
