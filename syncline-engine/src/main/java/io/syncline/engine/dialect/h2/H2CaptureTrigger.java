package io.syncline.engine.dialect.h2;

import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import org.h2.api.Trigger;

/**
 * H2 row trigger that writes each change of a captured table into {@code sync_outbox} on the writer's own
 * connection (same transaction). Installed by {@link H2Dialect#installCapture}; H2 creates one instance per
 * trigger and calls it from the writing session's thread. The table's columns and channel are read lazily
 * on first use, because H2 may initialise triggers while the database is still opening.
 */
public final class H2CaptureTrigger implements Trigger {
    /** The name of the table H2 builds while it runs ALTER TABLE: the table's name, "_COPY_", two numbers. */
    private static final java.util.regex.Pattern COPY = java.util.regex.Pattern.compile("(?i).+_COPY_\\d+_\\d+");
    private String table;
    private String tableKey;
    private volatile List<ColumnMeta> columns;
    private volatile String channel;
    /** The database this trigger's table is in, for waking its capture watches (H2CaptureWatch). */
    private volatile org.h2.engine.Database database;

    @Override
    public void init(Connection conn, String schemaName, String triggerName, String tableName, boolean before, int type) {
        this.table = tableName;
        this.tableKey = tableName.toLowerCase(java.util.Locale.ROOT);
    }

    @Override
    public void fire(Connection conn, Object[] oldRow, Object[] newRow) throws SQLException {
        if (columns == null && !load(conn)) {
            return; // H2 copying the table's rows into its new shape during ALTER TABLE: not a change
        }
        String origin;
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("SELECT " + H2Dialect.ORIGIN_VARIABLE)) {
            origin = rs.next() ? rs.getString(1) : null;
        }
        String op = oldRow == null ? "I" : newRow == null ? "D" : "U";
        try (PreparedStatement ps = conn.prepareStatement(
                "INSERT INTO sync_outbox (channel, table_name, op, old_row, new_row, origin) VALUES (?, ?, ?, ?, ?, ?)")) {
            ps.setString(1, channel);
            ps.setString(2, tableKey);
            ps.setString(3, op);
            ps.setString(4, oldRow == null ? null : CanonicalWriter.row(columns, oldRow, false));
            ps.setString(5, newRow == null ? null : CanonicalWriter.row(columns, newRow, false));
            ps.setString(6, origin);
            ps.executeUpdate();
        }
        H2CaptureWatch.captured(database);
    }

    /**
     * Reads the table's columns and channel; false when the table does not exist under the trigger's table name. That is
     * the copy H2 builds during {@code ALTER TABLE} (named like {@code PRODUCT_COPY_5_0}), whose rows are the table's own
     * rows being moved, not changes; H2 creates the trigger again on the altered table.
     */
    private synchronized boolean load(Connection conn) throws SQLException {
        if (columns != null) {
            return true;
        }
        if (COPY.matcher(table).matches() && SchemaReader.tryRead(conn, table) == null) {
            return false;
        }
        TableMeta meta = SchemaReader.read(conn, table); // anything else that cannot be read fails the write, loudly
        try (PreparedStatement ps = conn.prepareStatement("SELECT channel FROM sync_trigger_hist WHERE table_name = ?")) {
            ps.setString(1, meta.name());
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    throw new SQLException("Syncline capture trigger on " + table + " has no entry in sync_trigger_hist");
                }
                channel = rs.getString(1);
            }
        }
        database = H2CaptureWatch.database(conn);
        columns = meta.columns();
        return true;
    }

    @Override
    public void close() {
    }

    @Override
    public void remove() {
    }
}
