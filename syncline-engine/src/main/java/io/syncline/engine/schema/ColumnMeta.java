package io.syncline.engine.schema;

import java.util.Locale;

/**
 * One column as the database reports it.
 *
 * @param name     the column's name as stored by the database (case preserved)
 * @param jdbcType a {@link java.sql.Types} constant
 * @param typeName the database's own type name ({@code int8}, {@code timestamptz}, {@code CHARACTER VARYING}, ...)
 */
public record ColumnMeta(String name, int jdbcType, String typeName) {
    /** The name used in canonical rows and on the wire: lower case. */
    public String key() {
        return name.toLowerCase(Locale.ROOT);
    }

    /** The canonical kind of value this column holds. */
    public ValueKind kind() {
        return ValueKind.of(jdbcType, typeName);
    }
}
