package io.syncline.engine.dialect.postgres;

import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.schema.TableMeta;
import io.syncline.engine.schema.ValueKind;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;

/*
 * PostgreSQL capture and gap-free reading.
 *
 * Capture: statement-level triggers with transition tables (see installCapture) write the new row (and for
 * updates and deletes the old row) of every changed row as JSON into sync_outbox, with the writing transaction's
 * id (pg_current_xact_id(), an xid8 that never wraps) and the origin tag read from the transaction-local
 * setting syncline.origin.
 *
 * Reading without gaps (the PgQ method): a batch is the set of outbox rows whose transaction is visible in
 * this batch's snapshot and was not visible in the previous batch's snapshot. Snapshots are taken with
 * pg_current_snapshot() inside a REPEATABLE READ transaction, so the rows counted are exactly the rows the
 * snapshot describes. A transaction that took a low sequence number but commits late is simply invisible
 * in the snapshot that was current while it ran, and visible in a later one: it lands in a later batch,
 * never skipped. Inside a batch rows are ordered by seq; two changes to the same row are always in commit
 * order, because the second writer had to wait for the first one's row lock before its statement (and so its
 * trigger, which runs at the end of the statement) could finish.
 */
public final class PostgresDialect implements Dialect {
    static final String SNAPSHOT_KEY = "pg.snapshot.";
    static final String EMPTY_SNAPSHOT = "1:1:";

    @Override
    public String name() {
        return "postgres";
    }

    @Override
    public String textType() {
        return "TEXT";
    }

