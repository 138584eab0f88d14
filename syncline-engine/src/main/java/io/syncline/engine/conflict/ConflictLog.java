package io.syncline.engine.conflict;

import io.syncline.engine.codec.Json;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The hub's record of two-way conflicts ({@code sync_conflict}) and of the stamp and writer of each row's last version
 * that came from a site ({@code sync_row_stamp}). Stateless; every method runs in the caller's transaction.
 */
public final class ConflictLog {
    /** A conflict settled by its channel's rule. */
    public static final String RESOLVED = "resolved";
    /** A conflict of policy manual still waiting for an operator; the row flows with the provisional winner meanwhile. */
    public static final String OPEN = "open";
    /** A conflict an operator settled. */
    public static final String SETTLED = "settled";

    private ConflictLog() {
    }

    /**
     * One row of the conflict table. Rows are canonical JSON text (null where that side had no row).
     *
     * @param winner whose version the row took: a node id, {@code merge}, {@code custom}, or for a settled conflict what the
     *               operator chose
     */
    public record Entry(long id, String channel, String table, String rowKey, String site, long batch, String kind, String policy,
                        String winner, String status, String baseRow, String siteRow, String hubRow, String resultRow, long siteStamp,
                        long hubStamp, Instant detectedAt, String settledBy, Instant settledAt) {
    }

    /**
     * The stamp and writer of a row's last version written at the hub for a site, by a conflict's outcome or by an
     * operator, and the hash of that version as the hub wrote it.
     */
    public record Stamp(long stamp, String writer, String rowHash) {
    }

