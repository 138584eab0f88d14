package io.syncline.engine.apply;

import io.syncline.api.BadBatchException;
import io.syncline.api.BatchHeader;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.Conflict;
import io.syncline.api.ConflictPolicy;
import io.syncline.api.RetriableSyncException;
import io.syncline.api.SyncException.Stage;
import io.syncline.api.TableSpec;
import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.ConflictLog;
import io.syncline.engine.conflict.Policies;
import io.syncline.engine.conflict.Rows;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/*
 * A site's batch of a two-way channel, applied at the hub change by change (docs/conflicts.md).
 *
 * Detection needs no clock: a change carries the row as the site had it before (its old row; columns it lacks kept their
 * value, which the new row carries), and the hub compares that with the row it holds now, locked. An insert of a key
 * the hub holds with other values, an update of a row whose values changed or that is gone, and a delete of a row whose
 * values changed are conflicts; so is a row that would take a unique value (a key it moved to, or another unique key)
 * another row holds. A change without a conflict is applied as it is.
 *
 * A conflict is decided by the table's policy, the outcome written at the hub, recorded in sync_conflict, and the rows
 * at the keys involved sent to every site (an 'R' of the row, or a 'D' of the key, appended to the hub's outbox): the
 * site that made the change holds its own version, and must get the outcome even where the hub's table did not change.
 *
 * Each row's last version from a site keeps its hybrid logical clock stamp and writer in sync_row_stamp, with a hash of
 * the row as written; a hub row whose hash differs was since changed by the hub itself, and is stamped now (after every
 * stamp the hub has seen). Not thread-safe: one per batch.
 */
final class TwoWayApply {
    private final BatchApplier applier;
    private final BatchApplier.Writer w;
    private final Connection c;
    private final BatchHeader header;
    private final ChannelSpec channel;
    private final TwoWay ctx;
    private final String site;
    private int conflicts;

    TwoWayApply(BatchApplier applier, BatchApplier.Writer w, Connection c, BatchHeader header, ChannelSpec channel, TwoWay ctx) {
        this.applier = applier;
        this.w = w;
        this.c = c;
        this.header = header;
        this.channel = channel;
        this.ctx = ctx;
        this.site = header.id().source();
        ctx.clock().observe(header.stamp());
    }

    int conflicts() {
        return conflicts;
    }

    void apply(Change change) throws SQLException {
        TableSpec spec = channel.table(change.table());
        if (spec == null) {
            throw new BadBatchException(Stage.APPLY, "table '" + change.table() + "' is not in channel '" + channel.name() + "'");
        }
        TableMeta t = applier.target(c, spec.target());
        w.count++;
        w.flush();
        switch (change) {
            case Change.Insert i -> insert(spec, t, i.newRow());
            case Change.Reload r -> insert(spec, t, r.newRow());
            case Change.Update u -> update(spec, t, u.oldRow(), u.newRow());
            case Change.Delete d -> delete(spec, t, d.oldRow());
        }
        w.flush();
    }

    private void insert(TableSpec spec, TableMeta t, Map<String, Object> row) throws SQLException {
        w.columns(t, row); // names every column it lacks or the target does not have
        Map<String, Object> current = read(t, row);
        if (current != null) {
            if (!Rows.sameWhereBoth(row, current)) {
                conflict(spec, t, Conflict.Kind.INSERT_EXISTS, null, row, current, row);
            }
            return; // the hub has this very row (a re-sent or reloaded change)
        }
        Map<String, Object> holder = uniqueHolder(t, row, row, row);
        if (holder != null) {
            conflict(spec, t, Conflict.Kind.UNIQUE_TAKEN, null, row, null, row);
            return;
        }
        try {
            w.insertNow(t, row);
        } catch (SQLException e) {
            if ("23505".equals(e.getSQLState()) || "23001".equals(e.getSQLState())) {
                throw new RetriableSyncException(Stage.APPLY, "batch " + header.id() + ": table '" + t.name() + "': another writer took "
                        + "the key or a unique value of a row this batch inserts; the batch is applied again, and then that is a conflict", e);
            }
            throw e;
        }
        stampSite(t, row);
    }

