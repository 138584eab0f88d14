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
import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.ConflictLog;
import io.syncline.engine.conflict.Policies;
import io.syncline.engine.conflict.Rows;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

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
 * A site's full copy of a row ('R': its first join, a table that gained columns, a start-over) carries no old row: where
 * the hub holds the key with other values, the hub's row stays and goes back to every site (recorded as a conflict).
 *
 * Each row's last version written here keeps its hybrid logical clock stamp and writer in sync_row_stamp, with a hash of
 * the row as written; a hub row whose hash differs was since changed by the hub itself, and is stamped now (after every
 * stamp the hub has seen). Not thread-safe: one per batch.
 */
final class TwoWayApply {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(TwoWayApply.class);
    private final BatchApplier applier;
    private final BatchApplier.Writer w;
    private final Connection c;
    private final BatchHeader header;
    private final ChannelSpec channel;
    private final TwoWay ctx;
    private final String site;
    /** The batch's stamp, as the hub's clock takes it in (a stamp far ahead of the hub's wall clock is capped). */
    private final long stamp;
    private int conflicts;
    /** Keys locked in this transaction (ConflictLog.lockKey), as "table key". */
    private final java.util.Set<String> locked = new java.util.HashSet<>();

    TwoWayApply(BatchApplier applier, BatchApplier.Writer w, Connection c, BatchHeader header, ChannelSpec channel, TwoWay ctx) {
        this.applier = applier;
        this.w = w;
        this.c = c;
        this.header = header;
        this.channel = channel;
        this.ctx = ctx;
        this.site = header.id().source();
        this.stamp = ctx.clock().observe(header.stamp());
    }

    int conflicts() {
        return conflicts;
    }

    void apply(Change change) throws SQLException {
        BatchApplier.refuseNotRows(header.id(), change, Change.Mark.class);
        TableSpec spec = channel.table(change.table());
        if (spec == null) {
            throw new BadBatchException(Stage.APPLY, "table '" + change.table() + "' is not in channel '" + channel.name() + "'");
        }
        TableMeta t = applier.target(c, spec.target());
        w.count++;
        try {
            switch (change) {
                case Change.Insert i -> insert(spec, t, i.newRow(), false);
                case Change.Reload r -> insert(spec, t, r.newRow(), true);
                case Change.Update u -> update(spec, t, u.oldRow(), u.newRow());
                case Change.Delete d -> delete(spec, t, d.oldRow());
                case Change.Mark m -> throw new IllegalStateException("refused above");
                case Change.Refresh r -> { // the site had to remove its row: it gets the hub's
                    w.columns(t, r.key());
                    for (ColumnMeta col : t.primaryKey()) {
                        if (r.key().get(col.key()) == null) {
                            throw new BadBatchException(Stage.APPLY, "batch " + header.id() + ": a request to send a row of '" + t.name()
                                    + "' again lacks its key column '" + col.key() + "': " + r.key());
                        }
                    }
                    resend(t, r.key());
                }
            }
            w.flush();
        } catch (SQLException e) {
            if (isUniqueViolation(e)) {
                // Another transaction took a key or unique value between the check and the write: applied again, the
                // batch then finds that row and settles it as a conflict.
                throw new RetriableSyncException(Stage.APPLY, "batch " + header.id() + ": table '" + t.name() + "': another writer took a "
                        + "key or unique value this batch writes, at the same moment; the batch is applied again", e);
            }
            throw e;
        }
    }

    private static boolean isUniqueViolation(SQLException e) {
        return "23505".equals(e.getSQLState()) || "23001".equals(e.getSQLState());
    }