    /** Records a conflict; returns its id. */
    public static long record(Connection c, Entry e) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_conflict (channel, table_name, row_key, site, batch_seq, kind, "
                + "policy, winner, status, base_row, site_row, hub_row, result_row, site_stamp, hub_stamp, detected_at) "
                + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new String[] {"id"})) {
            ps.setString(1, e.channel());
            ps.setString(2, e.table());
            ps.setString(3, e.rowKey());
            ps.setString(4, e.site());
            ps.setLong(5, e.batch());
            ps.setString(6, e.kind());
            ps.setString(7, e.policy());
            ps.setString(8, e.winner());
            ps.setString(9, e.status());
            ps.setString(10, e.baseRow());
            ps.setString(11, e.siteRow());
            ps.setString(12, e.hubRow());
            ps.setString(13, e.resultRow());
            ps.setLong(14, e.siteStamp());
            ps.setLong(15, e.hubStamp());
            ps.setObject(16, OffsetDateTime.ofInstant(e.detectedAt(), ZoneOffset.UTC));
            ps.executeUpdate();
            try (ResultSet rs = ps.getGeneratedKeys()) {
                return rs.next() ? rs.getLong(1) : -1;
            }
        }
    }

    /** Conflicts newest first, at most {@code limit}; only open ones when {@code openOnly}. */
    public static List<Entry> list(Connection c, boolean openOnly, int limit) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(SELECT + (openOnly ? " WHERE status = 'open'" : "") + " ORDER BY id DESC")) {
            ps.setMaxRows(limit);
            return read(ps);
        }
    }

    /** One conflict, or null. */
    public static Entry get(Connection c, long id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(SELECT + " WHERE id = ?")) {
            ps.setLong(1, id);
            List<Entry> out = read(ps);
            return out.isEmpty() ? null : out.getFirst();
        }
    }

    /** Locks one conflict's row for settling, or returns null when there is none. */
    public static Entry lock(Connection c, long id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(SELECT + " WHERE id = ? FOR UPDATE")) {
            ps.setLong(1, id);
            List<Entry> out = read(ps);
            return out.isEmpty() ? null : out.getFirst();
        }
    }

    /** Marks a conflict settled by an operator, with the row chosen (null: deleted) and what it was ({@code site}, ...). */
    public static void settle(Connection c, long id, String choice, Map<String, Object> row, String by, Instant at) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_conflict SET status = ?, winner = ?, result_row = ?, settled_by = ?, "
                + "settled_at = ? WHERE id = ?")) {
            ps.setString(1, SETTLED);
            ps.setString(2, choice);
            ps.setString(3, row == null ? null : Json.write(row));
            ps.setString(4, by);
            ps.setObject(5, OffsetDateTime.ofInstant(at, ZoneOffset.UTC));
            ps.setLong(6, id);
            ps.executeUpdate();
        }
    }

    /** Conflicts recorded, and how many of them are open. */
    public record Counts(long total, long open) {
    }

    public static Counts counts(Connection c) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT COUNT(*), SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) FROM sync_conflict");
             ResultSet rs = ps.executeQuery()) {
            rs.next();
            return new Counts(rs.getLong(1), rs.getLong(2));
        }
    }

    /** A row key as stored in sync_row_stamp: itself, or a hash of it when it is longer than the column. */
    private static String stampKey(String rowKey) {
        return rowKey.length() <= 1000 ? rowKey : "sha256:" + Rows.hash(java.util.Map.of("key", rowKey));
    }

    /** The stamp of a row's last version from a site, or null. */
    public static Stamp stamp(Connection c, String table, String rowKey) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT stamp, writer, row_hash FROM sync_row_stamp WHERE table_name = ? AND row_key = ?")) {
            ps.setString(1, table);
            ps.setString(2, stampKey(rowKey));
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? new Stamp(rs.getLong(1), rs.getString(2), rs.getString(3)) : null;
            }
        }
    }

    /**
     * Locks the key {@code rowKey} of {@code table} for the caller's transaction, whether a row is at that key or not: its
     * {@code sync_row_stamp} entry, created without a stamp (writer and hash empty, which match no version) when it has
     * none. The hub takes it before it reads a two-way row, so that two batches touching one key apply one after the
     * other even when the first finds no row there, and the hub's order of their changes is the order they took effect.
     */
    public static void lockKey(Connection c, io.syncline.engine.dialect.Dialect dialect, String table, String rowKey) throws SQLException {
        String key = stampKey(rowKey);
        for (int attempt = 0; attempt < 2; attempt++) {
            try (PreparedStatement ps = c.prepareStatement("SELECT 1 FROM sync_row_stamp WHERE table_name = ? AND row_key = ? FOR UPDATE")) {
                ps.setString(1, table);
                ps.setString(2, key);
                try (ResultSet rs = ps.executeQuery()) {
                    if (rs.next()) {
                        return;
                    }
                }
            }
            // No savepoint: PostgreSQL inserts nothing when another transaction has the key (after waiting for it),
            // H2 reports the duplicate without ending the transaction. Either way the entry is then there to lock.
            try (PreparedStatement ps = c.prepareStatement(dialect.insertUnlessTaken("INSERT INTO sync_row_stamp (table_name, row_key, "
                    + "stamp, writer, row_hash) VALUES (?, ?, 0, '', '')"))) {
                ps.setString(1, table);
                ps.setString(2, key);
                if (ps.executeUpdate() > 0) {
                    return; // the new entry is this transaction's until it ends
                }
            } catch (SQLException e) {
                if (!"23505".equals(e.getSQLState()) && !"23001".equals(e.getSQLState())) {
                    throw e;
                }
            }
        }
        throw new SQLException("could not lock key " + rowKey + " of " + table + " in sync_row_stamp", "40001");
    }

    /** Records the stamp of a row's version (callers hold the row's lock, so writers of one key are serialized). */
    public static void putStamp(Connection c, String table, String rowKey, Stamp s) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_row_stamp SET stamp = ?, writer = ?, row_hash = ? WHERE table_name = ? AND row_key = ?")) {
            ps.setLong(1, s.stamp());
            ps.setString(2, s.writer());
            ps.setString(3, s.rowHash());
            ps.setString(4, table);
            ps.setString(5, stampKey(rowKey));
            if (ps.executeUpdate() > 0) {
                return;
            }
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_row_stamp (table_name, row_key, stamp, writer, row_hash) VALUES (?, ?, ?, ?, ?)")) {
            ps.setString(1, table);
            ps.setString(2, stampKey(rowKey));
            ps.setLong(3, s.stamp());
            ps.setString(4, s.writer());
            ps.setString(5, s.rowHash());
            ps.executeUpdate();
        }
    }

    /** The highest stamp recorded, for the hub's clock to start above after a restart (0 if none). */
    public static long lastStamp(Connection c) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT MAX(stamp) FROM sync_row_stamp"); ResultSet rs = ps.executeQuery()) {
            return rs.next() ? rs.getLong(1) : 0;
        }
    }

    private static final String SELECT = "SELECT id, channel, table_name, row_key, site, batch_seq, kind, policy, winner, status, base_row, "
            + "site_row, hub_row, result_row, site_stamp, hub_stamp, detected_at, settled_by, settled_at FROM sync_conflict";

    private static List<Entry> read(PreparedStatement ps) throws SQLException {
        List<Entry> out = new ArrayList<>();
        try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                OffsetDateTime settled = rs.getObject(19, OffsetDateTime.class);
                out.add(new Entry(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getString(4), rs.getString(5), rs.getLong(6),
                        rs.getString(7), rs.getString(8), rs.getString(9), rs.getString(10), rs.getString(11), rs.getString(12),
                        rs.getString(13), rs.getString(14), rs.getLong(15), rs.getLong(16), rs.getObject(17, OffsetDateTime.class).toInstant(),
                        rs.getString(18), settled == null ? null : settled.toInstant()));
            }
        }
        return out;
    }
}
