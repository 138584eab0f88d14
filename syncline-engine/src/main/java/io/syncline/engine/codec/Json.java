package io.syncline.engine.codec;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.StreamWriteFeature;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The one Jackson configuration used for canonical rows: decimals are read as {@link java.math.BigDecimal}
 * (exact) and written in plain notation. Thread-safe.
 */
public final class Json {
    public static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .enable(StreamWriteFeature.WRITE_BIGDECIMAL_AS_PLAIN)
            .enable(StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION)
            .build();
    public static final JsonFactory FACTORY = MAPPER.getFactory();
    private static final TypeReference<LinkedHashMap<String, Object>> ROW = new TypeReference<>() {
    };

    private Json() {
    }

    /** Parses a canonical row; null in, null out. */
    public static Map<String, Object> parseRow(String json) {
        if (json == null) {
            return null;
        }
        try {
            return MAPPER.readValue(json, ROW);
        } catch (IOException e) {
            throw new IllegalArgumentException("malformed row JSON: " + e.getMessage(), e);
        }
    }

    /** Writes any value as JSON text. */
    public static String write(Object value) {
        try {
            StringWriter w = new StringWriter();
            try (JsonGenerator g = FACTORY.createGenerator(w)) {
                MAPPER.writeValue(g, value);
            }
            return w.toString();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