    private void insert(TableSpec spec, TableMeta t, Map<String, Object> row, boolean copy) throws SQLException {
        w.columns(t, row); // names every column it lacks or the target does not have
        Map<String, Object> current = read(t, row);
        if (current != null) {
            if (!Rows.sameWhereBoth(row, current)) {
                conflict(spec, t, Conflict.Kind.INSERT_EXISTS, null, row, current, row, copy ? "copy" : null);
            }
            return; // the hub has this very row (a re-sent or reloaded change)
        }
        if (uniqueHolder(t, row, row, row) != null) {
            conflict(spec, t, Conflict.Kind.UNIQUE_TAKEN, null, row, null, row, null);
            return;
        }
        Conflict.Kind refused = write(t, () -> w.insertNow(t, row));
        if (refused != null) {
            conflict(spec, t, refused, null, row, null, row, null);
            return;
        }
        stamp(t, row, new ConflictLog.Stamp(stamp, site, null));
    }

    private void update(TableSpec spec, TableMeta t, Map<String, Object> oldRow, Map<String, Object> newRow) throws SQLException {
        w.columns(t, newRow);
        Map<String, Object> base = new LinkedHashMap<>(newRow); // a column the old row lacks kept its value
        base.putAll(w.withUnchanged(t, oldRow, newRow));
        Map<String, Object> current = read(t, base);
        if (current == null) {
            conflict(spec, t, Conflict.Kind.UPDATE_DELETED, base, newRow, null, base, null);
            return;
        }
        if (!Rows.sameWhereBoth(base, current)) {
            conflict(spec, t, Conflict.Kind.UPDATE_UPDATE, base, newRow, current, base, null);
            return;
        }
        boolean moves = !sameKey(t, base, newRow);
        if (moves && read(t, newRow) != null || uniqueHolder(t, newRow, base, newRow) != null) {
            conflict(spec, t, Conflict.Kind.UNIQUE_TAKEN, base, newRow, current, base, null);
            return;
        }
        Conflict.Kind refused = write(t, () -> {
            if (moves) {
                w.changeKey(t, base, newRow);
            } else {
                w.upsert(t, newRow, false);
            }
        });
        if (refused != null) {
            conflict(spec, t, refused, base, newRow, current, base, null);
            return;
        }
        if (moves) {
            ConflictLog.putStamp(c, t.name(), keyJson(t, current), new ConflictLog.Stamp(stamp, site, Rows.hash(null)));
        }
        stamp(t, newRow, new ConflictLog.Stamp(stamp, site, null));
    }

    private void delete(TableSpec spec, TableMeta t, Map<String, Object> oldRow) throws SQLException {
        w.columns(t, oldRow);
        Map<String, Object> current = read(t, oldRow);
        if (current == null) {
            return; // deleted on both sides
        }
        if (!Rows.sameWhereBoth(oldRow, current)) {
            conflict(spec, t, Conflict.Kind.DELETE_UPDATED, oldRow, null, current, oldRow, null);
            return;
        }
        Conflict.Kind refused = write(t, () -> w.delete(t, oldRow));
        if (refused != null) {
            conflict(spec, t, refused, oldRow, null, current, oldRow, null);
            return;
        }
        ConflictLog.putStamp(c, t.name(), keyJson(t, current), new ConflictLog.Stamp(stamp, site, Rows.hash(null)));
    }

    /** A write, flushed. */
    @FunctionalInterface
    private interface Write {
        void run() throws SQLException;
    }

    /**
     * Runs {@code write} and flushes it. On a table with constraints only the database can check (a partial or expression
     * unique index, a foreign key either way) it runs in a savepoint: if such a constraint refuses it, the write is undone
     * and what collided returned, for the caller to settle as a conflict (a concurrent writer of the primary key is still
     * retried, see {@link #apply}). Null when written.
     */
    private Conflict.Kind write(TableMeta t, Write write) throws SQLException {
        if (!applier.writeChecks(c, t).guarded()) {
            write.run();
            w.flush();
            return null;
        }
        w.flush();
        java.sql.Savepoint sp = c.setSavepoint();
        try {
            write.run();
            w.flush();
            c.releaseSavepoint(sp);
            return null;
        } catch (SQLException e) {
            c.rollback(sp);
            w.discard();
            String state = e.getSQLState() == null ? "" : e.getSQLState();
            if (isUniqueViolation(e)) {
                return Conflict.Kind.UNIQUE_TAKEN;
            }
            if (state.equals("23503") || state.equals("23506")) { // foreign key (PostgreSQL, H2)
                return Conflict.Kind.REFERENCE;
            }
            throw e;
        }
    }

