package io.syncline.transport.wire;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.StreamWriteFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule;
import com.fasterxml.jackson.databind.json.JsonMapper;

/**
 * Constants of the batch wire format, version 1 (docs/protocol.md): a gzip stream of JSON values, a preamble,
 * then per batch a header, its changes and an end marker with the change count, then a final "done".
 */
public final class WireFormat {
    /** Format version written and accepted. A reader refuses any other version by name. */
    public static final int VERSION = 1;
    /** The preamble's format name. */
    public static final String NAME = "syncline-batches";
    /** HTTP content type of a batch stream. */
    public static final String CONTENT_TYPE = "application/vnd.syncline.batches.v1+json";
    /** HTTP content encoding of a batch stream. */
    public static final String CONTENT_ENCODING = "gzip";

    /** JSON mapping for canonical rows on the wire: exact decimals, plain notation. Thread-safe. */
    public static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .enable(StreamWriteFeature.WRITE_BIGDECIMAL_AS_PLAIN)
            .disable(StreamWriteFeature.AUTO_CLOSE_TARGET)
            .disable(StreamReadFeature.AUTO_CLOSE_SOURCE)
            .addModule(new JavaTimeModule())
            .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS)
            .build();

    private WireFormat() {
    }
}
