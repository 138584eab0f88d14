package io.syncline.engine.load;

import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.codec.CanonicalReader;
import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.codec.Json;
import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * Initial load: sends a table's existing rows through the outbox, in primary-key chunks.
 *
 * Each chunk is one transaction that reads the next rows in key order with a row lock (FOR SHARE on
 * PostgreSQL), writes them into sync_outbox as RELOAD (upsert) changes, and records the last key reached
 * in sync_state. Because the rows are locked before they are copied, a concurrent update of a chunk row
 * either committed before (and the chunk copies its new value, after it in the outbox) or waits until the
 * chunk commits (and its own change comes after the chunk). On PostgreSQL the chunk runs at REPEATABLE READ: at
 * READ COMMITTED a locked row that another transaction just updated would be returned in its new version, whose
 * key may lie far ahead, and the load would continue from there and skip the rows in between; at REPEATABLE
 * READ that case is a serialization failure instead, and the chunk is simply copied again. So captured changes
 * and load chunks interleave
 * in an order that converges. A restart resumes after the last committed chunk; the outbox keeps each
 * chunk until the hub acknowledges it, so memory stays bounded by one chunk.
 */
public final class InitialLoader {
    private static final Logger LOG = LoggerFactory.getLogger(InitialLoader.class);
    private final Dialect dialect;
    private final int chunkSize;

    public InitialLoader(Dialect dialect, int chunkSize) {
        if (chunkSize < 1) {
            throw new IllegalArgumentException("chunkSize must be >= 1, was " + chunkSize);
        }
        this.dialect = dialect;
        this.chunkSize = chunkSize;
    }

    /** Tables of each channel in reference order (foreign keys), by channel specification. */
    private final Map<ChannelSpec, List<TableSpec>> orders = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * Copies the next chunk of the first unfinished load in {@code channel} and commits.
     *
     * @return true when a chunk was copied (more may follow), false when every load of the channel is done
     */
    public boolean step(Connection c, ChannelSpec channel) throws SQLException {
        for (TableSpec t : referenceOrder(c, channel)) {
            String key = InitialLoadState.key(channel.name(), t.name().toLowerCase(java.util.Locale.ROOT));
            String state = SyncSchema.getState(c, key);
            if (state == null || state.equals(InitialLoadState.DONE)) {
                continue;
            }
            c.commit();
            int isolation = c.getTransactionIsolation();
            c.setTransactionIsolation(dialect.loadIsolation());
            try {
                copyChunk(c, channel.name(), t, key, Json.parseRow(state));
            } catch (SQLException e) {
                c.rollback();
                if (!"40001".equals(e.getSQLState())) {
                    throw e;
                }
                // A row of the chunk changed after the chunk's snapshot: copy the chunk again on the next step.
                LOG.debug("initial load of {}: chunk raced with a writer, retrying", t.name());
            } finally {
                c.setTransactionIsolation(isolation);
            }
            return true;
        }
        c.commit(); // end the read-only transaction of the state reads: the caller may change isolation next
        return false;
    }

    /**
     * The channel's tables with every table after the tables it references (foreign keys), so the target can insert the
     * loaded rows in that order. Read once per channel and table list.
     */
    private List<TableSpec> referenceOrder(Connection c, ChannelSpec channel) throws SQLException {
        List<TableSpec> cached = orders.get(channel);
        if (cached == null) {
            List<String> names = SchemaReader.referenceOrder(c, channel.tables().stream().map(TableSpec::name).toList());
            cached = names.stream().map(channel::table).toList();
            c.commit();
            orders.put(channel, cached);
        }
        return cached;
    }

    private void copyChunk(Connection c, String channel, TableSpec spec, String key, Map<String, Object> after) throws SQLException {
        TableMeta meta = SchemaReader.read(c, spec.name());
        List<ColumnMeta> pk = meta.primaryKey();
        String order = pk.stream().map(col -> dialect.quote(col.name())).collect(Collectors.joining(", "));
        String where = after.isEmpty() ? "" : " WHERE (" + order + ") > (" + pk.stream().map(col -> "?").collect(Collectors.joining(", ")) + ")";
        String sql = "SELECT * FROM " + dialect.quote(meta.name()) + where + " ORDER BY " + order + " FETCH FIRST " + chunkSize
                + " ROWS ONLY " + dialect.loadLockClause();
        List<String> rows = new ArrayList<>(Math.min(chunkSize, 10_000));
        Map<String, Object> last = null;
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            if (!after.isEmpty()) {
                for (int i = 0; i < pk.size(); i++) {
                    CanonicalReader.bind(ps, i + 1, pk.get(i), after.get(pk.get(i).key()));
                }
            }
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    String row = CanonicalWriter.row(meta.columns(), rs, false);
                    rows.add(row);
                    last = lastKey(pk, Json.parseRow(row));
                }
            }
        }
        if (!rows.isEmpty()) {
            try (PreparedStatement ins = c.prepareStatement(
                    "INSERT INTO sync_outbox (channel, table_name, op, new_row) VALUES (?, ?, 'R', ?)")) {
                for (String row : rows) {
                    ins.setString(1, channel);
                    ins.setString(2, meta.name().toLowerCase(java.util.Locale.ROOT));
                    ins.setString(3, row);
                    ins.addBatch();
                }
                ins.executeBatch();
            }
        }
        boolean done = rows.size() < chunkSize;
        SyncSchema.putState(c, key, done ? InitialLoadState.DONE : Json.write(last));
        c.commit();
        if (done) {
            LOG.info("initial load of table {} (channel {}) finished", meta.name(), channel);
        } else {
            LOG.debug("initial load of table {}: {} rows queued, up to key {}", meta.name(), rows.size(), last);
        }
    }

    private static Map<String, Object> lastKey(List<ColumnMeta> pk, Map<String, Object> row) {
        Map<String, Object> k = new LinkedHashMap<>();
        for (ColumnMeta col : pk) {
            k.put(col.key(), row.get(col.key()));
        }
        return k;
    }
}