    /**
     * Settles a conflict: {@code at} names the key the hub's row was read at ({@code hubRow}, null when absent there); the
     * site's row, if any, is at the key of {@code siteRow}. {@code fixed}: a rule that keeps the hub's row whatever the
     * policy ("copy": a site's full copy of a row meets another version), or null.
     */
    private void conflict(TableSpec spec, TableMeta t, Conflict.Kind kind, Map<String, Object> base, Map<String, Object> siteRow,
                          Map<String, Object> hubRow, Map<String, Object> at, String fixed) throws SQLException {
        conflicts++;
        ConflictPolicy policy = channel.conflictFor(spec.name());
        String hubKey = keyJson(t, hubRow != null ? hubRow : at);
        ConflictLog.Stamp known = ConflictLog.stamp(c, t.name(), hubKey);
        ConflictLog.Stamp hub = known != null && known.rowHash().equals(Rows.hash(hubRow)) ? known
                : new ConflictLog.Stamp(ctx.clock().tick(), ctx.hubId(), Rows.hash(hubRow)); // the hub's own edit
        Conflict conflict = new Conflict(channel.name(), t.name(), kind, site, base, siteRow, hubRow, stamp, hub.stamp(), hub.writer());
        String rule = fixed != null ? fixed : kind == Conflict.Kind.UNIQUE_TAKEN ? "unique"
                : kind == Conflict.Kind.REFERENCE ? "reference" : policy.kind().label();
        Policies.Decision d;
        if (fixed != null || kind == Conflict.Kind.UNIQUE_TAKEN || kind == Conflict.Kind.REFERENCE) {
            // The unique value stays with the row that took it first, the foreign keys as the hub's rows hold them, and a
            // copy without an old row cannot say which version it was based on: the hub's row stays.
            d = new Policies.Decision(hubRow, hub.writer(), policy.kind() == ConflictPolicy.Kind.MANUAL);
        } else {
            try {
                d = Policies.decide(policy, conflict, ctx.resolver(policy), ctx.hubId());
            } catch (RuntimeException e) {
                // A resolver of the user's own failed: the hub's version stays for now and the conflict waits for an
                // operator, so neither this batch nor the ones behind it are held up.
                LOG.warn("batch {}: the conflict resolver of table {} failed on key {}; the hub's version stays and the conflict is "
                        + "left open for an operator: {}", header.id(), t.name(), hubKey, e.toString());
                d = new Policies.Decision(hubRow, hub.writer(), true);
            }
        }
        Map<String, Object> result = d.row();
        if (result != null && result != hubRow && !sameKey(t, result, at) && read(t, result) != null) {
            // The outcome would move the row onto a key another row holds: the hub's version stays.
            result = hubRow;
            d = new Policies.Decision(hubRow, hub.writer(), d.open());
        }
        Map<String, Object> outcome = result;
        boolean written = true;
        if (outcome != hubRow) {
            written = (outcome == null || uniqueHolder(t, outcome, at, outcome) == null) && write(t, () -> {
                if (hubRow != null && (outcome == null || !sameKey(t, outcome, hubRow))) {
                    w.delete(t, hubRow);
                    w.flush();
                }
                if (outcome != null) {
                    if (read(t, outcome) == null) {
                        w.insertNow(t, outcome); // no row to lock: a concurrent insert of this key fails and is retried
                    } else {
                        w.upsert(t, outcome, false);
                    }
                }
            }) == null;
            if (!written) {
                result = hubRow; // the outcome would break a unique or foreign key: the hub's version stays
                d = new Policies.Decision(hubRow, hub.writer(), d.open());
            }
        }
        long outcomeStamp = d.winner().equals(site) ? stamp : d.winner().equals(hub.writer()) ? hub.stamp() : Math.max(stamp, hub.stamp());
        Map<String, Object> now = result == null ? null : read(t, result);
        if (result != null) {
            ConflictLog.putStamp(c, t.name(), keyJson(t, now), new ConflictLog.Stamp(outcomeStamp, d.winner(), Rows.hash(now)));
        }
        if (result == null || !sameKey(t, result, at)) {
            ConflictLog.putStamp(c, t.name(), hubKey, new ConflictLog.Stamp(outcomeStamp, d.winner(), Rows.hash(null)));
        }
        ConflictLog.record(c, new ConflictLog.Entry(0, channel.name(), t.name(), hubKey, site, header.id().sequence(), kind.name(), rule,
                d.winner(), d.open() ? ConflictLog.OPEN : ConflictLog.RESOLVED, json(base), json(siteRow), json(hubRow), json(now),
                stamp, hub.stamp(), applier.clock().instant(), null, null));
        // Every site, the one that made the change included, gets the rows now at the keys involved.
        resend(t, at);
        if (siteRow != null && !sameKey(t, siteRow, at)) {
            resend(t, siteRow);
        }
        if (now != null && !sameKey(t, now, at) && (siteRow == null || !sameKey(t, now, siteRow))) {
            resend(t, now);
        }
        if (kind == Conflict.Kind.REFERENCE && siteRow == null && now != null) {
            resendReferencing(t, now);
        }
    }

