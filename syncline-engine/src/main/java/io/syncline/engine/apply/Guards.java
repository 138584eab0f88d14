package io.syncline.engine.apply;

import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.Rows;
import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.outbox.OutboxRowSink;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.TableMeta;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;

/*
 * A site's guards on the rows of its two-way channels (docs/conflicts.md, "A change never comes back").
 *
 * The hub does not send a site its own changes back. So a site must not let an older change of the hub's overwrite a
 * change of its own that the hub has not taken in yet: in the hub's order, the site's change comes after it, and the
 * hub's copy of the row ends with the site's version (or with a conflict's outcome, which the hub sends to every site).
 *
 * - When the site seals a batch n of a two-way channel, every row key it changes is guarded by n (sync_guard, in the
 *   seal's transaction, so guards and batches never disagree, whoever seals: the site's tick, a pull, or an apply).
 * - The hub's stream to the site carries, where each of the site's batches took effect at the hub, a mark of that batch
 *   (Change.Mark) instead of the site's changes. A mark of n releases every guard up to n. A copy (reload) starts with a
 *   mark of the last batch of the site the copy holds.
 * - The hub's changes to a guarded row are skipped: they come before the site's own change in the hub's order.
 * - A site applies a batch of the hub after sealing, in the same transaction, what it committed before, and before
 *   committing checks that nothing it committed meanwhile was overwritten (BatchApplier).
 * - A guarded row the site must remove to make room for the hub's rows is asked for again (op K, in the site's next
 *   batch, guarded by it); the hub answers after that batch's mark.
 *
 * Row keys are the canonical JSON of the primary key (TwoWayApply.keyJson), hashed when longer than the column. Stateless
 * but for a cache of primary keys; thread-safe.
 */
public final class Guards implements OutboxStore.SealListener {
    private final Dialect dialect;
    private final Predicate<String> twoWay;
    private final Map<String, TableMeta> tables = new ConcurrentHashMap<>();

    /** {@code twoWay}: whether a channel (by name) is a two-way channel; only their batches are guarded. */
    public Guards(Dialect dialect, Predicate<String> twoWay) {
        this.dialect = dialect;
        this.twoWay = twoWay;
    }

    /** Guards every row key that {@code batch} changes by its number; in the seal's transaction. */
    @Override
    public void sealed(Connection c, SealedBatch batch) throws SQLException {
        if (!twoWay.test(batch.channel())) {
            return;
        }
        Map<String, String> keys = new LinkedHashMap<>(); // "table key" -> key, at most CHUNK, then written
        try {
            // Destination "": no origin left out here; changes that came from elsewhere are skipped below.
            dialect.streamBatch(c, batch, "", (op, table, oldRow, newRow, capturedAt, origin) -> {
                if (origin != null || "M".equals(op)) {
                    return;
                }
                try {
                    TableMeta t = table(c, table);
                    for (OutboxRowSink.Row row : new OutboxRowSink.Row[] {oldRow, newRow}) {
                        if (row != null) {
                            String key = storedKey(TwoWayApply.keyJson(t, Json.parseRow(row.text())));
                            keys.put(t.name().toLowerCase(Locale.ROOT) + " " + key, key);
                        }
                    }
                    if (keys.size() >= CHUNK) {
                        guard(c, batch, keys);
                    }
                } catch (SQLException e) {
                    throw new IOException(e);
                }
            });
            guard(c, batch, keys);
        } catch (IOException e) {
            if (e.getCause() instanceof SQLException s) {
                throw s;
            }
            throw new UncheckedIOException(e);
        }
    }

    private static final int CHUNK = 500;

    /** Guards {@code keys} ("table key" to key) by {@code batch}, in two JDBC batches, and forgets them. */
    private static void guard(Connection c, SealedBatch batch, Map<String, String> keys) throws SQLException {
        if (keys.isEmpty()) {
            return;
        }
        java.util.List<Map.Entry<String, String>> entries = new java.util.ArrayList<>(keys.entrySet());
        int[] updated;
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_guard SET batch_seq = ?, channel = ? WHERE table_name = ? AND row_key = ?")) {
            for (Map.Entry<String, String> e : entries) {
                ps.setLong(1, batch.sequence());
                ps.setString(2, batch.channel());
                ps.setString(3, e.getKey().substring(0, e.getKey().indexOf(' ')));
                ps.setString(4, e.getValue());
                ps.addBatch();
            }
            updated = ps.executeBatch();
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_guard (table_name, row_key, channel, batch_seq) VALUES (?, ?, ?, ?)")) {
            boolean any = false;
            for (int i = 0; i < entries.size(); i++) {
                if (updated[i] == 0) {
                    Map.Entry<String, String> e = entries.get(i);
                    ps.setString(1, e.getKey().substring(0, e.getKey().indexOf(' ')));
                    ps.setString(2, e.getValue());
                    ps.setString(3, batch.channel());
                    ps.setLong(4, batch.sequence());
                    ps.addBatch();
                    any = true;
                }
            }
            if (any) {
                ps.executeBatch();
            }
        }
        keys.clear();
    }

    /** Whether any row of {@code channel} is guarded. */
    boolean any(Connection c, String channel) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT 1 FROM sync_guard WHERE channel = ?")) {
            ps.setString(1, channel);
            ps.setMaxRows(1);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next();
            }
        }
    }

    /** Whether the row of {@code t} with {@code row}'s primary key is guarded. */
    boolean guarded(Connection c, TableMeta t, Map<String, Object> row) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT 1 FROM sync_guard WHERE table_name = ? AND row_key = ?")) {
            ps.setString(1, t.name().toLowerCase(Locale.ROOT));
            ps.setString(2, storedKey(TwoWayApply.keyJson(t, row)));
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next();
            }
        }
    }

    /** Releases the guards of {@code channel} up to batch {@code upTo}: the hub has taken in those batches. */
    void release(Connection c, String channel, long upTo) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_guard WHERE channel = ? AND batch_seq <= ?")) {
            ps.setString(1, channel);
            ps.setLong(2, upTo);
            ps.executeUpdate();
        }
    }

    /** Rows of {@code channel} guarded now, for status and tests. */
    public static long count(Connection c, String channel) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT COUNT(*) FROM sync_guard WHERE channel = ?")) {
            ps.setString(1, channel);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    private TableMeta table(Connection c, String table) throws SQLException {
        String name = table.toLowerCase(Locale.ROOT);
        TableMeta t = tables.get(name);
        if (t == null) {
            t = SchemaReader.tryRead(c, table);
            if (t == null || t.primaryKey().isEmpty()) {
                throw new SQLException("two-way table '" + table + "' is missing or has no primary key: its changes cannot be guarded");
            }
            tables.put(name, t);
        }
        return t;
    }

    private static String storedKey(String key) {
        return key.length() <= 1000 ? key : "sha256:" + Rows.hash(Map.of("key", key));
    }

    /** The primary key of {@code row} in {@code t}, as a canonical row (for messages). */
    static Map<String, Object> keyOf(TableMeta t, Map<String, Object> row) {
        Map<String, Object> key = new LinkedHashMap<>();
        for (ColumnMeta col : t.primaryKey()) {
            key.put(col.key(), row.get(col.key()));
        }
        return key;
    }
}
