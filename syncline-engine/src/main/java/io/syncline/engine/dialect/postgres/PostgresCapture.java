package io.syncline.engine.dialect.postgres;

import com.fasterxml.jackson.core.type.TypeReference;
import io.syncline.engine.codec.Json;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.TableMeta;
import io.syncline.engine.schema.ValueKind;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/*
 * PostgreSQL capture: typed row tables behind a per-statement outbox.
 *
 * A captured statement writes one row into sync_outbox (its "header": statement number, transaction, channel,
 * table, operation, origin, time, row count) and its changed rows into the table's own row table,
 * sync_rows_<id>: the statement number, then the new row's columns c1..cN, then the old row's columns o1..oN,
 * in the source table's column order and with its types (without type modifiers or domains, so a widened
 * column still fits). The values are copied as PostgreSQL stores them; nothing is converted to text while the
 * application's transaction runs. Rows become canonical JSON only when a batch is read (PostgresBatchReader), off
 * the writer's path. This layout costs the writer about a third of what one JSON outbox row per change cost
 * (docs/benchmarks.md).
 *
 * Statement numbers come from the outbox sequence, drawn by the statement-level trigger at the end of the
 * statement, after its row locks were taken: two changes to one row are numbered in commit order. Within one
 * statement every key appears once, so its rows need no order of their own. Initial-load rows keep the plain
 * JSON form (capture_id NULL, one outbox row per change, numbered from the same sequence).
 *
 * Every install creates a new generation (a new row table and registry entry in sync_capture) and retires the
 * previous one, which is dropped once its rows are purged: rows captured under an old schema stay readable
 * with the column list they were captured with.
 */
final class PostgresCapture {
    static final String SEQUENCE = "sync_outbox_seq_seq";
    /** Third element of a registered column ([key, kind, "key"]) that belongs to the primary key. */
    private static final String KEY = "key";
    private static final TypeReference<List<List<String>>> COLUMNS = new TypeReference<>() {
    };

    private PostgresCapture() {
    }

    /**
     * One generation of a table's row table, with the columns (canonical keys and kinds) it was created with, and the
     * positions in {@code columns} of the primary key's columns (empty for generations registered before the key was
     * recorded: their old rows are read whole).
     */
    record Generation(int id, boolean active, List<ColumnMeta> columns, List<Integer> keyColumns) {
        String rowTable() {
            return "sync_rows_" + id;
        }
    }

    static void installRegistry(Statement s) throws SQLException {
        s.execute("CREATE TABLE IF NOT EXISTS sync_capture (capture_id INT PRIMARY KEY, table_name VARCHAR(128) NOT NULL, "
                + "channel VARCHAR(64) NOT NULL, columns TEXT NOT NULL, active BOOLEAN NOT NULL)");
    }