    private void update(TableSpec spec, TableMeta t, Map<String, Object> oldRow, Map<String, Object> newRow) throws SQLException {
        w.columns(t, newRow);
        Map<String, Object> base = new LinkedHashMap<>(newRow); // a column the old row lacks kept its value
        base.putAll(w.withUnchanged(t, oldRow, newRow));
        Map<String, Object> current = read(t, base);
        if (current == null) {
            conflict(spec, t, Conflict.Kind.UPDATE_DELETED, base, newRow, null, base);
            return;
        }
        if (!Rows.sameWhereBoth(base, current)) {
            conflict(spec, t, Conflict.Kind.UPDATE_UPDATE, base, newRow, current, base);
            return;
        }
        boolean moves = !sameKey(t, base, newRow);
        if (moves && read(t, newRow) != null || uniqueHolder(t, newRow, base, newRow) != null) {
            conflict(spec, t, Conflict.Kind.UNIQUE_TAKEN, base, newRow, current, base);
            return;
        }
        if (moves) {
            w.changeKey(t, base, newRow);
            w.flush();
            ConflictLog.putStamp(c, t.name(), keyJson(t, current), new ConflictLog.Stamp(header.stamp(), site, Rows.hash(null)));
        } else {
            w.upsert(t, newRow, false);
            w.flush();
        }
        stampSite(t, newRow);
    }

    private void delete(TableSpec spec, TableMeta t, Map<String, Object> oldRow) throws SQLException {
        w.columns(t, oldRow);
        Map<String, Object> current = read(t, oldRow);
        if (current == null) {
            return; // deleted on both sides
        }
        if (!Rows.sameWhereBoth(oldRow, current)) {
            conflict(spec, t, Conflict.Kind.DELETE_UPDATED, oldRow, null, current, oldRow);
            return;
        }
        w.delete(t, oldRow);
        w.flush();
        ConflictLog.putStamp(c, t.name(), keyJson(t, current), new ConflictLog.Stamp(header.stamp(), site, Rows.hash(null)));
    }

    /**
     * Settles a conflict: {@code at} names the key the hub's row was read at ({@code hubRow}, null when absent there); the
     * site's row, if any, is at the key of {@code siteRow}.
     */
    private void conflict(TableSpec spec, TableMeta t, Conflict.Kind kind, Map<String, Object> base, Map<String, Object> siteRow,
                          Map<String, Object> hubRow, Map<String, Object> at) throws SQLException {
        conflicts++;
        ConflictPolicy policy = channel.conflictFor(spec.name());
        String hubKey = keyJson(t, hubRow != null ? hubRow : at);
        ConflictLog.Stamp known = ConflictLog.stamp(c, t.name(), hubKey);
        ConflictLog.Stamp hub = known != null && known.rowHash().equals(Rows.hash(hubRow)) ? known
                : new ConflictLog.Stamp(ctx.clock().tick(), ctx.hubId(), Rows.hash(hubRow)); // the hub's own edit
        Conflict conflict = new Conflict(channel.name(), t.name(), kind, site, base, siteRow, hubRow, header.stamp(), hub.stamp(), hub.writer());
        Policies.Decision d;
        if (kind == Conflict.Kind.UNIQUE_TAKEN) {
            // The unique value stays with the row that took it first; the site's row cannot be written as it is.
            d = new Policies.Decision(hubRow, hub.writer(), policy.kind() == ConflictPolicy.Kind.MANUAL);
        } else {
            try {
                d = Policies.decide(policy, conflict, ctx.resolver(policy), ctx.hubId());
            } catch (RuntimeException e) {
                throw new BadBatchException(Stage.APPLY, "batch " + header.id() + ": conflict resolver of table '" + t.name() + "' failed: " + e, e);
            }
        }
        Map<String, Object> result = d.row();
        if (result != null && (!sameKey(t, result, at) && read(t, result) != null || uniqueHolder(t, result, result, at) != null)) {
            // The outcome would take a key or unique value another row holds: the hub's version stays.
            result = hubRow;
            d = new Policies.Decision(hubRow, hub.writer(), d.open());
        }
        if (hubRow != null && (result == null || !sameKey(t, result, hubRow))) {
            w.delete(t, hubRow);
            w.flush();
        }
        if (result != null) {
            w.upsert(t, result, false);
            w.flush();
        }
        long stamp = Math.max(header.stamp(), hub.stamp());
        Map<String, Object> written = result == null ? null : read(t, result);
        if (result != null) {
            ConflictLog.putStamp(c, t.name(), keyJson(t, written), new ConflictLog.Stamp(stamp, d.winner(), Rows.hash(written)));
        }
        if (result == null || !sameKey(t, result, at)) {
            ConflictLog.putStamp(c, t.name(), hubKey, new ConflictLog.Stamp(stamp, d.winner(), Rows.hash(null)));
        }
        ConflictLog.record(c, new ConflictLog.Entry(0, channel.name(), t.name(), hubKey, site, header.id().sequence(), kind.name(),
                kind == Conflict.Kind.UNIQUE_TAKEN ? "unique" : policy.kind().label(), d.winner(),
                d.open() ? ConflictLog.OPEN : ConflictLog.RESOLVED, json(base), json(siteRow), json(hubRow), json(written),
                header.stamp(), hub.stamp(), java.time.Instant.now(), null, null));
        // Every site, the one that made the change included, gets the rows now at the keys involved.
        resend(t, at);
        if (siteRow != null && !sameKey(t, siteRow, at)) {
            resend(t, siteRow);
        }
        if (written != null && !sameKey(t, written, at) && (siteRow == null || !sameKey(t, written, siteRow))) {
            resend(t, written);
        }
    }

