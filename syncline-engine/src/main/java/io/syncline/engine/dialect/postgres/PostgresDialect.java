package io.syncline.engine.dialect.postgres;

import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.outbox.OutboxRowSink;
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
 * Capture: statement-level triggers with transition tables write one header row per statement into sync_outbox
 * (with the writing transaction's id and the origin tag read from the transaction-local setting syncline.origin)
 * and the changed rows, typed, into the table's row table (see PostgresCapture).
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
                    + "captured_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), capture_id INT, row_count INT NOT NULL DEFAULT 1)");
            // capture_id: the row table holding the statement's rows (PostgresCapture); NULL for a row carried as JSON
            // here (initial load). row_count: rows of the statement. Added to outboxes created before they existed.
            // Only when missing: ALTER TABLE takes a lock that every writer's capture would queue behind.
            try (ResultSet rs = s.executeQuery("SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('sync_outbox') AND attname = 'capture_id'")) {
                if (!rs.next()) {
                    s.execute("ALTER TABLE sync_outbox ADD COLUMN capture_id INT, ADD COLUMN row_count INT NOT NULL DEFAULT 1");
                }
            }
            PostgresCapture.installRegistry(s);
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
    public io.syncline.engine.capture.CaptureWatch watchCaptures(io.syncline.engine.capture.CaptureWatch.ConnectionSource source,
            String name, Runnable onChange) {
        return new PostgresCaptureWatch(source, name, onChange);
    }

    @Override
    public void relaxCommit(Connection c) throws SQLException {
        try (java.sql.Statement s = c.createStatement()) {
            s.execute("SET LOCAL synchronous_commit TO OFF");
        }
    }

    @Override
    public String captureVersion() {
        return "pg-rows-3"; // 2: TRUNCATE captured as deletes; 3: NOTIFY syncline_capture
    }

    @Override
    public void installCapture(Connection c, String channel, TableMeta t) throws SQLException {
        try (Statement s = c.createStatement()) {
            // Replacing triggers locks the table: behind a long transaction, give up (the next check retries) rather
            // than hold the site's tick and queue the application's own statements behind the lock request.
            s.execute("SET LOCAL lock_timeout = '5s'");
        }
        dropCapture(c, t);
        PostgresCapture.install(c, channel, t);
    }

    @Override
    public void dropCapture(Connection c, TableMeta t) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("DROP TRIGGER IF EXISTS sync_capture ON " + quote(t.name()));
            s.execute("DROP FUNCTION IF EXISTS " + quote("sync_cap_" + t.name()) + "()");
            for (String kind : new String[] {"ins", "upd", "del", "trunc"}) {
                s.execute("DROP TRIGGER IF EXISTS " + quote("sync_capture_" + kind) + " ON " + quote(t.name()));
                s.execute("DROP FUNCTION IF EXISTS " + quote("sync_cap_" + kind + "_" + t.name()) + "()");
            }
        }
    }

    @Override
    public Optional<SealedBatch> sealBatch(Connection c, String channel, long sequence, Instant now) throws SQLException {
        String current = currentSnapshot(c);
        String previous = lastSealedSnapshot(c, channel);
        if (Long.parseLong(previous.substring(0, previous.indexOf(':'))) > Long.parseLong(current.split(":")[1])) {
            // Transaction ids went backwards: this database was restored into a new cluster. Windows computed
            // against the old snapshot would be empty and silently skip everything committed since.
            throw new io.syncline.engine.outbox.DivergedException("transaction ids went backwards (last batch ended at snapshot "
                    + previous + ", the database is now at " + current + "): the database was restored or replaced");
        }
        long count;
        java.time.OffsetDateTime first;
        try (PreparedStatement ps = c.prepareStatement("SELECT COALESCE(sum(o.row_count), 0), min(o.captured_at) FROM sync_outbox o "
                + "WHERE o.channel = ? AND " + window(previous, current))) {
            ps.setString(1, channel);
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

    @Override
    public boolean beginSealTransaction(Connection c) throws SQLException {
        if (c.getAutoCommit() || !c.isWrapperFor(org.postgresql.core.BaseConnection.class)
                || c.unwrap(org.postgresql.core.BaseConnection.class).getTransactionState() != org.postgresql.core.TransactionState.IDLE) {
            return false;
        }
        try (Statement s = c.createStatement()) {
            s.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); // the driver's BEGIN comes first
        }
        return true;
    }

    @Override
    public boolean exportsSnapshots() {
        return true;
    }

    @Override
    public Optional<String> exportSnapshot(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_export_snapshot()")) {
            rs.next();
            return Optional.of(rs.getString(1));
        }
    }

    @Override
    public void importSnapshot(Connection c, String snapshot) throws SQLException {
        if (!snapshot.matches("[0-9A-Fa-f-]+")) {
            throw new IllegalArgumentException("not a PostgreSQL snapshot id: " + snapshot);
        }
        c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
        try (Statement s = c.createStatement()) {
            s.execute("SET TRANSACTION SNAPSHOT '" + snapshot + "'");
        }
    }

    @Override
    public void streamBatch(Connection c, SealedBatch b, String destination, OutboxRowSink sink)
            throws SQLException, java.io.IOException {
        PostgresBatchReader.stream(c, b, destination, window(b.from(), b.to()), sink);
    }

    @Override
    public void streamUnsealed(Connection c, String channel, OutboxRowSink sink) throws SQLException, java.io.IOException {
        String current = currentSnapshot(c);
        String previous = lastSealedSnapshot(c, channel);
        if (!previous.equals(current)) { // in a REPEATABLE READ transaction that sealed, they are the same
            PostgresBatchReader.stream(c, new SealedBatch(channel, 0, previous, current, 0, Instant.EPOCH, null), "",
                    window(previous, current), sink);
        }
    }

    @Override
    public void lockTables(Connection c, List<String> tables) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("LOCK TABLE " + String.join(", ", tables) + " IN EXCLUSIVE MODE"); // readers go on; writers wait
        }
    }

    @Override
    public void limitLockWait(Connection c, long millis) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("SET LOCAL lock_timeout = '" + millis + "ms'");
        }
    }

    @Override
    public String insertUnlessTaken(String insert) {
        return insert + " ON CONFLICT DO NOTHING";
    }

    private static String currentSnapshot(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_current_snapshot()::text")) {
            rs.next();
            return rs.getString(1);
        }
    }

    /** The snapshot the last batch of {@code channel} was sealed with (the empty one before the first). */
    private static String lastSealedSnapshot(Connection c, String channel) throws SQLException {
        String previous = SyncSchema.getState(c, SNAPSHOT_KEY + channel);
        return previous == null ? EMPTY_SNAPSHOT : previous;
    }

    /*
     * The outbox and the row tables are queues: they grow by thousands of rows between two autovacuum analyzes, so
     * their statistics are always stale, and the planner, seeing a small table and an index of unknown correlation,
     * picks a sequential scan, which reads the whole backlog for every batch. The single-table reads and deletes that
     * follow this setting, in its transaction, use their BRIN index whenever they can.
     */
    static final String INDEXES_ONLY = "SET LOCAL enable_seqscan = off";

    private static final java.util.regex.Pattern SNAPSHOT = java.util.regex.Pattern.compile("\\d+:\\d+:[\\d,]*");

    /** A snapshot as an SQL literal, after checking it is one (they come from this node's sync_state). */
    private static String snapshot(String text) {
        if (!SNAPSHOT.matcher(text).matches()) {
            throw new IllegalStateException("not a pg_snapshot: '" + text + "'");
        }
        return "CAST('" + text + "' AS pg_snapshot)";
    }

    /** Outbox rows {@code o} of transactions visible in snapshot {@code to} (and not in {@code from}, if given). */
    private static String window(String from, String to) {
        String visible = "o.txid < CAST(CAST(pg_snapshot_xmax(" + snapshot(to) + ") AS text) AS bigint) AND pg_visible_in_snapshot("
                + "CAST(CAST(o.txid AS text) AS xid8), " + snapshot(to) + ")";
        if (from == null) {
            return visible;
        }
        return "o.txid >= CAST(CAST(pg_snapshot_xmin(" + snapshot(from) + ") AS text) AS bigint) AND " + visible
                + " AND NOT pg_visible_in_snapshot(CAST(CAST(o.txid AS text) AS xid8), " + snapshot(from) + ")";
    }

    /*
     * Headers first, then rows. A row table's rows can go once no visible header of theirs is left: every row
     * numbered below the lowest header still present (and not above the highest purged) belongs to a purged
     * statement, or to a transaction this snapshot cannot see, whose rows it cannot see either. One statement for all
     * row tables, so the lowest headers and the rows are judged in the same snapshot; no join, so no plan to go wrong.
     */
    @Override
    public int purge(Connection c, SealedBatch upTo) throws SQLException {
        String purged = "o.channel = " + PostgresCapture.literal(upTo.channel()) + " AND " + window(null, upTo.to());
        try (Statement s = c.createStatement()) {
            int rows;
            long high;
            try (ResultSet rs = s.executeQuery("WITH gone AS (DELETE FROM sync_outbox o WHERE " + purged
                    + " RETURNING o.row_count, o.seq) SELECT COALESCE(sum(row_count), 0), COALESCE(max(seq), 0) FROM gone")) {
                rs.next();
                rows = rs.getInt(1);
                high = rs.getLong(2);
            }
            List<PostgresCapture.Generation> generations = PostgresCapture.ofChannel(c, upTo.channel());
            if (high > 0 && !generations.isEmpty()) {
                // One statement: one scan of the outbox for the lowest header left per row table, and the deletes
                // judged in the same snapshot.
                StringBuilder sql = new StringBuilder("WITH low AS (SELECT capture_id, min(seq) AS seq FROM sync_outbox "
                        + "WHERE capture_id IS NOT NULL GROUP BY capture_id)");
                for (PostgresCapture.Generation g : generations) {
                    sql.append(", d").append(g.id()).append(" AS (DELETE FROM ").append(g.rowTable()).append(" WHERE stmt <= ").append(high)
                            .append(" AND stmt < COALESCE((SELECT seq FROM low WHERE capture_id = ").append(g.id()).append("), ")
                            .append(high + 1).append("))");
                }
                sql.append(" SELECT 1");
                s.execute(INDEXES_ONLY);
                s.execute(sql.toString());
                s.execute("SET LOCAL enable_seqscan = on");
            }
            for (PostgresCapture.Generation g : generations) {
                PostgresCapture.dropIfEmpty(c, g);
            }
            return rows;
        }
    }

    @Override
    public void discardCaptured(Connection c, String tableKey) throws SQLException {
        Dialect.super.discardCaptured(c, tableKey);
        PostgresCapture.discard(c, tableKey);
    }

    @Override
    public void resetOutbox(Connection c) throws SQLException {
        PostgresCapture.reset(c); // sync_outbox too, in the same statement as the row tables
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
     *
     * Rows the source inserted are first copied straight into the target, inside a savepoint: their keys are new there
     * unless the target diverged, and a plain COPY costs about half of staging plus ON CONFLICT. A key that exists
     * after all (unique violation) rolls back to the savepoint and takes the upsert path.
     */
    @Override
    public boolean bulkUpsert(Connection c, TableMeta t, List<ColumnMeta> columns, java.util.Collection<java.util.Map<String, Object>> rows,
                              boolean inserted) throws SQLException {
        String cols = columns.stream().map(col -> quote(col.name())).collect(Collectors.joining(", "));
        if (rows.size() < FEW_ROWS) {
            upsertFew(c, t, cols, columns, rows);
            return false;
        }
        if (inserted) {
            java.sql.Savepoint before = c.setSavepoint();
            try {
                copy(c, quote(t.name()), cols, columns, rows);
                c.releaseSavepoint(before);
                return true;
            } catch (SQLException e) {
                if (!"23505".equals(e.getSQLState())) {
                    throw e;
                }
                c.rollback(before);
            }
        }
        String stage = quote("sync_stage_" + Integer.toHexString((t.name() + "|" + cols).hashCode()));
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE IF NOT EXISTS " + stage + " ON COMMIT DELETE ROWS AS SELECT " + cols + " FROM "
                    + quote(t.name()) + " WITH NO DATA");
        }
        copy(c, stage, cols, columns, rows);
        try (Statement s = c.createStatement()) {
            s.executeUpdate("INSERT INTO " + quote(t.name()) + " (" + cols + ") SELECT " + cols + " FROM " + stage
                    + " " + onConflict(t, columns));
            s.execute("TRUNCATE " + stage);
        }
        return false;
    }

    /** Runs of fewer rows than this are upserted with one batched statement: no staging table, COPY or TRUNCATE. */
    private static final int FEW_ROWS = 32;

    /**
     * Upserts a few rows with one batched {@code INSERT ... ON CONFLICT}. Each value is bound as text of unspecified
     * type, so PostgreSQL reads it with the column type's input function, as COPY does (enums, arrays, intervals ...).
     */
    private void upsertFew(Connection c, TableMeta t, String cols, List<ColumnMeta> columns,
                           java.util.Collection<java.util.Map<String, Object>> rows) throws SQLException {
        String values = columns.stream().map(col -> "?").collect(Collectors.joining(", "));
        try (java.sql.PreparedStatement ps = c.prepareStatement("INSERT INTO " + quote(t.name()) + " (" + cols + ") VALUES (" + values
                + ") " + onConflict(t, columns))) {
            for (java.util.Map<String, Object> row : rows) {
                int i = 1;
                for (ColumnMeta col : columns) {
                    Object v = row.containsKey(col.key()) ? row.get(col.key()) : row.get(col.name());
                    ps.setObject(i++, PostgresCopyText.text(col, v), java.sql.Types.OTHER);
                }
                ps.addBatch();
            }
            ps.executeBatch();
        }
    }

    /** Text sent to COPY in pieces of about this many characters: the whole run's text is never built. */
    private static final int COPY_CHUNK = 1 << 15;

    /** Streams {@code rows} into {@code table} with COPY. */
    private static void copy(Connection c, String table, String cols, List<ColumnMeta> columns,
                             java.util.Collection<java.util.Map<String, Object>> rows) throws SQLException {
        org.postgresql.copy.CopyIn in = c.unwrap(org.postgresql.PGConnection.class).getCopyAPI()
                .copyIn("COPY " + table + " (" + cols + ") FROM STDIN");
        try {
            StringBuilder text = new StringBuilder(COPY_CHUNK + 1024);
            for (java.util.Map<String, Object> row : rows) {
                PostgresCopyText.appendRow(text, columns, row);
                if (text.length() >= COPY_CHUNK) {
                    writeToCopy(in, text);
                }
            }
            writeToCopy(in, text);
            in.endCopy();
        } finally {
            if (in.isActive()) {
                in.cancelCopy();
            }
        }
    }

    private static void writeToCopy(org.postgresql.copy.CopyIn in, StringBuilder text) throws SQLException {
        if (text.isEmpty()) {
            return;
        }
        byte[] bytes = text.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
        in.writeToCopy(bytes, 0, bytes.length);
        text.setLength(0);
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