    /*
     * The site deleted a row the hub keeps because rows still reference it. The site holds none of those rows (it removed
     * them first, or never had them: a row whose parent a site deleted waits there, see BatchApplier's Writer); they go
     * to every site again after the kept row.
     */
    private void resendReferencing(TableMeta t, Map<String, Object> row) throws SQLException {
        for (SchemaReader.Reference ref : applier.referencedBy(c, t)) {
            if (!w.holds(ref.table())) {
                continue;
            }
            TableMeta child = applier.target(c, ref.table());
            for (Map<String, Object> ch : w.rowsWhere(child, ref.columns(), row, ref.referenced())) {
                resend(child, ch);
                resendReferencing(child, ch);
            }
        }
    }

    /**
     * An operator's final version of a conflict's row (see {@link BatchApplier#settle}). The hub's row at {@code key}
     * must still be what the conflict left there, {@code left} if it is at that key (unless {@code force}); the chosen row
     * may not take a key or unique value another row holds.
     */
    static void settle(BatchApplier applier, BatchApplier.Writer w, Connection c, ChannelSpec channel, TwoWay ctx, TableMeta t,
                       Map<String, Object> key, Map<String, Object> left, Map<String, Object> row, boolean force) throws SQLException {
        BatchHeader h = new BatchHeader(new io.syncline.api.BatchId(ctx.hubId(), channel.name(), 0), applier.clock().instant(), null, 0);
        TwoWayApply two = new TwoWayApply(applier, w, c, h, channel, ctx);
        Map<String, Object> current = two.read(t, key);
        Map<String, Object> expected = left != null && sameKey(t, left, key) ? left : null;
        if (!force && !(current == null ? expected == null : expected != null && Rows.sameWhereBoth(current, expected)
                && Rows.sameWhereBoth(expected, current))) {
            throw new BatchApplier.SettleRefusedException("the row changed since the conflict (it is now " + json(current)
                    + "); look again, or settle with force");
        }
        boolean moves = row != null && !sameKey(t, row, key);
        if (moves && two.read(t, row) != null) {
            throw new BatchApplier.SettleRefusedException("the chosen row's key " + keyJson(t, row) + " belongs to another row");
        }
        Map<String, Object> holder = row == null ? null : two.uniqueHolder(t, row, row, key);
        if (holder != null) {
            throw new BatchApplier.SettleRefusedException("the chosen row takes a unique value of another row, " + json(holder));
        }
        if (current != null && (row == null || moves)) {
            w.delete(t, current);
            w.flush();
        }
        if (row != null) {
            w.columns(t, row);
            if (two.read(t, row) == null) {
                w.insertNow(t, row);
            } else {
                w.upsert(t, row, false);
                w.flush();
            }
        }
        long stamp = ctx.clock().tick();
        for (Map<String, Object> at : moves ? List.of(key, row) : List.of(key)) {
            Map<String, Object> now = two.read(t, at);
            ConflictLog.putStamp(c, t.name(), keyJson(t, now != null ? now : at), new ConflictLog.Stamp(stamp, ctx.hubId(), Rows.hash(now)));
            two.resend(t, at);
        }
        two.writeResends();
    }