    private static String json(Map<String, Object> row) {
        return row == null ? null : Json.write(row);
    }

    /** Appends the hub's row at {@code key}'s key (or its deletion) to the outbox, for every site of the channel. */
    private void resend(TableMeta t, Map<String, Object> key) throws SQLException {
        resend(c, channel.name(), t, w, key, read(t, key));
    }

    /** Appends the row (an 'R'), or when {@code row} is null the deletion of {@code key}'s key (a 'D'), to the outbox. */
    static void resend(Connection c, String channel, TableMeta t, BatchApplier.Writer w, Map<String, Object> key, Map<String, Object> row)
            throws SQLException {
        Map<String, Object> keyOnly = new LinkedHashMap<>();
        for (ColumnMeta col : t.primaryKey()) {
            keyOnly.put(col.key(), key.get(w.rowKey(key, col)));
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_outbox (channel, table_name, op, old_row, new_row) VALUES (?, ?, ?, ?, ?)")) {
            ps.setString(1, channel);
            ps.setString(2, t.name().toLowerCase(Locale.ROOT));
            ps.setString(3, row == null ? "D" : "R");
            ps.setString(4, row == null ? Json.write(keyOnly) : null);
            ps.setString(5, row == null ? null : Json.write(row));
            ps.executeUpdate();
        }
    }

    private void stampSite(TableMeta t, Map<String, Object> row) throws SQLException {
        Map<String, Object> written = read(t, row);
        ConflictLog.putStamp(c, t.name(), keyJson(t, written != null ? written : row), new ConflictLog.Stamp(header.stamp(), site, Rows.hash(written)));
    }

    /** The hub's row at the primary key {@code key} holds, locked for this transaction; null when there is none. */
    private Map<String, Object> read(TableMeta t, Map<String, Object> key) throws SQLException {
        return read(c, t, w, key);
    }

    static Map<String, Object> read(Connection c, TableMeta t, BatchApplier.Writer w, Map<String, Object> key) throws SQLException {
        PreparedStatement ps = w.statement("SELECT * FROM " + w.quote(t.name()) + " WHERE " + w.keyPredicate(t) + " FOR UPDATE");
        w.bindKey(ps, 1, t, key);
        try (ResultSet rs = ps.executeQuery()) {
            return rs.next() ? Json.parseRow(CanonicalWriter.row(t.columns(), rs, false)) : null;
        }
    }

    /**
     * A row holding one of {@code row}'s unique values (other than the primary key), other than the rows at the keys of
     * {@code own} and {@code replaced} (the row itself, before and after a key change); null when there is none.
     */
    private Map<String, Object> uniqueHolder(TableMeta t, Map<String, Object> row, Map<String, Object> own, Map<String, Object> replaced)
            throws SQLException {
        for (List<String> key : applier.uniqueKeys(c, t)) {
            if (key.stream().anyMatch(col -> !row.containsKey(col) || row.get(col) == null)) {
                continue; // NULLs never collide
            }
            PreparedStatement ps = w.statement("SELECT * FROM " + w.quote(t.name()) + " WHERE "
                    + key.stream().map(col -> w.quote(t.byKey().get(col).name()) + " = ?").collect(Collectors.joining(" AND ")));
            int i = 1;
            for (String col : key) {
                w.bind(ps, i++, t, t.byKey().get(col), row.get(col));
            }
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    Map<String, Object> holder = Json.parseRow(CanonicalWriter.row(t.columns(), rs, false));
                    if (!sameKey(t, holder, own) && !sameKey(t, holder, replaced)) {
                        return holder;
                    }
                }
            }
        }
        return null;
    }

    private static boolean sameKey(TableMeta t, Map<String, Object> a, Map<String, Object> b) {
        for (ColumnMeta col : t.primaryKey()) {
            if (!Rows.same(a.get(col.key()), b.get(col.key()))) {
                return false;
            }
        }
        return true;
    }

    /** A row's primary key as canonical JSON, the name of the row in sync_conflict and sync_row_stamp. */
    static String keyJson(TableMeta t, Map<String, Object> row) {
        Map<String, Object> key = new LinkedHashMap<>();
        for (ColumnMeta col : t.primaryKey()) {
            Object v = row.get(col.key());
            key.put(col.key(), v instanceof Number n ? new java.math.BigDecimal(n.toString()).stripTrailingZeros() : v);
        }
        return Json.write(key);
    }
}