    @Override
    public void installOutbox(Connection c) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS sync_outbox ("
                    + "seq BIGSERIAL NOT NULL, "
                    + "txid BIGINT NOT NULL DEFAULT txid_current(), "
                    + "channel VARCHAR(64) NOT NULL, table_name VARCHAR(128) NOT NULL, op CHAR(1) NOT NULL, "
                    + "old_row TEXT, new_row TEXT, origin VARCHAR(64), "
                    + "captured_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())");
            // The only index: batches are found by transaction id; seq needs none (it orders rows within a batch).
            // BRIN, not b-tree: a b-tree entry per captured row cost the writer about 13% more. Transaction ids
            // grow with the table's physical order, and the index is precise exactly when the outbox is large
            // (a backlog: nothing is purged, no page is reused). PostgreSQL has no BRIN operator class for xid8,
            // hence the bigint column, filled by txid_current(): the same 64-bit epoch-extended id as
            // pg_current_xact_id(), without a text cast per row (older name, still supported).
            s.execute("CREATE INDEX IF NOT EXISTS sync_outbox_txid ON sync_outbox USING brin (txid) "
                    + "WITH (pages_per_range = 16, autosummarize = on)");
        }
    }

    @Override
    public String captureVersion() {
        return "pg-statement-5";
    }

    /*
     * Capture is set-based: three statement-level AFTER triggers with transition tables, one INSERT ... SELECT
     * into the outbox per statement instead of one PL/pgSQL call and one single-row INSERT per row (which cost
     * the writer about twice as much).
     *
     * An UPDATE statement's old and new rows are paired by primary key. Keys present before and after are
     * updates. If the statement moved keys, a single moved row (the usual UPDATE ... SET id = ... WHERE id = ...)
     * is still one update from its old key to its new key, so it stays an UPDATE at the target (foreign keys with
     * ON UPDATE CASCADE keep working). When one statement moves several keys at once, PostgreSQL does not say
     * which old row became which new row, so the moved rows are captured as deletes of the old keys followed by
     * inserts of the new keys: the same end state, with every key correct. The deletes come before the inserts,
     * so that keys freed by the statement are free at the target before they are reused.
     */
    @Override
    public void installCapture(Connection c, String channel, TableMeta t) throws SQLException {
        String table = quote(t.name());
        String lit = "'" + channel + "', '" + t.name().toLowerCase(java.util.Locale.ROOT).replace("'", "''") + "'";
        String origin = "NULLIF(current_setting('syncline.origin', true), '')";
        String join = t.primaryKey().stream().map(col -> "o." + quote(col.name()) + " = n." + quote(col.name()))
                .collect(Collectors.joining(" AND "));
        String oldOnly = "(SELECT * FROM sync_old o WHERE NOT EXISTS (SELECT 1 FROM sync_new n WHERE " + join + "))";
        String newOnly = "(SELECT * FROM sync_new n WHERE NOT EXISTS (SELECT 1 FROM sync_old o WHERE " + join + "))";
        String head = "INSERT INTO sync_outbox (channel, table_name, op, old_row, new_row, origin) SELECT " + lit + ", ";
        String updates = head + "'U', " + encode(t, "o") + ", " + encode(t, "n") + ", " + origin
                + " FROM sync_old o JOIN sync_new n ON " + join;
        String insert = "INSERT INTO sync_outbox (channel, table_name, op, new_row, origin) SELECT " + lit + ", 'I', "
                + encode(t, "n") + ", " + origin + " FROM sync_new n";
        String delete = "INSERT INTO sync_outbox (channel, table_name, op, old_row, origin) SELECT " + lit + ", 'D', "
                + encode(t, "o") + ", " + origin + " FROM sync_old o";
        // Every old row became exactly one new row, so the rows whose key moved are as many before as after:
        // all rows minus the rows paired by key. The common case (no key moved) costs one join and one count.
        String update = "DECLARE paired bigint; moved bigint; BEGIN "
                + updates + "; "
                + "GET DIAGNOSTICS paired = ROW_COUNT; "
                + "SELECT count(*) - paired INTO moved FROM sync_old; "
                + "IF moved = 0 THEN RETURN NULL; END IF; "
                + "IF moved = 1 THEN "
                + head + "'U', " + encode(t, "o") + ", " + encode(t, "n") + ", " + origin + " FROM " + oldOnly + " o, " + newOnly + " n; "
                + "RETURN NULL; END IF; "
                + head + "'D', " + encode(t, "o") + ", NULL, " + origin + " FROM " + oldOnly + " o; "
                + head + "'I', NULL, " + encode(t, "n") + ", " + origin + " FROM " + newOnly + " n; "
                + "RETURN NULL; END";
        try (Statement s = c.createStatement()) {
            dropCapture(c, t);
            for (String[] kind : new String[][] {{"ins", "INSERT", "NEW TABLE AS sync_new", "BEGIN " + insert + "; RETURN NULL; END"},
                    {"upd", "UPDATE", "OLD TABLE AS sync_old NEW TABLE AS sync_new", update},
                    {"del", "DELETE", "OLD TABLE AS sync_old", "BEGIN " + delete + "; RETURN NULL; END"}}) {
                String fn = quote("sync_cap_" + kind[0] + "_" + t.name());
                s.execute("CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $syncline$" + kind[3] + "$syncline$");
                s.execute("CREATE TRIGGER " + quote("sync_capture_" + kind[0]) + " AFTER " + kind[1] + " ON " + table
                        + " REFERENCING " + kind[2] + " FOR EACH STATEMENT EXECUTE FUNCTION " + fn + "()");
            }
        }
    }

    /**
     * row_to_json, except that keys are the canonical lower-case column keys (row_to_json keeps the catalog's case
     * of quoted names) and binary columns are base64 (the canonical form) instead of PostgreSQL's hex. Built from a
     * subselect rather than by patching a jsonb, so json columns keep their text (jsonb would reorder their keys).
     */
    private String encode(TableMeta t, String rec) {
        boolean plain = t.columns().stream().allMatch(col -> col.kind() != ValueKind.BINARY && col.name().equals(col.key()));
        if (plain) {
            return "row_to_json(" + rec + ")::text";
        }
        String columns = t.columns().stream()
                .map(col -> {
                    String value = rec + "." + quote(col.name());
                    String expr = col.kind() == ValueKind.BINARY ? "translate(encode(" + value + ", 'base64'), E'\\n', '')" : value;
                    return expr + " AS " + quote(col.key());
                })
                .collect(Collectors.joining(", "));
        return "(SELECT row_to_json(r)::text FROM (SELECT " + columns + ") r)";
    }

    @Override
    public void dropCapture(Connection c, TableMeta t) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("DROP TRIGGER IF EXISTS sync_capture ON " + quote(t.name()));
            s.execute("DROP FUNCTION IF EXISTS " + quote("sync_cap_" + t.name()) + "()");
            for (String kind : new String[] {"ins", "upd", "del"}) {
                s.execute("DROP TRIGGER IF EXISTS " + quote("sync_capture_" + kind) + " ON " + quote(t.name()));
                s.execute("DROP FUNCTION IF EXISTS " + quote("sync_cap_" + kind + "_" + t.name()) + "()");
            }
        }
    }

    @Override
    public Optional<SealedBatch> sealBatch(Connection c, String channel, long sequence, Instant now) throws SQLException {
        String current;
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_current_snapshot()::text")) {
            rs.next();
            current = rs.getString(1);
        }
        String previous = SyncSchema.getState(c, SNAPSHOT_KEY + channel);
        if (previous == null) {
            previous = EMPTY_SNAPSHOT;
        }
        if (Long.parseLong(previous.substring(0, previous.indexOf(':'))) > Long.parseLong(current.split(":")[1])) {
            // Transaction ids went backwards: this database was restored into a new cluster. Windows computed
            // against the old snapshot would be empty and silently skip everything committed since.
            throw new io.syncline.engine.outbox.DivergedException("transaction ids went backwards (last batch ended at snapshot "
                    + previous + ", the database is now at " + current + "): the database was restored or replaced");
        }
        long count;
        java.time.OffsetDateTime first;
        try (PreparedStatement ps = c.prepareStatement("SELECT count(*), min(captured_at) FROM sync_outbox WHERE channel = ? AND "
                + WINDOW)) {
            ps.setString(1, channel);
            bindWindow(ps, 2, previous, current);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                count = rs.getLong(1);
                first = rs.getObject(2, java.time.OffsetDateTime.class);
            }
        }
        SyncSchema.putState(c, SNAPSHOT_KEY + channel, current);
        if (count == 0) {
            return Optional.empty();
        }
        return Optional.of(new SealedBatch(channel, sequence, previous, current, count, now,
                first == null ? null : first.toInstant()));
    }

    /** The snapshot and the count must come from one consistent view. */
    @Override
    public int sealIsolation() {
        return Connection.TRANSACTION_REPEATABLE_READ;
    }

    private static final String XID8 = "CAST(CAST(txid AS text) AS xid8)";
    private static final String WINDOW = "txid >= " + bound("pg_snapshot_xmin") + " AND txid < " + bound("pg_snapshot_xmax")
            + " AND NOT pg_visible_in_snapshot(" + XID8 + ", CAST(? AS pg_snapshot)) AND pg_visible_in_snapshot(" + XID8
            + ", CAST(? AS pg_snapshot))";

    private static String bound(String function) {
        return "CAST(CAST(" + function + "(CAST(? AS pg_snapshot)) AS text) AS bigint)";
    }

    private static void bindWindow(PreparedStatement ps, int at, String from, String to) throws SQLException {
        ps.setString(at, from);
        ps.setString(at + 1, to);
        ps.setString(at + 2, from);
        ps.setString(at + 3, to);
    }

    @Override
    public String batchRowsSql() {
        return "SELECT op, table_name, old_row, new_row, captured_at FROM sync_outbox WHERE channel = ? AND " + WINDOW
                + " AND (origin IS NULL OR origin <> ?) ORDER BY seq";
    }

    @Override
    public void bindBatchRows(PreparedStatement ps, SealedBatch b, String destination) throws SQLException {
        ps.setString(1, b.channel());
        bindWindow(ps, 2, b.from(), b.to());
        ps.setString(6, destination);
    }

    @Override
    public int purge(Connection c, SealedBatch upTo) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_outbox WHERE channel = ? "
                + "AND txid < " + bound("pg_snapshot_xmax") + " AND pg_visible_in_snapshot(" + XID8 + ", CAST(? AS pg_snapshot))")) {
            ps.setString(1, upTo.channel());
            ps.setString(2, upTo.to());
            ps.setString(3, upTo.to());
            return ps.executeUpdate();
        }
    }

    @Override
    public void resetOutbox(Connection c) throws SQLException {
        Dialect.super.resetOutbox(c);
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_state WHERE k LIKE ?")) {
            ps.setString(1, SNAPSHOT_KEY + "%");
            ps.executeUpdate();
        }
    }

    @Override
    public void beginApply(Connection c, String origin) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT set_config('syncline.origin', ?, true)")) {
            ps.setString(1, origin);
            ps.executeQuery().close();
        }
    }

    @Override
    public void endApply(Connection c) {
        // set_config(..., true) is transaction-local: nothing to undo.
    }

    @Override
    public String upsertSql(TableMeta t, List<ColumnMeta> columns) {
        String cols = columns.stream().map(col -> quote(col.name())).collect(Collectors.joining(", "));
        String values = columns.stream().map(this::placeholder).collect(Collectors.joining(", "));
        return "INSERT INTO " + quote(t.name()) + " (" + cols + ") VALUES (" + values + ") " + onConflict(t, columns);
    }

    /** The ON CONFLICT clause shared by both upsert paths: on the primary key, overwrite every non-key column given. */
    private String onConflict(TableMeta t, List<ColumnMeta> columns) {
        String pk = t.primaryKey().stream().map(col -> quote(col.name())).collect(Collectors.joining(", "));
        List<ColumnMeta> nonKey = columns.stream().filter(col -> !t.primaryKey().contains(col)).toList();
        String action = nonKey.isEmpty() ? "DO NOTHING" : "DO UPDATE SET " + nonKey.stream()
                .map(col -> quote(col.name()) + " = EXCLUDED." + quote(col.name())).collect(Collectors.joining(", "));
        return "ON CONFLICT (" + pk + ") " + action;
    }

    @Override
    public boolean supportsBulkUpsert() {
        return true;
    }

    /*
     * COPY into a temporary staging table shaped like the column list (no constraints, ON COMMIT DELETE ROWS), then
     * one INSERT ... SELECT ... ON CONFLICT DO UPDATE into the target. The caller guarantees one row per key, which
     * ON CONFLICT requires. Several times faster than multi-row VALUES statements for large batches.
     */
    @Override
    public void bulkUpsert(Connection c, TableMeta t, List<ColumnMeta> columns, java.util.Collection<java.util.Map<String, Object>> rows)
            throws SQLException {
        String cols = columns.stream().map(col -> quote(col.name())).collect(Collectors.joining(", "));
        String stage = quote("sync_stage_" + Integer.toHexString((t.name() + "|" + cols).hashCode()));
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE IF NOT EXISTS " + stage + " ON COMMIT DELETE ROWS AS SELECT " + cols + " FROM "
                    + quote(t.name()) + " WITH NO DATA");
        }
        // Row by row into the COPY stream: no text of the whole run is ever built.
        org.postgresql.copy.CopyIn in = c.unwrap(org.postgresql.PGConnection.class).getCopyAPI()
                .copyIn("COPY " + stage + " (" + cols + ") FROM STDIN");
        try {
            StringBuilder line = new StringBuilder(256);
            for (java.util.Map<String, Object> row : rows) {
                line.setLength(0);
                PostgresCopyText.appendRow(line, columns, row);
                byte[] bytes = line.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
                in.writeToCopy(bytes, 0, bytes.length);
            }
            in.endCopy();
        } finally {
            if (in.isActive()) {
                in.cancelCopy();
            }
        }
        try (Statement s = c.createStatement()) {
            s.executeUpdate("INSERT INTO " + quote(t.name()) + " (" + cols + ") SELECT " + cols + " FROM " + stage
                    + " " + onConflict(t, columns));
            s.execute("TRUNCATE " + stage);
        }
    }

    @Override
    public String placeholder(ColumnMeta column) {
        return column.kind() == ValueKind.JSON ? "CAST(? AS " + column.typeName() + ")" : "?";
    }

    @Override
    public int loadIsolation() {
        return Connection.TRANSACTION_REPEATABLE_READ;
    }

    @Override
    public String loadLockClause() {
        return "FOR SHARE";
    }
}