    /** Creates a new generation for {@code t} and its triggers; retires the table's previous generations. */
    static void install(Connection c, String channel, TableMeta t) throws SQLException {
        retire(c, t.name());
        int id;
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT COALESCE(max(capture_id), 0) + 1 FROM sync_capture")) {
            rs.next();
            id = rs.getInt(1);
        }
        List<String> types = storageTypes(c, t);
        List<List<String>> columns = t.columns().stream().map(col -> t.primaryKey().contains(col)
                ? List.of(col.key(), col.kind().name(), KEY) : List.of(col.key(), col.kind().name())).toList();
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_capture (capture_id, table_name, channel, columns, active) "
                + "VALUES (?, ?, ?, ?, true)")) {
            ps.setInt(1, id);
            ps.setString(2, t.name());
            ps.setString(3, channel);
            ps.setString(4, Json.write(columns));
            ps.executeUpdate();
        }
        int n = t.columns().size();
        String rows = "sync_rows_" + id;
        StringBuilder ddl = new StringBuilder("CREATE TABLE " + rows + " (stmt bigint NOT NULL");
        for (String prefix : new String[] {"c", "o"}) {
            for (int i = 0; i < n; i++) {
                ddl.append(", ").append(prefix).append(i + 1).append(' ').append(types.get(i));
            }
        }
        try (Statement s = c.createStatement()) {
            s.execute(ddl.append(')').toString());
            // Rows are found by statement number, which grows with the table's physical order (see the outbox's txid).
            s.execute("CREATE INDEX " + rows + "_stmt ON " + rows + " USING brin (stmt) WITH (pages_per_range = 16, autosummarize = on)");
        }
        createTriggers(c, channel, t, id);
    }

    /*
     * Three statement-level AFTER triggers with transition tables: one INSERT ... SELECT into the row table and one
     * header row per statement. An UPDATE statement's old and new rows are paired by primary key. Keys present
     * before and after are updates. If the statement moved keys, a single moved row (the usual UPDATE ... SET id =
     * ... WHERE id = ...) is still one update from its old key to its new key. When one statement moves several keys
     * at once, PostgreSQL does not say which old row became which new row, so the moved rows are captured as deletes
     * of the old keys followed by inserts of the new keys (two more statement numbers): the same end state, with
     * every key correct, and keys freed by the statement are free at the target before they are reused.
     */
    private static void createTriggers(Connection c, String channel, TableMeta t, int id) throws SQLException {
        String rows = "sync_rows_" + id;
        int n = t.columns().size();
        String newCols = cols("c", n);
        String oldCols = cols("o", n);
        String nv = t.columns().stream().map(col -> "n." + quote(col.name())).collect(Collectors.joining(", "));
        String ov = t.columns().stream().map(col -> "o." + quote(col.name())).collect(Collectors.joining(", "));
        String join = t.primaryKey().stream().map(col -> "o." + quote(col.name()) + " = n." + quote(col.name()))
                .collect(Collectors.joining(" AND "));
        String oldOnly = "(SELECT * FROM sync_old o WHERE NOT EXISTS (SELECT 1 FROM sync_new n WHERE " + join + "))";
        String newOnly = "(SELECT * FROM sync_new n WHERE NOT EXISTS (SELECT 1 FROM sync_old o WHERE " + join + "))";
        String next = "sync_stmt := nextval('" + SEQUENCE + "'); ";
        String head = "#variable_conflict use_variable\nDECLARE sync_stmt bigint; sync_count bigint; sync_moved bigint; BEGIN " + next;
        String insert = head
                + "INSERT INTO " + rows + " (stmt, " + newCols + ") SELECT sync_stmt, " + nv + " FROM sync_new n; "
                + "GET DIAGNOSTICS sync_count = ROW_COUNT; " + header(channel, t, id, "I") + "RETURN NULL; END";
        String delete = head
                + "INSERT INTO " + rows + " (stmt, " + oldCols + ") SELECT sync_stmt, " + ov + " FROM sync_old o; "
                + "GET DIAGNOSTICS sync_count = ROW_COUNT; " + header(channel, t, id, "D") + "RETURN NULL; END";
        String both = " (stmt, " + newCols + ", " + oldCols + ") SELECT sync_stmt, " + nv + ", " + ov;
        // Every old row became exactly one new row, so the rows whose key moved are as many before as after:
        // all rows minus the rows paired by key. The common case (no key moved) costs one join and one count.
        String update = head
                + "INSERT INTO " + rows + both + " FROM sync_old o JOIN sync_new n ON " + join + "; "
                + "GET DIAGNOSTICS sync_count = ROW_COUNT; "
                + "SELECT count(*) - sync_count INTO sync_moved FROM sync_old; "
                + "IF sync_moved = 1 THEN INSERT INTO " + rows + both + " FROM " + oldOnly + " o, " + newOnly + " n; "
                + "sync_count := sync_count + 1; END IF; "
                + header(channel, t, id, "U")
                + "IF sync_moved > 1 THEN "
                + next + "INSERT INTO " + rows + " (stmt, " + oldCols + ") SELECT sync_stmt, " + ov + " FROM " + oldOnly + " o; "
                + "sync_count := sync_moved; " + header(channel, t, id, "D")
                + next + "INSERT INTO " + rows + " (stmt, " + newCols + ") SELECT sync_stmt, " + nv + " FROM " + newOnly + " n; "
                + header(channel, t, id, "I")
                + "END IF; RETURN NULL; END";
        // TRUNCATE has no transition table and removes the rows without a DELETE: before it runs (the table is
        // already locked against every other writer), every row still there is captured as a delete.
        String truncate = head
                + "INSERT INTO " + rows + " (stmt, " + oldCols + ") SELECT sync_stmt, " + ov + " FROM " + quote(t.name()) + " o; "
                + "GET DIAGNOSTICS sync_count = ROW_COUNT; " + header(channel, t, id, "D") + "RETURN NULL; END";
        try (Statement s = c.createStatement()) {
            for (String[] kind : new String[][] {{"ins", "AFTER INSERT", " REFERENCING NEW TABLE AS sync_new", insert},
                    {"upd", "AFTER UPDATE", " REFERENCING OLD TABLE AS sync_old NEW TABLE AS sync_new", update},
                    {"del", "AFTER DELETE", " REFERENCING OLD TABLE AS sync_old", delete},
                    {"trunc", "BEFORE TRUNCATE", "", truncate}}) {
                String fn = quote("sync_cap_" + kind[0] + "_" + t.name());
                s.execute("CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $syncline$" + kind[3] + "$syncline$");
                s.execute("CREATE TRIGGER " + quote("sync_capture_" + kind[0]) + " " + kind[1] + " ON " + quote(t.name())
                        + kind[2] + " FOR EACH STATEMENT EXECUTE FUNCTION " + fn + "()");
            }
        }
    }

    /** The header row of a statement that captured sync_count rows (none for a statement that changed nothing). */
    private static String header(String channel, TableMeta t, int id, String op) {
        return "IF sync_count > 0 THEN INSERT INTO sync_outbox (seq, channel, table_name, op, origin, capture_id, row_count) VALUES ("
                + "sync_stmt, " + literal(channel) + ", " + literal(t.name().toLowerCase(Locale.ROOT)) + ", '" + op + "', "
                + "NULLIF(current_setting('syncline.origin', true), ''), " + id + ", sync_count); "
                // Delivered at commit, once per transaction (PostgreSQL folds equal notifications): wakes the node (real time).
                + "PERFORM pg_notify('" + PostgresCaptureWatch.CHANNEL + "', ''); END IF; ";
    }

    private static String cols(String prefix, int n) {
        return IntStream.rangeClosed(1, n).mapToObj(i -> prefix + i).collect(Collectors.joining(", "));
    }

    /*
     * Column types for the row table: the base type of a domain (whose constraints, NOT NULL among them, must not
     * apply to a delete's empty new columns) and no type modifier (a later ALTER that widens varchar(10) or
     * numeric(5,2) must not make capture fail on values the table now accepts).
     */
    private static List<String> storageTypes(Connection c, TableMeta t) throws SQLException {
        List<String> types = new ArrayList<>();
        // Domains resolved down to their base type (a domain may be over another domain); format_type with typmod -1
        // names the unbounded type ("bpchar", "bit"), where NULL would name char(1) and bit(1).
        try (PreparedStatement ps = c.prepareStatement("WITH RECURSIVE base(attnum, attname, typid) AS ("
                + "SELECT a.attnum, a.attname, a.atttypid FROM pg_attribute a "
                + "WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped "
                + "UNION ALL SELECT b.attnum, b.attname, ty.typbasetype FROM base b JOIN pg_type ty ON ty.oid = b.typid WHERE ty.typtype = 'd') "
                + "SELECT b.attname, format_type(b.typid, -1) FROM base b JOIN pg_type ty ON ty.oid = b.typid "
                + "WHERE ty.typtype <> 'd' ORDER BY b.attnum")) {
            ps.setString(1, quote(t.name()));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    types.add(rs.getString(2));
                }
            }
        }
        if (types.size() != t.columns().size()) {
            throw new SQLException("table " + t.name() + " has " + types.size() + " columns in pg_attribute but "
                    + t.columns().size() + " in JDBC metadata");
        }
        return types;
    }

    /** Marks the table's generations retired and drops those with no rows left. */
    private static void retire(Connection c, String table) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_capture SET active = false WHERE table_name = ?")) {
            ps.setString(1, table);
            ps.executeUpdate();
        }
        for (Generation g : generations(c, "table_name = " + literal(table))) {
            dropIfEmpty(c, g);
        }
    }

    /** Drops every generation of {@code tableKey} (lower case) and its rows; the caller deletes the headers. */
    static void discard(Connection c, String tableKey) throws SQLException {
        for (Generation g : generations(c, "lower(table_name) = " + literal(tableKey))) {
            drop(c, g);
        }
    }

    /**
     * Empties sync_outbox and every row table, and drops retired generations. The deletes are one statement, so they
     * see one snapshot: a transaction that commits meanwhile keeps both its headers and their rows, or loses both.
     * Statement by statement (READ COMMITTED takes a snapshot per statement), its rows could go and its header stay,
     * and a header whose rows are gone stops its channel for good ("recorded 1 rows, but ... holds 0").
     */
    static void reset(Connection c) throws SQLException {
        List<Generation> all = generations(c, "true");
        StringBuilder sql = new StringBuilder("WITH outbox AS (DELETE FROM sync_outbox)");
        for (Generation g : all) {
            if (g.active()) {
                sql.append(", g").append(g.id()).append(" AS (DELETE FROM ").append(g.rowTable()).append(')');
            }
        }
        try (Statement s = c.createStatement()) {
            s.execute(sql.append(" SELECT 1").toString());
        }
        for (Generation g : all) {
            if (!g.active()) {
                drop(c, g);
            }
        }
    }

    /** Generations whose rows may belong to batches of {@code channel}. */
    static List<Generation> ofChannel(Connection c, String channel) throws SQLException {
        return generations(c, "channel = " + literal(channel));
    }

    /** Drops a retired generation once no header refers to it. */
    static void dropIfEmpty(Connection c, Generation g) throws SQLException {
        if (g.active()) {
            return;
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT 1 FROM sync_outbox WHERE capture_id = ? LIMIT 1")) {
            ps.setInt(1, g.id());
            try (ResultSet rs = ps.executeQuery()) {
                if (rs.next()) {
                    return;
                }
            }
        }
        drop(c, g);
    }

    private static void drop(Connection c, Generation g) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("DROP TABLE IF EXISTS " + g.rowTable());
            s.executeUpdate("DELETE FROM sync_capture WHERE capture_id = " + g.id());
        }
    }

    private static List<Generation> generations(Connection c, String where) throws SQLException {
        List<Generation> out = new ArrayList<>();
        try (Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT capture_id, active, columns FROM sync_capture WHERE "
                     + where + " ORDER BY capture_id")) {
            while (rs.next()) {
                List<List<String>> columns;
                try {
                    columns = Json.MAPPER.readValue(rs.getString(3), COLUMNS);
                } catch (IOException e) {
                    throw new UncheckedIOException("sync_capture " + rs.getInt(1) + ": unreadable column list", e);
                }
                List<Integer> key = new ArrayList<>();
                for (int i = 0; i < columns.size(); i++) {
                    if (columns.get(i).size() > 2 && KEY.equals(columns.get(i).get(2))) {
                        key.add(i);
                    }
                }
                out.add(new Generation(rs.getInt(1), rs.getBoolean(2), columns.stream()
                        .map(col -> new ColumnMeta(col.get(0), java.sql.Types.OTHER, col.get(1), ValueKind.valueOf(col.get(1)))).toList(),
                        List.copyOf(key)));
            }
        }
        return out;
    }

    static String quote(String identifier) {
        return '"' + identifier.replace("\"", "\"\"") + '"';
    }

    static String literal(String value) {
        return "'" + value.replace("'", "''") + "'";
    }
}
