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
 * Capture: a PL/pgSQL row trigger per table writes the new row (and for updates and deletes the old row) as
 * JSON into sync_outbox, with the writing transaction's id (pg_current_xact_id(), an xid8 that never wraps)
 * and the origin tag read from the transaction-local setting syncline.origin.
 *
 * Reading without gaps (the PgQ method): a batch is the set of outbox rows whose transaction is visible in
 * this batch's snapshot and was not visible in the previous batch's snapshot. Snapshots are taken with
 * pg_current_snapshot() inside a REPEATABLE READ transaction, so the rows counted are exactly the rows the
 * snapshot describes. A transaction that took a low sequence number but commits late is simply invisible
 * in the snapshot that was current while it ran, and visible in a later one: it lands in a later batch,
 * never skipped. Inside a batch rows are ordered by seq; two changes to the same row are always in commit
 * order, because the second writer had to wait for the first one's row lock before its trigger ran.
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
                    + "seq BIGSERIAL PRIMARY KEY, "
                    + "txid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
                    + "channel VARCHAR(64) NOT NULL, table_name VARCHAR(128) NOT NULL, op CHAR(1) NOT NULL, "
                    + "old_row TEXT, new_row TEXT, origin VARCHAR(64), "
                    + "captured_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())");
            s.execute("CREATE INDEX IF NOT EXISTS sync_outbox_txid ON sync_outbox (txid)");
        }
    }

    @Override
    public void installCapture(Connection c, String channel, TableMeta t) throws SQLException {
        String fn = quote("sync_cap_" + t.name());
        String lit = "'" + channel + "', '" + t.name().toLowerCase(java.util.Locale.ROOT).replace("'", "''") + "'";
        String body = "DECLARE o varchar := NULLIF(current_setting('syncline.origin', true), ''); BEGIN "
                + "IF TG_OP = 'INSERT' THEN "
                + "INSERT INTO sync_outbox (channel, table_name, op, new_row, origin) VALUES (" + lit + ", 'I', "
                + encode(t, "NEW") + ", o); "
                + "ELSIF TG_OP = 'UPDATE' THEN "
                + "INSERT INTO sync_outbox (channel, table_name, op, old_row, new_row, origin) VALUES (" + lit + ", 'U', "
                + encode(t, "OLD") + ", " + encode(t, "NEW") + ", o); "
                + "ELSE "
                + "INSERT INTO sync_outbox (channel, table_name, op, old_row, origin) VALUES (" + lit + ", 'D', "
                + encode(t, "OLD") + ", o); "
                + "END IF; RETURN NULL; END";
        try (Statement s = c.createStatement()) {
            s.execute("CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $syncline$" + body + "$syncline$");
            s.execute("DROP TRIGGER IF EXISTS sync_capture ON " + quote(t.name()));
            s.execute("CREATE TRIGGER sync_capture AFTER INSERT OR UPDATE OR DELETE ON " + quote(t.name())
                    + " FOR EACH ROW EXECUTE FUNCTION " + fn + "()");
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

    private static final String WINDOW = "txid >= pg_snapshot_xmin(CAST(? AS pg_snapshot)) AND txid < pg_snapshot_xmax(CAST(? AS pg_snapshot)) "
            + "AND NOT pg_visible_in_snapshot(txid, CAST(? AS pg_snapshot)) AND pg_visible_in_snapshot(txid, CAST(? AS pg_snapshot))";

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
                + "AND txid < pg_snapshot_xmax(CAST(? AS pg_snapshot)) AND pg_visible_in_snapshot(txid, CAST(? AS pg_snapshot))")) {
            ps.setString(1, upTo.channel());
            ps.setString(2, upTo.to());
            ps.setString(3, upTo.to());
            return ps.executeUpdate();
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
        String pk = t.primaryKey().stream().map(col -> quote(col.name())).collect(Collectors.joining(", "));
        List<ColumnMeta> nonKey = columns.stream().filter(col -> !t.primaryKey().contains(col)).toList();
        String action = nonKey.isEmpty() ? "DO NOTHING" : "DO UPDATE SET " + nonKey.stream()
                .map(col -> quote(col.name()) + " = EXCLUDED." + quote(col.name())).collect(Collectors.joining(", "));
        return "INSERT INTO " + quote(t.name()) + " (" + cols + ") VALUES (" + values + ") ON CONFLICT (" + pk + ") " + action;
    }

    @Override
    public String placeholder(ColumnMeta column) {
        return column.kind() == ValueKind.JSON ? "CAST(? AS " + column.typeName() + ")" : "?";
    }

    @Override
    public String loadLockClause() {
        return "FOR SHARE";
    }
}
