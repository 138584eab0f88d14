package io.syncline.engine.schema;

import io.syncline.engine.dialect.Dialect;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * Syncline's own tables, created in each node's database at start (all names start with {@code sync_}):
 * <ul>
 *   <li>{@code sync_outbox}: captured changes, the "data pull area" (dialect-specific, see {@link Dialect#installOutbox});
 *       on PostgreSQL one row per captured statement, whose rows are in {@code sync_rows_<n>}, registered in
 *       {@code sync_capture}</li>
 *   <li>{@code sync_batch}: sealed outgoing batches per channel</li>
 *   <li>{@code sync_ack}: highest batch acknowledged per destination and channel</li>
 *   <li>{@code sync_incoming}: the exactly-once ledger: last batch applied per source and channel</li>
 *   <li>{@code sync_state}: small key/value state (reader positions, registration, load progress)</li>
 *   <li>{@code sync_trigger_hist}: which capture is installed on which table, with its schema signature</li>
 *   <li>{@code sync_node}: on the hub, the registered sites</li>
 * </ul>
 * Stateless; all methods run in the caller's transaction.
 */
public final class SyncSchema {
    private SyncSchema() {
    }

    /** Creates every table that does not exist yet, and adds columns later versions added to them. Idempotent. */
    public static void install(Connection c, Dialect d) throws SQLException {
        String text = d.textType();
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS sync_state (k VARCHAR(200) PRIMARY KEY, v " + text + ")");
            s.execute("CREATE TABLE IF NOT EXISTS sync_batch (channel VARCHAR(64) NOT NULL, batch_seq BIGINT NOT NULL, "
                    + "snap_from " + text + ", snap_to " + text + ", row_count BIGINT NOT NULL, sealed_at TIMESTAMP WITH TIME ZONE NOT NULL, "
                    + "first_captured TIMESTAMP WITH TIME ZONE, PRIMARY KEY (channel, batch_seq))");
            // Added after the first release: a random token per sealed batch, so a destination can tell this database's
            // batch n from the batch n of a database this one was restored over. Looked up first: on PostgreSQL even an
            // ALTER that finds the column takes the table's exclusive lock, and would queue behind a long transaction.
            TableMeta batch = SchemaReader.tryRead(c, "sync_batch");
            if (batch != null && !batch.byKey().containsKey("token")) {
                s.execute("ALTER TABLE sync_batch ADD COLUMN IF NOT EXISTS token VARCHAR(32)"); // two nodes starting at once
            }
            s.execute("CREATE TABLE IF NOT EXISTS sync_ack (destination VARCHAR(64) NOT NULL, channel VARCHAR(64) NOT NULL, "
                    + "acked_batch BIGINT NOT NULL, acked_at TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY (destination, channel))");
            s.execute("CREATE TABLE IF NOT EXISTS sync_incoming (source VARCHAR(64) NOT NULL, channel VARCHAR(64) NOT NULL, "
                    + "last_batch BIGINT NOT NULL, rows_applied BIGINT NOT NULL, applied_at TIMESTAMP WITH TIME ZONE NOT NULL, "
                    + "PRIMARY KEY (source, channel))");
            s.execute("CREATE TABLE IF NOT EXISTS sync_trigger_hist (table_name VARCHAR(128) PRIMARY KEY, "
                    + "channel VARCHAR(64) NOT NULL, signature " + text + " NOT NULL, installed_at TIMESTAMP WITH TIME ZONE NOT NULL)");
            s.execute("CREATE TABLE IF NOT EXISTS sync_node (node_id VARCHAR(64) PRIMARY KEY, secret_hash VARCHAR(128) NOT NULL, "
                    + "listen_url VARCHAR(500), pull_token VARCHAR(128), incarnation VARCHAR(64), "
                    + "registered_at TIMESTAMP WITH TIME ZONE NOT NULL)");
        }
        d.installOutbox(c);
    }

    /** Reads a value from {@code sync_state}, or null. */
    public static String getState(Connection c, String key) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT v FROM sync_state WHERE k = ?")) {
            ps.setString(1, key);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getString(1) : null;
            }
        }
    }

    /** Writes a value into {@code sync_state}. Callers serialize writers of the same key. */
    public static void putState(Connection c, String key, String value) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_state SET v = ? WHERE k = ?")) {
            ps.setString(1, value);
            ps.setString(2, key);
            if (ps.executeUpdate() > 0) {
                return;
            }
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_state (k, v) VALUES (?, ?)")) {
            ps.setString(1, key);
            ps.setString(2, value);
            ps.executeUpdate();
        }
    }
}