    private static String json(Map<String, Object> row) {
        return row == null ? null : Json.write(row);
    }

    /** Keys whose rows go to every site after the batch, in the order named (see {@link #writeResends()}). */
    private final List<Map.Entry<TableMeta, Map<String, Object>>> resends = new ArrayList<>();

    /** The hub's row at {@code key}'s primary key, or its deletion, goes to every site of the channel after the batch. */
    private void resend(TableMeta t, Map<String, Object> key) {
        resends.add(Map.entry(t, new LinkedHashMap<>(key)));
    }

    /**
     * Appends to the outbox, for every site of the channel, the rows now at the keys conflicts involved (or their
     * deletions), as the batch left them. After the mark of the site's batch: the site that made the changes applies them
     * too, its guards released (Guards).
     */
    void writeResends() throws SQLException {
        for (Map.Entry<TableMeta, Map<String, Object>> r : resends) {
            writeResend(r.getKey(), r.getValue());
        }
        resends.clear();
    }

    private void writeResend(TableMeta t, Map<String, Object> key) throws SQLException {
        Map<String, Object> row = read(t, key);
        Map<String, Object> keyOnly = new LinkedHashMap<>();
        for (ColumnMeta col : t.primaryKey()) {
            keyOnly.put(col.key(), key.get(w.rowKey(key, col)));
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_outbox (channel, table_name, op, old_row, new_row) VALUES (?, ?, ?, ?, ?)")) {
            ps.setString(1, channel.name());
            ps.setString(2, t.name().toLowerCase(Locale.ROOT));
            ps.setString(3, row == null ? "D" : "R");
            ps.setString(4, row == null ? Json.write(keyOnly) : null);
            ps.setString(5, row == null ? null : Json.write(row));
            ps.executeUpdate();
        }
    }

    /** Records the stamp of the row now at {@code row}'s key (its hash taken from the row as stored). */
    private void stamp(TableMeta t, Map<String, Object> row, ConflictLog.Stamp s) throws SQLException {
        Map<String, Object> written = read(t, row);
        ConflictLog.putStamp(c, t.name(), keyJson(t, written != null ? written : row), new ConflictLog.Stamp(s.stamp(), s.writer(), Rows.hash(written)));
    }

    /** The hub's row at the primary key {@code key} holds, locked for this transaction; null when there is none. */
    private Map<String, Object> read(TableMeta t, Map<String, Object> key) throws SQLException {
        String locking = t.name() + " " + keyJson(t, key);
        if (locked.add(locking)) {
            ConflictLog.lockKey(c, applier.dialect(), t.name(), keyJson(t, key));
        }
        PreparedStatement ps = w.statement("SELECT * FROM " + w.quote(t.name()) + " WHERE " + w.keyPredicate(t) + " FOR UPDATE");
        w.bindKey(ps, 1, t, key);
        try (ResultSet rs = ps.executeQuery()) {
            return rs.next() ? w.rowOf(t, rs) : null;
        }
    }

    /**
     * A row holding one of {@code row}'s unique values (other than the primary key), other than the rows at the keys of
     * {@code own} and {@code replaced} (the row itself, before and after a key change); null when there is none.
     */
    private Map<String, Object> uniqueHolder(TableMeta t, Map<String, Object> row, Map<String, Object> own, Map<String, Object> replaced)
            throws SQLException {
        for (List<String> key : applier.writeChecks(c, t).uniqueKeys()) {
            if (key.stream().anyMatch(col -> !row.containsKey(col) || row.get(col) == null)) {
                continue; // NULLs never collide
            }
            for (Map<String, Object> holder : w.rowsWhere(t, key, row, key)) {
                if (!sameKey(t, holder, own) && !sameKey(t, holder, replaced)) {
                    return holder;
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
