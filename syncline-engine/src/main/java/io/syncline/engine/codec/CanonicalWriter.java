package io.syncline.engine.codec;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.ValueKind;
import java.io.IOException;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.sql.Clob;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * Turns JDBC values into canonical JSON values (docs/protocol.md, "Values"). Used by the H2 capture
 * trigger, the initial load and the verification checksum, so that every path produces the same form.
 * Stateless and thread-safe.
 */
public final class CanonicalWriter {
    private CanonicalWriter() {
    }

    /** Writes one row (columns in order) as a JSON object. With {@code normalize}, instants are written in UTC (for checksums). */
    public static String row(List<ColumnMeta> columns, Object[] values, boolean normalize) {
        try {
            StringWriter w = new StringWriter(64 + columns.size() * 16);
            try (JsonGenerator g = Json.FACTORY.createGenerator(w)) {
                row(g, columns, values, normalize);
            }
            return w.toString();
        } catch (IOException e) {
            throw new IllegalStateException("cannot encode row: " + e.getMessage(), e);
        }
    }

    /** Writes one row (columns in order) as a JSON object into {@code g}, which must be configured like {@link Json#FACTORY}. */
    public static void row(JsonGenerator g, List<ColumnMeta> columns, Object[] values, boolean normalize) throws IOException {
        g.writeStartObject();
        for (int i = 0; i < columns.size(); i++) {
            field(g, columns.get(i), values[i], normalize);
        }
        g.writeEndObject();
    }

    /** Writes one column as a field (its canonical key and value) of the object {@code g} is writing. */
    public static void field(JsonGenerator g, ColumnMeta column, Object value) throws IOException {
        field(g, column, value, false);
    }

    private static void field(JsonGenerator g, ColumnMeta column, Object value, boolean normalize) throws IOException {
        g.writeFieldName(column.key());
        value(g, column, value, normalize);
    }

    /** Reads the current row of {@code rs} (whose columns are {@code columns}, in order) into canonical JSON. */
    public static String row(List<ColumnMeta> columns, ResultSet rs, boolean normalize) throws SQLException {
        Object[] values = new Object[columns.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = read(rs, i + 1, columns.get(i));
        }
        return row(columns, values, normalize);
    }

    /** Reads one JDBC column in the Java type that best keeps its value. */
    public static Object read(ResultSet rs, int index, ColumnMeta c) throws SQLException {
        Object v = switch (c.kind()) {
            case DATE -> rs.getObject(index, LocalDate.class);
            case TIME -> rs.getObject(index, LocalTime.class);
            case TIMESTAMP -> rs.getObject(index, LocalDateTime.class);
            case TIMESTAMPTZ -> rs.getObject(index, OffsetDateTime.class);
            case BINARY -> rs.getBytes(index);
            case TEXT, JSON -> rs.getString(index);
            default -> rs.getObject(index);
        };
        if (rs.wasNull()) {
            return null;
        }
        // The driver's objects for these lose the value (a time's offset) or print as an object name (XML): their text.
        return v instanceof java.sql.Time || v instanceof java.sql.SQLXML ? rs.getString(index) : v;
    }

    static void value(JsonGenerator g, ColumnMeta c, Object v, boolean normalize) throws IOException {
        if (v == null) {
            g.writeNull();
            return;
        }
        ValueKind kind = c.kind();
        if (kind == ValueKind.JSON) {
            String text = v instanceof byte[] b ? new String(b, StandardCharsets.UTF_8) : String.valueOf(v);
            if (normalize) {
                g.writeTree(sortKeys(Json.MAPPER.readTree(text)));
            } else {
                g.writeRawValue(text);
            }
            return;
        }
        switch (v) {
            case Integer i -> g.writeNumber(i);
            case Long l -> g.writeNumber(l);
            case Short s -> g.writeNumber(s);
            case Byte b -> g.writeNumber(b);
            case BigInteger b -> g.writeNumber(b);
            case BigDecimal d -> g.writeNumber(d);
            case Double d -> {
                if (d.isNaN() || d.isInfinite()) {
                    g.writeString(d.toString());
                } else {
                    g.writeNumber(d);
                }
            }
            case Float f -> {
                if (f.isNaN() || f.isInfinite()) {
                    g.writeString(f.toString());
                } else {
                    g.writeNumber(f);
                }
            }
            case Boolean b -> g.writeBoolean(b);
            case String s -> g.writeString(s);
            case byte[] b -> g.writeString(Base64.getEncoder().encodeToString(b));
            case java.sql.Date d -> g.writeString(d.toLocalDate().toString());
            case java.sql.Time t -> g.writeString(t.toLocalTime().toString());
            case java.sql.Timestamp t -> g.writeString(t.toLocalDateTime().toString());
            case LocalDate d -> g.writeString(d.toString());
            case LocalTime t -> g.writeString(t.toString());
            case LocalDateTime t -> g.writeString(t.toString());
            case OffsetDateTime t -> g.writeString((normalize ? t.withOffsetSameInstant(ZoneOffset.UTC) : t).toString());
            case ZonedDateTime t -> g.writeString((normalize ? t.toOffsetDateTime().withOffsetSameInstant(ZoneOffset.UTC)
                    : t.toOffsetDateTime()).toString());
            case Clob clob -> {
                try {
                    g.writeString(clob.getSubString(1, (int) clob.length()));
                } catch (SQLException e) {
                    throw new IOException("cannot read CLOB value of column '" + c.name() + "': " + e.getMessage(), e);
                }
            }
            default -> g.writeString(v.toString());
        }
    }

    /**
     * JSON with object keys in sorted order, recursively: jsonb (PostgreSQL) reorders keys while json and H2's
     * JSON keep them, so normalized (checksum) form must not depend on key order.
     */
    private static JsonNode sortKeys(JsonNode node) {
        if (node.isObject()) {
            ObjectNode sorted = Json.MAPPER.createObjectNode();
            new TreeMap<>(node.properties().stream().collect(Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue)))
                    .forEach((k, v) -> sorted.set(k, sortKeys(v)));
            return sorted;
        }
        if (node.isArray()) {
            ArrayNode sorted = Json.MAPPER.createArrayNode();
            node.forEach(v -> sorted.add(sortKeys(v)));
            return sorted;
        }
        return node;
    }
}
