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

    /**
     * A table's unique keys other than its primary key.
     *
     * @param keys      the plain ones, each as its columns (lower-case keys): a value can be checked for them before a write
     * @param unchecked whether the table also has unique indexes that cannot be checked that way (partial, or on
     *                  expressions): a write may still fail on one of them
     */
    public record UniqueKeys(List<List<String>> keys, boolean unchecked) {
    }

    /**
     * A foreign key that references a table: the referencing table, its columns, and the referenced columns they match,
     * in key order (lower-case keys).
     */
    public record Reference(String table, List<String> columns, List<String> referenced) {
    }

    /** The foreign keys that reference {@code t}. */
    public static List<Reference> referencedBy(Connection c, TableMeta t) throws SQLException {
        return references(c, t, true);
    }

    /**
     * The foreign keys of {@code t} itself, each as a {@link Reference} whose {@code table} is the referenced table,
     * {@code columns} the referenced columns and {@code referenced} this table's columns that hold their values.
     */
    public static List<Reference> parentsOf(Connection c, TableMeta t) throws SQLException {
        return references(c, t, false);
    }

    private static List<Reference> references(Connection c, TableMeta t, boolean exported) throws SQLException {
        Map<String, Map<Integer, String[]>> byKey = new java.util.LinkedHashMap<>();
        Map<String, String> tableOf = new java.util.HashMap<>();
        DatabaseMetaData md = c.getMetaData();
        try (ResultSet rs = exported ? md.getExportedKeys(null, c.getSchema(), t.name()) : md.getImportedKeys(null, c.getSchema(), t.name())) {
            while (rs.next()) {
                String name = rs.getString("FKTABLE_NAME") + "/" + rs.getString("FK_NAME");
                String other = exported ? "FKTABLE_NAME" : "PKTABLE_NAME";
                tableOf.put(name, rs.getString(other));
                String fk = rs.getString("FKCOLUMN_NAME").toLowerCase(Locale.ROOT);
                String pk = rs.getString("PKCOLUMN_NAME").toLowerCase(Locale.ROOT);
                byKey.computeIfAbsent(name, k -> new TreeMap<>()).put((int) rs.getShort("KEY_SEQ"), exported ? new String[] {fk, pk}
                        : new String[] {pk, fk});
            }
        }
        List<Reference> out = new ArrayList<>();
        for (Map.Entry<String, Map<Integer, String[]>> e : byKey.entrySet()) {
            out.add(new Reference(tableOf.get(e.getKey()), e.getValue().values().stream().map(p -> p[0]).toList(),
                    e.getValue().values().stream().map(p -> p[1]).toList()));
        }
        return out;
    }

    /** Whether a table references another by a foreign key, or is referenced by one. */
    public static boolean hasForeignKeys(Connection c, TableMeta t) throws SQLException {
        DatabaseMetaData md = c.getMetaData();
        try (ResultSet in = md.getImportedKeys(null, c.getSchema(), t.name())) {
            if (in.next()) {
                return true;
            }
        }
        try (ResultSet out = md.getExportedKeys(null, c.getSchema(), t.name())) {
            return out.next();
        }
    }

    /** The unique keys of a table other than its primary key (JDBC index information). */
    public static UniqueKeys uniqueKeys(Connection c, TableMeta t) throws SQLException {
        Map<String, Map<Integer, String>> byIndex = new java.util.LinkedHashMap<>();
        java.util.Set<String> partial = new java.util.HashSet<>();
        try (ResultSet rs = c.getMetaData().getIndexInfo(null, c.getSchema(), t.name(), true, false)) {
            while (rs.next()) {
                String index = rs.getString("INDEX_NAME");
                if (index == null) {
                    continue;
                }
                String column = rs.getString("COLUMN_NAME");
                byIndex.computeIfAbsent(index, k -> new TreeMap<>()).put((int) rs.getShort("ORDINAL_POSITION"),
                        column == null ? "" : column.toLowerCase(Locale.ROOT));
                if (rs.getString("FILTER_CONDITION") != null) {
                    partial.add(index);
                }
            }
        }
        List<String> pk = t.primaryKey().stream().map(ColumnMeta::key).sorted().toList();
        List<List<String>> out = new ArrayList<>();
        boolean unchecked = false;
        for (Map.Entry<String, Map<Integer, String>> e : byIndex.entrySet()) {
            List<String> key = List.copyOf(e.getValue().values());
            if (key.stream().sorted().toList().equals(pk) && !partial.contains(e.getKey())) {
                continue;
            }
            if (partial.contains(e.getKey()) || !t.byKey().keySet().containsAll(key)) {
                unchecked = true; // a partial index, or one on an expression: only the database can tell
            } else if (!out.contains(key)) {
                out.add(key);
            }
        }
        return new UniqueKeys(out, unchecked);
    }

    /**
     * {@code tables} ordered so that a table comes after every table of the list it references by a foreign key: the
     * order to write them in (and, reversed, to empty them in) without breaking those keys. Otherwise the given order is
     * kept; tables in a reference cycle keep their given order among themselves. Names match case-insensitively; a
     * table that does not exist keeps its place.
     */
    public static List<String> referenceOrder(Connection c, List<String> tables) throws SQLException {
        DatabaseMetaData md = c.getMetaData();
        Map<String, java.util.Set<String>> parents = new java.util.HashMap<>();
        java.util.Set<String> names = new java.util.HashSet<>();
        for (String t : tables) {
            names.add(t.toLowerCase(Locale.ROOT));
        }
        for (String t : tables) {
            java.util.Set<String> refs = new java.util.LinkedHashSet<>();
            TableMeta meta = tryRead(c, t);
            if (meta != null) {
                try (ResultSet rs = md.getImportedKeys(null, c.getSchema(), meta.name())) {
                    while (rs.next()) {
                        String parent = rs.getString("PKTABLE_NAME").toLowerCase(Locale.ROOT);
                        if (names.contains(parent) && !parent.equals(t.toLowerCase(Locale.ROOT))) {
                            refs.add(parent);
                        }
                    }
                }
            }
            parents.put(t.toLowerCase(Locale.ROOT), refs);
        }
        List<String> out = new ArrayList<>();
        java.util.Set<String> placed = new java.util.HashSet<>();
        while (out.size() < tables.size()) {
            boolean progress = false;
            for (String t : tables) {
                String key = t.toLowerCase(Locale.ROOT);
                if (!placed.contains(key) && placed.containsAll(parents.get(key))) {
                    out.add(t);
                    placed.add(key);
                    progress = true;
                    break; // restart from the top: keeps the given order wherever the references allow
                }
            }
            if (!progress) { // a cycle: the first unplaced table that is on one goes next, not a table that only depends on it
                String next = null;
                for (String t : tables) {
                    if (!placed.contains(t.toLowerCase(Locale.ROOT)) && onCycle(t.toLowerCase(Locale.ROOT), parents, placed)) {
                        next = t;
                        break;
                    }
                }
                out.add(next);
                placed.add(next.toLowerCase(Locale.ROOT));
            }
        }
        return out;
    }

    /** Whether {@code table} reaches itself through references among the unplaced tables. */
    private static boolean onCycle(String table, Map<String, java.util.Set<String>> parents, java.util.Set<String> placed) {
        java.util.Deque<String> todo = new java.util.ArrayDeque<>(parents.get(table));
        java.util.Set<String> seen = new java.util.HashSet<>();
        while (!todo.isEmpty()) {
            String t = todo.pop();
            if (t.equals(table)) {
                return true;
            }
            if (!placed.contains(t) && seen.add(t)) {
                todo.addAll(parents.getOrDefault(t, java.util.Set.of()));
            }
        }
        return false;
    }
}
