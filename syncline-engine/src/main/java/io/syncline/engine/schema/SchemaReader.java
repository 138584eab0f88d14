package io.syncline.engine.schema;

import io.syncline.api.SyncException;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/** Reads {@link TableMeta} from JDBC metadata. Table names match case-insensitively. Stateless, thread-safe. */
public final class SchemaReader {
    private SchemaReader() {
    }

    /**
     * Reads a table's columns and primary key.
     *
     * @throws SyncException (CONFIG) naming the table when it does not exist
     */
    public static TableMeta read(Connection c, String table) throws SQLException {
        TableMeta meta = tryRead(c, table);
        if (meta == null) {
            throw new SyncException(SyncException.Stage.CONFIG, "table '" + table + "' does not exist in database "
                    + c.getMetaData().getURL());
        }
        return meta;
    }

    /** Like {@link #read} but returns null when the table does not exist. */
    public static TableMeta tryRead(Connection c, String table) throws SQLException {
        DatabaseMetaData md = c.getMetaData();
        String schema = c.getSchema();
        for (String candidate : List.of(table, table.toLowerCase(Locale.ROOT), table.toUpperCase(Locale.ROOT))) {
            List<ColumnMeta> cols = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, schema, candidate, null)) {
                while (rs.next()) {
                    cols.add(new ColumnMeta(rs.getString("COLUMN_NAME"), rs.getInt("DATA_TYPE"), rs.getString("TYPE_NAME")));
                }
            }
            if (cols.isEmpty()) {
                continue;
            }
            Map<Integer, String> pkByPos = new TreeMap<>();
            try (ResultSet rs = md.getPrimaryKeys(null, schema, candidate)) {
                while (rs.next()) {
                    pkByPos.put(rs.getInt("KEY_SEQ"), rs.getString("COLUMN_NAME"));
                }
            }
            List<ColumnMeta> pk = new ArrayList<>();
            for (String name : pkByPos.values()) {
                cols.stream().filter(col -> col.name().equals(name)).findFirst().ifPresent(pk::add);
            }
            return new TableMeta(candidate, cols, pk);
        }
        return null;
    }
}
