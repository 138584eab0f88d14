package io.syncline.engine.schema;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A table's columns and primary key, read from JDBC metadata. Immutable.
 *
 * @param name       the table name as stored by the database
 * @param columns    all columns in ordinal order
 * @param primaryKey primary-key columns in key order (empty when the table has none)
 * @param byKey      columns by their canonical (lower-case) key, in ordinal order (derived from {@code columns})
 */
public record TableMeta(String name, List<ColumnMeta> columns, List<ColumnMeta> primaryKey, Map<String, ColumnMeta> byKey) {
    public TableMeta {
        columns = List.copyOf(columns);
        primaryKey = List.copyOf(primaryKey);
        byKey = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(byKey));
    }

    public TableMeta(String name, List<ColumnMeta> columns, List<ColumnMeta> primaryKey) {
        this(name, columns, primaryKey, index(columns));
    }

    private static Map<String, ColumnMeta> index(List<ColumnMeta> columns) {
        Map<String, ColumnMeta> m = new LinkedHashMap<>();
        for (ColumnMeta c : columns) {
            m.put(c.key(), c);
        }
        return m;
    }

    /** A signature of the column list and types; capture is reinstalled when it changes. */
    public String signature() {
        StringBuilder sb = new StringBuilder(name);
        for (ColumnMeta c : columns) {
            sb.append('|').append(c.key()).append(':').append(c.typeName());
        }
        sb.append("|pk");
        for (ColumnMeta c : primaryKey) {
            sb.append(':').append(c.key());
        }
        return sb.toString();
    }
}
