package io.syncline.engine.codec;

import io.syncline.engine.schema.ColumnMeta;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeFormatterBuilder;
import java.util.Base64;
import java.util.UUID;

/**
 * Binds canonical values (as parsed from JSON) to JDBC parameters of a target column's type.
 * Stateless and thread-safe.
 */
public final class CanonicalReader {
    private static final DateTimeFormatter OFFSET_TS = new DateTimeFormatterBuilder()
            .append(DateTimeFormatter.ISO_LOCAL_DATE)
            .optionalStart().appendLiteral('T').optionalEnd()
            .optionalStart().appendLiteral(' ').optionalEnd()
            .append(DateTimeFormatter.ISO_LOCAL_TIME)
            .appendOffset("+HH:MM:ss", "Z")
            .toFormatter();
    private static final DateTimeFormatter LOCAL_TS = new DateTimeFormatterBuilder()
            .append(DateTimeFormatter.ISO_LOCAL_DATE)
            .optionalStart().appendLiteral('T').optionalEnd()
            .optionalStart().appendLiteral(' ').optionalEnd()
            .append(DateTimeFormatter.ISO_LOCAL_TIME)
            .toFormatter();

    private CanonicalReader() {
    }

    /**
     * Binds {@code value} to parameter {@code index}.
     *
     * @throws IllegalArgumentException naming the column and value when the value does not fit the column's type
     */
    public static void bind(PreparedStatement ps, int index, ColumnMeta c, Object value) throws SQLException {
        if (value == null) {
            ps.setNull(index, c.kind() == io.syncline.engine.schema.ValueKind.OTHER ? Types.OTHER : c.jdbcType());
            return;
        }
        try {
            switch (c.kind()) {
                case INTEGER -> ps.setLong(index, toBigDecimal(value).longValueExact());
                case DECIMAL -> ps.setBigDecimal(index, toBigDecimal(value));
                case FLOAT -> ps.setDouble(index, value instanceof Number n ? n.doubleValue() : Double.parseDouble(value.toString()));
                case TEXT -> ps.setString(index, value.toString());
                case BOOLEAN -> ps.setBoolean(index, value instanceof Boolean b ? b : parseBoolean(value.toString()));
                case DATE -> ps.setObject(index, LocalDate.parse(value.toString()));
                case TIME -> ps.setObject(index, LocalTime.parse(value.toString()));
                case TIMESTAMP -> ps.setObject(index, LocalDateTime.parse(value.toString(), LOCAL_TS));
                case TIMESTAMPTZ -> ps.setObject(index, OffsetDateTime.parse(value.toString(), OFFSET_TS));
                case BINARY -> ps.setBytes(index, Base64.getMimeDecoder().decode(value.toString()));
                case UUID -> ps.setObject(index, UUID.fromString(value.toString()));
                case JSON -> ps.setString(index, Json.write(value));
                case OTHER -> ps.setObject(index, value, Types.OTHER);
            }
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("value " + abbreviate(value) + " does not fit column '" + c.name() + "' ("
                    + c.typeName() + "): " + e.getMessage(), e);
        }
    }

    private static boolean parseBoolean(String s) {
        return switch (s) {
            case "true", "t", "1" -> true;
            case "false", "f", "0" -> false;
            default -> throw new IllegalArgumentException("not a boolean: " + s);
        };
    }

    private static BigDecimal toBigDecimal(Object value) {
        return switch (value) {
            case BigDecimal d -> d;
            case BigInteger i -> new BigDecimal(i);
            case Integer i -> BigDecimal.valueOf(i);
            case Long l -> BigDecimal.valueOf(l);
            case Number n -> new BigDecimal(n.toString());
            default -> new BigDecimal(value.toString());
        };
    }

    private static String abbreviate(Object v) {
        String s = String.valueOf(v);
        return s.length() > 60 ? "'" + s.substring(0, 57) + "...'" : "'" + s + "'";
    }
}
