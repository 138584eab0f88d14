package io.syncline.engine.schema;

import java.sql.Types;
import java.util.Locale;

/** The canonical value kinds that Syncline round-trips exactly. See docs/protocol.md. */
public enum ValueKind {
    INTEGER, DECIMAL, FLOAT, TEXT, BOOLEAN, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, BINARY, UUID, JSON, OTHER;

    static ValueKind of(int jdbcType, String typeName) {
        String t = typeName == null ? "" : typeName.toLowerCase(Locale.ROOT);
        if (t.equals("uuid")) {
            return UUID;
        }
        if (t.equals("json") || t.equals("jsonb")) {
            return JSON;
        }
        if (t.equals("timestamptz") || t.equals("timestamp with time zone")) {
            return TIMESTAMPTZ;
        }
        if (t.equals("bool") || t.equals("boolean")) {
            return BOOLEAN;
        }
        if (t.equals("timetz") || t.equals("time with time zone")) {
            return OTHER; // PostgreSQL's driver reports it as TIME, but a LocalTime would drop the offset
        }
        return switch (jdbcType) {
            case Types.TINYINT, Types.SMALLINT, Types.INTEGER, Types.BIGINT -> INTEGER;
            case Types.NUMERIC, Types.DECIMAL -> DECIMAL;
            case Types.REAL, Types.FLOAT, Types.DOUBLE -> FLOAT;
            case Types.CHAR, Types.VARCHAR, Types.LONGVARCHAR, Types.NCHAR, Types.NVARCHAR, Types.LONGNVARCHAR,
                 Types.CLOB, Types.NCLOB -> TEXT;
            case Types.BIT, Types.BOOLEAN -> BOOLEAN;
            case Types.DATE -> DATE;
            case Types.TIME -> TIME;
            case Types.TIMESTAMP -> TIMESTAMP;
            case Types.TIMESTAMP_WITH_TIMEZONE -> TIMESTAMPTZ;
            case Types.BINARY, Types.VARBINARY, Types.LONGVARBINARY, Types.BLOB -> BINARY;
            default -> OTHER;
        };
    }
}
