package io.syncline.engine.schema;

import java.util.Locale;

/**
 * One column as the database reports it.
 *
 * @param name     the column's name as stored by the database (case preserved)
 * @param jdbcType a {@link java.sql.Types} constant
 * @param typeName the database's own type name ({@code int8}, {@code timestamptz}, {@code CHARACTER VARYING}, ...)
 * @param kind     the canonical kind of value the column holds, derived from the two types
 */
public record ColumnMeta(String name, int jdbcType, String typeName, ValueKind kind) {
    public ColumnMeta(String name, int jdbcType, String typeName) {
        this(name, jdbcType, typeName, ValueKind.of(jdbcType, typeName));
    }

    /** The name used in canonical rows and on the wire: lower case. */
    public String key() {
        return name.toLowerCase(Locale.ROOT);
    }
}
