package io.syncline.engine.apply;

import io.syncline.api.BadBatchException;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.OutOfOrderBatchException;
import io.syncline.api.RetriableSyncException;
import io.syncline.api.SyncException.Stage;
import io.syncline.api.TableSpec;
import io.syncline.engine.codec.CanonicalReader;
import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.ConflictLog;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.conflict.Rows;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * Applies one batch at the target, exactly once, in one transaction.
 *
 * The transaction first locks the ledger row (sync_incoming) of the batch's source and channel. If the
 * batch's number is not above the ledger's, it is a retry of something already applied: nothing is done
 * and the ledger's number is returned as the acknowledgement. If it is not exactly the next number, the
 * batch is out of order and refused (the sender resends from the acknowledged number). Otherwise every
 * change is applied in order (JDBC batches of consecutive statements of the same shape) and the ledger is
 * advanced in the same transaction. A failure anywhere, including a truncated or malformed stream from
 * the iterator, rolls the whole batch back. Because the ledger advance and the changes commit together,
 * a crash before commit leaves neither, and a crash after commit leaves both: exactly once.
 *
 * Thread-safe: concurrent applies of the same source and channel serialize on the ledger row lock.
 */
public final class BatchApplier {
    private static final Logger LOG = LoggerFactory.getLogger(BatchApplier.class);
    private static final int JDBC_BATCH = 1000;
    private static final int BULK_ROWS = 10_000;
    /** Runs of inserted rows at least this long are tried as plain inserts, at most so many per batch. */
    private static final int PLAIN_INSERT_MIN_ROWS = 100;
    private static final int PLAIN_INSERTS_PER_BATCH = 32;
    private final Dialect dialect;
    private final Clock clock;
    private final Map<String, TableMeta> metaCache = new ConcurrentHashMap<>();
    private final Map<String, WriteChecks> writeChecks = new ConcurrentHashMap<>();
    private final Map<String, List<SchemaReader.Reference>> references = new ConcurrentHashMap<>();
    private final Map<String, List<SchemaReader.Reference>> parents = new ConcurrentHashMap<>();
    /** At a site: its outbox and the guards of its two-way channels (null elsewhere). */
    private final OutboxStore outbox;
    private final Guards guards;
    /** Rows wait for the files they reference (null: no table of this node references files). */
    private final FileReferences files;

    public BatchApplier(Dialect dialect, Clock clock) {
        this(dialect, clock, null, null);
    }

    public BatchApplier(Dialect dialect, Clock clock, OutboxStore outbox, Guards guards) {
        this(dialect, clock, outbox, guards, null, null);
    }

    /**
     * At a site with two-way channels: {@code outbox} is the site's own (its seals record {@code guards}), and batches of
     * a two-way channel from the hub are applied under those guards (docs/conflicts.md, "A change never comes back").
     * With {@code files}, a row that references a file (a table's {@code files} columns) is written only once {@code files}
     * finds that file here, or after {@code maxFileWait}: until then its batch is refused with
     * {@link io.syncline.api.WaitingForFileException} (docs/files.md, "Rows and files together").
     */
    public BatchApplier(Dialect dialect, Clock clock, OutboxStore outbox, Guards guards, FileGate files, java.time.Duration maxFileWait) {
        if ((outbox == null) != (guards == null)) {
            throw new IllegalArgumentException("a site's outbox and guards go together");
        }
        this.dialect = dialect;
        this.clock = clock;
        this.outbox = outbox;
        this.guards = guards;
        this.files = files == null ? null : new FileReferences(files, maxFileWait, clock);
    }

    /**
     * Applies {@code changes} (consumed fully) as batch {@code header} of {@code channel}, then commits.
     *
     * @throws BadBatchException          when the batch is out of order or its content cannot be applied; nothing applied
     * @throws RetriableSyncException     when the database failed; nothing applied, the sender should retry later
     */
    public ApplyOutcome apply(Connection c, BatchHeader header, ChannelSpec channel, Iterator<Change> changes) {
        return apply(c, header, channel, changes, false, null, null);
    }

    /** {@link #apply(Connection, BatchHeader, ChannelSpec, Iterator)}, running {@code beforeCommit} in the batch's transaction. */
    public ApplyOutcome apply(Connection c, BatchHeader header, ChannelSpec channel, Iterator<Change> changes, BeforeCommit beforeCommit) {
        return apply(c, header, channel, changes, false, beforeCommit, null);
    }

    /** Work done in an apply's transaction just before it commits. */
    @FunctionalInterface
    public interface BeforeCommit {
        void run(Connection c) throws SQLException;
    }

    /**
     * Applies a reload (consumed fully), then commits: the whole content of the channel's tables as the source held it
     * when batch {@code header} was its last, for a target that must be brought level with the source (it joined late,
     * missed purged batches, or its routing changed). In one transaction: every target table of {@code channel} is
     * emptied (at a site of a two-way channel, but for the rows it guards and the rows they reference: see {@link Guards}),
     * the rows are applied, the ledger is set to the header's number whatever it held before (it may move back), and
     * {@code beforeCommit} runs. Batches after the header's number then follow as usual; replaying a change the reload
     * already holds converges, because every change carries its whole new row.
     */
    public ApplyOutcome reload(Connection c, BatchHeader header, ChannelSpec channel, Iterator<Change> changes, BeforeCommit beforeCommit) {
        return apply(c, header, channel, changes, true, beforeCommit, null);
    }

    /**
     * Applies a site's batch of a two-way channel at the hub, like {@link #apply(Connection, BatchHeader, ChannelSpec, Iterator)},
     * but change by change against the hub's current rows: a change made on a version of the row the hub no longer holds
     * is a conflict, settled by the table's policy, recorded in {@code sync_conflict} and sent to every site
     * (docs/conflicts.md). A conflict never refuses the batch.
     */
    public ApplyOutcome applyTwoWay(Connection c, BatchHeader header, ChannelSpec channel, Iterator<Change> changes, TwoWay twoWay) {
        return apply(c, header, channel, changes, false, null, Objects.requireNonNull(twoWay, "twoWay"));
    }

    private ApplyOutcome apply(Connection c, BatchHeader header, ChannelSpec channel, Iterator<Change> changes, boolean reload,
                               BeforeCommit beforeCommit, TwoWay twoWay) {
        BatchId id = header.id();
        boolean tagged = false;
        // At a site, a two-way channel's batch from the hub: applied under the site's guards, in a transaction at the seal
        // isolation that first seals what the site committed before it (see Guards).
        boolean guarding = guards != null && twoWay == null && channel.direction() == ChannelSpec.Direction.TWO_WAY;
        int isolation = -1;
        try {
            List<String> copied = null;
            if (guarding && reload) {
                copied = new ArrayList<>();
                for (TableSpec t : channel.tables()) {
                    copied.add(dialect.quote(target(c, t.target()).name()));
                }
                c.commit(); // the tables' metadata read before the copy's transaction
            }
            if (guarding && c.getTransactionIsolation() != dialect.sealIsolation()) {
                isolation = c.getTransactionIsolation();
                c.setTransactionIsolation(dialect.sealIsolation());
            }
            if (copied != null) {
                // A copy replaces whole tables: the application's writes to them wait until it is in, rather than make it
                // start again (PostgreSQL) or be checked row by row (H2).
                dialect.lockTables(c, copied);
            }
            long last = lockLedger(c, id);
            // Tagged before anything is written: a reload's emptying of a table this node also captures (a two-way
            // channel) came from the source too, and must not be sent back to it.
            dialect.beginApply(c, id.source());
            tagged = true;
            if (!reload && id.sequence() <= last) {
                c.rollback();
                LOG.debug("batch {} already applied (ledger at {}), acknowledging again", id, last);
                return new ApplyOutcome.Duplicate(id, last);
            }
            if (!reload && id.sequence() != last + 1) {
                c.rollback();
                throw new OutOfOrderBatchException(Stage.APPLY, "batch " + id + " is out of order: expected batch " + (last + 1)
                        + " of source '" + id.source() + "' channel '" + id.channel() + "'", id.channel(), last + 1);
            }
            long count;
            int conflicts = 0;
            try (Writer w = new Writer(c, id, channel)) {
                w.displaceUniques = twoWay == null && channel.direction() == ChannelSpec.Direction.TWO_WAY;
                boolean guarded = false;
                if (guarding) {
                    outbox.sealInTransaction(c, channel.name());
                    guarded = guards.any(c, channel.name());
                }
                if (reload) {
                    if (guarding && changes.hasNext()) {
                        // A copy of a two-way channel starts with the mark of this site's last batch it holds: the rows
                        // changed up to that batch are in the copy, and only those guarded after it stay.
                        Change first = changes.next();
                        if (first instanceof Change.Mark m) {
                            guards.release(c, channel.name(), m.batch());
                            guarded = guards.any(c, channel.name());
                        } else {
                            changes = prepend(first, changes);
                        }
                    }
                    List<String> tables = SchemaReader.referenceOrder(c, channel.tables().stream().map(TableSpec::target).toList());
                    for (int i = tables.size() - 1; i >= 0; i--) { // tables that reference others go first
                        w.empty(target(c, tables.get(i)), guarded);
                    }
                }
                if (twoWay != null) {
                    TwoWayApply two = new TwoWayApply(this, w, c, header, channel, twoWay);
                    while (changes.hasNext()) {
                        two.apply(changes.next());
                    }
                    conflicts = two.conflicts();
                    // Where this batch took effect in the hub's order, for its site alone: the site gets this mark
                    // instead of its own changes (docs/conflicts.md, "A change never comes back"). A batch without
                    // changes guards nothing, and the next mark releases every guard below it.
                    w.flush();
                    if (w.count > 0) {
                        mark(c, channel, id);
                    }
                    two.writeResends();
                } else {
                    while (changes.hasNext()) {
                        Change change = changes.next();
                        if (change instanceof Change.Mark m && guarding) {
                            if (m.batch() <= outbox.lastSealed(c, channel.name())) { // else from before a start-over
                                guards.release(c, channel.name(), m.batch());
                                guarded = guards.any(c, channel.name());
                            }
                        } else if (!guarded) {
                            w.apply(change);
                        } else {
                            Change unguarded = w.unguarded(change);
                            if (unguarded != null) {
                                w.apply(unguarded);
                            }
                        }
                    }
                }
                w.flush();
                if (guarding) {
                    w.checkLateChanges();
                }
                count = w.count;
            }
            commitApplied(c, id, count, beforeCommit);
            if (conflicts > 0) {
                LOG.info("batch {}: {} conflict(s) settled (sync_conflict)", id, conflicts);
            }
            return new ApplyOutcome.Applied(id, count);
        } catch (SQLException | RuntimeException e) {
            throw failed(c, id, e);
        } finally {
            if (tagged) {
                try {
                    dialect.endApply(c);
                } catch (SQLException e) {
                    LOG.warn("could not clear origin tag after batch {}: {}", id, e.getMessage());
                }
            }
            if (isolation >= 0) {
                try {
                    c.setTransactionIsolation(isolation);
                } catch (SQLException e) {
                    LOG.warn("could not restore the isolation level after batch {}: {}", id, e.getMessage());
                }
            }
        }
    }

    /**
     * At the hub: records when the hub's own edits in sealed batch {@code batch} of two-way channel {@code channel} were
     * made (HQ staff writing the hub's tables), for last-writer-wins (docs/conflicts.md, "Ordering conflicting versions").
     * The hub has no hook in its application's transactions; it learns of an edit when it seals it. A change made here
     * (origin NULL) whose row still holds what it wrote, and whose recorded version ({@code sync_row_stamp}) is another
     * one, is the hub's own edit. Its stamp is the time it was captured at, but not below {@code floor} (it committed
     * after the batch before was sealed), above the version it was made on, and at most {@code clock}'s ceiling; the clock
     * takes it in. Rows the hub wrote for a site, a conflict or an operator have their version recorded already.
     *
     * <p>Reads the batch on {@code reader} and records on {@code writer}, in one short transaction per key. Each key is
     * locked as a site's batch locks it, one at a time, so the recording may wait for a site's batch but never in a cycle.
     * Best effort: a key that fails is left as it is; its edit is stamped when a site's change meets it.
     *
     * @param floor the stamp of the batch sealed before {@code batch} (0 when unknown)
     * @return the edits recorded
     */
    public int recordHubEdits(Connection reader, Connection writer, SealedBatch batch, ChannelSpec channel, String hubId, long floor,
                              HybridClock clock) throws SQLException {
        int[] recorded = {0};
        try (Writer w = new Writer(writer, new BatchId(hubId, channel.name(), batch.sequence()), channel)) {
            dialect.streamBatch(reader, batch, "", (op, table, oldRow, newRow, capturedAt, origin) -> {
                if (origin != null || "M".equals(op) || capturedAt == null) {
                    return;
                }
                try {
                    TableMeta t = target(writer, table);
                    writer.commit();
                    Map<String, Object> after = newRow == null ? null : Json.parseRow(newRow.text());
                    Map<String, Object> before = oldRow == null ? null : Json.parseRow(oldRow.text());
                    long at = Math.min(Math.max(capturedAt.toEpochMilli() << 16, floor), clock.ceiling());
                    if (after != null) {
                        recorded[0] += w.recordHubEdit(t, after, after, hubId, at, clock);
                    }
                    if (before != null) {
                        Map<String, Object> old = after == null ? before : w.withUnchanged(t, before, after);
                        if (after == null || !TwoWayApply.keyJson(t, old).equals(TwoWayApply.keyJson(t, after))) {
                            recorded[0] += w.recordHubEdit(t, old, null, hubId, at, clock); // deleted, or moved away
                        }
                    }
                } catch (SQLException e) {
                    throw new java.io.IOException(e);
                }
            });
        } catch (java.io.IOException e) {
            throw new SQLException("reading batch " + batch.sequence() + " of " + channel.name() + ": " + e.getMessage(), e);
        } finally {
            reader.commit();
        }
        return recorded[0];
    }

    /** Appends to the hub's outbox the mark of the site's batch {@code id}: an outbox row of op M, origin that site. */
    private static void mark(Connection c, ChannelSpec channel, BatchId id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_outbox (channel, table_name, op, new_row, origin) "
                + "VALUES (?, '', 'M', ?, ?)")) {
            ps.setString(1, channel.name());
            ps.setString(2, "{\"batch\":" + id.sequence() + "}");
            ps.setString(3, id.source());
            ps.executeUpdate();
        }
    }

    private static Iterator<Change> prepend(Change first, Iterator<Change> rest) {
        return new Iterator<>() {
            private boolean taken;

            @Override
            public boolean hasNext() {
                return !taken || rest.hasNext();
            }

            @Override
            public Change next() {
                if (!taken) {
                    taken = true;
                    return first;
                }
                return rest.next();
            }
        };
    }

    /**
     * Refuses a mark (op M: only a hub sends it, to a site of a two-way channel) or a request to send a row again (op K:
     * only a site sends it, to the hub of a two-way channel) where it does not belong.
     */
    static void refuseNotRows(BatchId id, Change change, Class<? extends Change> refused) {
        if (refused.isInstance(change)) {
            throw new BadBatchException(Stage.APPLY, "batch " + id + (change instanceof Change.Mark
                    ? " carries a mark (op M), which only a hub sends, and only to a site of a two-way channel"
                    : " carries a request to send a row again (op K), which only a site sends, and only to the hub of a two-way channel"));
        }
    }

    /**
     * Writes an operator's final version of a two-way row at the hub, in the caller's transaction (which the caller
     * commits): the row at {@code key}'s primary key becomes {@code row} (which may move it to another key), or is deleted
     * when {@code row} is null; the rows now at the keys involved are sent to every site of {@code channel}, and the
     * version is stamped as the hub's own (docs/conflicts.md, "The conflict table and the operator").
     *
     * @param left     the row the conflict left (its result row; null: deleted); when the hub's row at {@code key} differs
     *                 from what the conflict left there, it changed since, and nothing is written unless {@code force}
     * @throws SettleRefusedException when the row changed since, or {@code row} would take a key or unique value another
     *                                row holds; nothing is written
     */
    public void settle(Connection c, ChannelSpec channel, String hubTable, Map<String, Object> key, Map<String, Object> left,
                       Map<String, Object> row, boolean force, TwoWay twoWay) throws SQLException {
        TableMeta t = target(c, hubTable);
        try (Writer w = new Writer(c, new BatchId(twoWay.hubId(), channel.name(), 0), channel)) {
            TwoWayApply.settle(this, w, c, channel, twoWay, t, key, left, row, force);
        } catch (IllegalArgumentException e) {
            throw new BadBatchException(Stage.APPLY, "table '" + hubTable + "': " + e.getMessage(), e);
        }
    }

    /** An operator's choice that cannot be written as it is; the message says why. */
    public static final class SettleRefusedException extends io.syncline.api.SyncException {
        public SettleRefusedException(String message) {
            super(Stage.APPLY, message);
        }
    }

    /** The last batch applied for this source and channel (0 if none), read without locking. */
    public static long lastApplied(Connection c, String source, String channel) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT last_batch FROM sync_incoming WHERE source = ? AND channel = ?")) {
            ps.setString(1, source);
            ps.setString(2, channel);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        }
    }

    /** Moves the ledger to batch {@code last} with {@code count} more rows applied, runs {@code beforeCommit} (may be null), commits. */
    private void commitApplied(Connection c, BatchId last, long count, BeforeCommit beforeCommit) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_incoming SET last_batch = ?, rows_applied = rows_applied + ?, "
                + "applied_at = ? WHERE source = ? AND channel = ?")) {
            ps.setLong(1, last.sequence());
            ps.setLong(2, count);
            ps.setObject(3, OffsetDateTime.ofInstant(clock.instant(), ZoneOffset.UTC));
            ps.setString(4, last.source());
            ps.setString(5, last.channel());
            ps.executeUpdate();
        }
        if (beforeCommit != null) {
            beforeCommit.run(c);
        }
        CrashPoints.hit("apply-before-commit");
        c.commit();
        CrashPoints.hit("apply-after-commit");
    }

    /** Rolls back after a failed apply of batch {@code id} and says what happened, as the exception to throw. */
    private RuntimeException failed(Connection c, BatchId id, Exception e) {
        rollbackQuietly(c);
        if (e instanceof SQLException sql) {
            if (isLockBusy(sql)) {
                // Another exchange holds this ledger row (a retry racing a slow or stalled earlier attempt): do not queue
                // behind it, so one stuck sender cannot pile up threads and connections.
                return new RetriableSyncException(Stage.APPLY, "batch " + id + ": another exchange of source '" + id.source()
                        + "' channel '" + id.channel() + "' is in progress; try again later", sql);
            }
            metaCache.clear();
            writeChecks.clear();
            references.clear();
            parents.clear();
            String state = sql.getSQLState() == null ? "" : sql.getSQLState();
            String cause = abbreviate(sql.getNextException() != null ? sql.getNextException().getMessage() : sql.getMessage());
            if (state.startsWith("22") || state.startsWith("23")) {
                return new BadBatchException(Stage.APPLY, "batch " + id + " does not fit the target: " + cause + " (SQLState " + state
                        + "); nothing was applied, the sender keeps the batch", sql);
            }
            return new RetriableSyncException(Stage.APPLY, "applying batch " + id + " failed: " + cause
                    + " (SQLState " + state + "); nothing was applied, the batch will be retried", sql);
        }
        if (e instanceof BadBatchException || e instanceof RetriableSyncException) {
            return (RuntimeException) e;
        }
        return new BadBatchException(Stage.APPLY, "batch " + id + " cannot be applied: " + e.getMessage(), e);
    }

    /**
     * Starts a group commit on {@code c}: consecutive batches of one source and one-way {@code channel}, applied as if
     * they were one batch (their changes in order through one writer, the ledger locked once and moved once), in one
     * transaction that {@link Group#commit} ends. For a target that receives several batches in one exchange: each then
     * costs its rows, not a transaction and a handful of statements.
     *
     * @throws IllegalArgumentException for a two-way channel at a site (with guards): each of its batches is applied after a
     *                                  seal of the site's own changes, in a transaction of its own
     */
    public Group group(Connection c, ChannelSpec channel) {
        if (guards != null && channel.direction() == ChannelSpec.Direction.TWO_WAY) {
            throw new IllegalArgumentException("batches of two-way channel '" + channel.name() + "' are applied one transaction each");
        }
        return new Group(c, channel);
    }

    /**
     * Batches applied in one transaction (see {@link #group}). Any failure rolls back the whole group and ends it; a batch
     * applied before is skipped. Not thread-safe; closing it without a commit rolls back.
     */
    public final class Group implements AutoCloseable {
        private final Connection c;
        private final ChannelSpec channel;
        private Writer w;
        private String source;
        private long last;
        private BatchId lastId;
        private int batches;
        private boolean done;

        private Group(Connection c, ChannelSpec channel) {
            this.c = c;
            this.channel = channel;
        }

        /** Applies {@code changes} (consumed fully) as batch {@code header}, after the batches added before. */
        public ApplyOutcome add(BatchHeader header, Iterator<Change> changes) {
            BatchId id = header.id();
            if (done) {
                throw new IllegalStateException("group of batches ended");
            }
            if (!id.channel().equals(channel.name()) || (source != null && !id.source().equals(source))) {
                throw new IllegalArgumentException("batch " + id + " is not of the group's source '" + source + "' and channel '"
                        + channel.name() + "'");
            }
            try {
                if (w == null) {
                    source = id.source();
                    last = lockLedger(c, id);
                    dialect.beginApply(c, id.source());
                    w = new Writer(c, id, channel);
                }
                if (id.sequence() <= last) {
                    while (changes.hasNext()) {
                        changes.next();
                    }
                    return new ApplyOutcome.Duplicate(id, last);
                }
                if (id.sequence() != last + 1) {
                    throw new OutOfOrderBatchException(Stage.APPLY, "batch " + id + " is out of order: expected batch " + (last + 1)
                            + " of source '" + id.source() + "' channel '" + id.channel() + "'", id.channel(), last + 1);
                }
                w.id = id;
                long before = w.count;
                while (changes.hasNext()) {
                    w.apply(changes.next());
                }
                last = id.sequence();
                lastId = id;
                batches++;
                return new ApplyOutcome.Applied(id, w.count - before);
            } catch (SQLException | RuntimeException e) {
                end();
                throw failed(c, id, e);
            }
        }

        /** Rows applied in this group so far. */
        public long rows() {
            return w == null ? 0 : w.count;
        }

        /** Batches applied in this group so far (not counting duplicates). */
        public int batches() {
            return batches;
        }

        /**
         * Writes what is buffered, moves the ledger to the last batch added, runs {@code beforeCommit} (may be null) and
         * commits; the group ends. Nothing to do when no batch was applied.
         */
        public void commit(BeforeCommit beforeCommit) {
            if (done) {
                throw new IllegalStateException("group of batches ended");
            }
            if (lastId == null) {
                end();
                rollbackQuietly(c);
                return;
            }
            try {
                w.flush();
                commitApplied(c, lastId, w.count, beforeCommit);
                end();
            } catch (SQLException | RuntimeException e) {
                end();
                throw failed(c, lastId, e);
            }
        }

        private void end() {
            if (done) {
                return;
            }
            done = true;
            if (w != null) {
                try {
                    w.close();
                } catch (SQLException e) {
                    LOG.warn("could not close the statements of the group of batches up to {}: {}", lastId, e.getMessage());
                }
                try {
                    dialect.endApply(c);
                } catch (SQLException e) {
                    LOG.warn("could not clear the origin tag after the group of batches up to {}: {}", lastId, e.getMessage());
                }
            }
        }

        /** Rolls back what was not committed. */
        @Override
        public void close() {
            if (!done) {
                end();
                rollbackQuietly(c);
            }
        }
    }

    private long lockLedger(Connection c, BatchId id) throws SQLException {
        for (int attempt = 0; attempt < 2; attempt++) {
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT last_batch FROM sync_incoming WHERE source = ? AND channel = ? FOR UPDATE NOWAIT")) {
                ps.setString(1, id.source());
                ps.setString(2, id.channel());
                try (ResultSet rs = ps.executeQuery()) {
                    if (rs.next()) {
                        return rs.getLong(1);
                    }
                }
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_incoming (source, channel, last_batch, rows_applied, "
                    + "applied_at) VALUES (?, ?, 0, 0, ?)")) {
                ps.setString(1, id.source());
                ps.setString(2, id.channel());
                ps.setObject(3, OffsetDateTime.ofInstant(clock.instant(), ZoneOffset.UTC));
                ps.executeUpdate();
            }
        }
        throw new SQLException("ledger row for " + id.source() + "/" + id.channel() + " vanished");
    }

    /** PostgreSQL 55P03 lock_not_available; H2 reports the same for NOWAIT as a lock timeout (HYT00). */
    private static boolean isLockBusy(SQLException e) {
        return "55P03".equals(e.getSQLState()) || "HYT00".equals(e.getSQLState());
    }

    /** Database messages can quote whole statements; keep logs readable. */
    private static String abbreviate(String message) {
        if (message == null) {
            return "";
        }
        return message.length() <= 400 ? message : message.substring(0, 400) + "...";
    }

    private static void rollbackQuietly(Connection c) {
        try {
            c.rollback();
        } catch (SQLException e) {
            LOG.warn("rollback failed: {}", e.getMessage());
        }
    }

    Clock clock() {
        return clock;
    }

    Dialect dialect() {
        return dialect;
    }

    TableMeta target(Connection c, String table) throws SQLException {
        String key = table.toLowerCase(Locale.ROOT);
        TableMeta meta = metaCache.get(key);
        if (meta == null) {
            meta = SchemaReader.tryRead(c, table);
            if (meta == null) {
                throw new BadBatchException(Stage.APPLY, "target table '" + table + "' does not exist");
            }
            if (meta.primaryKey().isEmpty()) {
                throw new BadBatchException(Stage.APPLY, "target table '" + table + "' has no primary key");
            }
            metaCache.put(key, meta);
        }
        return meta;
    }

    private record UpsertKey(String table, List<ColumnMeta> columns) {
    }

    /**
     * What two-way apply checks before writing to a target table, read once.
     *
     * @param uniqueKeys its unique keys other than the primary key, checked before each write
     * @param guarded    whether a write can still break a constraint only the database checks (a partial or expression
     *                   unique index, a foreign key either way): such writes run in a savepoint
     */
    record WriteChecks(List<List<String>> uniqueKeys, boolean guarded) {
    }

    /** The foreign keys of a target table itself, read once. */
    List<SchemaReader.Reference> parentsOf(Connection c, TableMeta t) throws SQLException {
        List<SchemaReader.Reference> refs = parents.get(t.name());
        if (refs == null) {
            refs = SchemaReader.parentsOf(c, t);
            parents.put(t.name(), refs);
        }
        return refs;
    }

    /** The foreign keys that reference a target table, read once. */
    List<SchemaReader.Reference> referencedBy(Connection c, TableMeta t) throws SQLException {
        List<SchemaReader.Reference> refs = references.get(t.name());
        if (refs == null) {
            refs = SchemaReader.referencedBy(c, t);
            references.put(t.name(), refs);
        }
        return refs;
    }

    WriteChecks writeChecks(Connection c, TableMeta t) throws SQLException {
        WriteChecks checks = writeChecks.get(t.name());
        if (checks == null) {
            SchemaReader.UniqueKeys keys = SchemaReader.uniqueKeys(c, t);
            checks = new WriteChecks(keys.keys(), keys.unchecked() || SchemaReader.hasForeignKeys(c, t));
            writeChecks.put(t.name(), checks);
        }
        return checks;
    }

    /** Applies changes of one batch with JDBC batching, keeping the order of statements. Not thread-safe. */
    final class Writer implements AutoCloseable {
        private final Connection c;
        /** The batch being applied (in a {@link Group}, moves from batch to batch). */
        private BatchId id;
        private final ChannelSpec channel;
        private final Map<String, PreparedStatement> statements = new HashMap<>();
        /** Upsert SQL by table and column list: built once per batch, not once per row. */
        private final Map<UpsertKey, String> upsertSql = new HashMap<>();
        private PreparedStatement open;
        private int openCount;
        /*
         * Primary keys already in the open JDBC batch. PostgreSQL's driver rewrites a batch of upserts into one
         * multi-row INSERT ... ON CONFLICT, which refuses to touch the same row twice; so a repeated key flushes
         * the batch first. Bounded by JDBC_BATCH.
         */
        private final java.util.Set<List<Object>> openKeys = new java.util.HashSet<>();
        long count;

        Writer(Connection c, BatchId id, ChannelSpec channel) {
            this.c = c;
            this.id = id;
            this.channel = channel;
        }

        /*
         * At a site of a two-way channel, the hub's changes come in the hub's order, in which unique values never collide.
         * A local row may still hold one the hub gave another row: a change of this site the hub has not settled yet, or
         * one it settled against and whose removal follows in this stream. Such a row gives way (its own change, if
         * any, is still on its way to the hub, which decides and sends the outcome here).
         */
        private boolean displaceUniques;

        /*
         * Likewise, when the hub removes (or re-keys) a row, local rows that still reference it are changes of this site
         * the hub has not settled yet: the hub removed its own referencing rows first, in its order. They give way, and
         * what references them in turn (at most 8 levels); their own changes reach the hub, which settles them.
         */
        private void release(TableMeta t, Map<String, Object> row, int depth) throws SQLException {
            if (depth > 8) {
                return;
            }
            for (SchemaReader.Reference ref : referencedBy(c, t)) {
                // Only rows of this channel's tables: a row of another table is not this channel's to remove (the
                // foreign key then refuses the batch, and says so).
                if (!holds(ref.table()) || ref.referenced().stream().anyMatch(col -> row.get(col) == null)) {
                    continue;
                }
                TableMeta child = target(c, ref.table());
                for (Map<String, Object> ch : rowsWhere(child, ref.columns(), row, ref.referenced())) {
                    release(child, ch, depth + 1);
                    refreshIfGuarded(child, ch);
                    PreparedStatement del = statement("DELETE FROM " + dialect.quote(child.name()) + " WHERE " + keyPredicate(child));
                    bindKey(del, 1, child, ch);
                    del.executeUpdate();
                }
            }
        }

        /*
         * A row of the hub whose parent (a row of this channel it references) is missing here: this site deleted the parent,
         * and the hub has not settled that delete yet. In the hub's order the parent exists, so the hub will refuse the
         * delete (a REFERENCE conflict) and send the parent again with every row that references it, this one included.
         * Until then the row waits: writing it would break the foreign key and stop this site's fetch for good.
         */
        private boolean parentsPresent(TableMeta t, Map<String, Object> row) throws SQLException {
            for (SchemaReader.Reference ref : parentsOf(c, t)) {
                if (holds(ref.table()) && ref.referenced().stream().noneMatch(col -> row.get(col) == null)
                        && rowsWhere(target(c, ref.table()), ref.columns(), row, ref.referenced()).isEmpty()) {
                    return false;
                }
            }
            return true;
        }

        private void displace(TableMeta t, Map<String, Object> row) throws SQLException {
            for (List<String> key : writeChecks(c, t).uniqueKeys()) {
                if (key.stream().anyMatch(col -> row.get(col) == null)) {
                    continue;
                }
                flush();
                if (guards != null) {
                    for (Map<String, Object> holder : rowsWhere(t, key, row, key)) {
                        if (!samePrimaryKey(t, holder, row)) {
                            refreshIfGuarded(t, holder);
                        }
                    }
                }
                PreparedStatement ps = statement("DELETE FROM " + dialect.quote(t.name()) + " WHERE " + equal(t, key)
                        + " AND NOT (" + keyPredicate(t) + ")");
                bindKey(ps, bindValues(ps, 1, t, key, row, key), t, row);
                ps.executeUpdate();
            }
        }

        /** Whether {@code table} (as the target names it) is one of this channel's tables. */
        boolean holds(String table) {
            return channel.tables().stream().anyMatch(ts -> ts.target().equalsIgnoreCase(table));
        }

        /** {@code "c1 = ? AND c2 = ?"} for columns (lower-case keys) of {@code t}, with the dialect's placeholders. */
        String equal(TableMeta t, List<String> columns) {
            return columns.stream().map(col -> dialect.quote(t.byKey().get(col).name()) + " = " + dialect.placeholder(t.byKey().get(col)))
                    .collect(Collectors.joining(" AND "));
        }

        /** Binds {@code values}' entries at {@code keys} to {@code columns} of {@code t} from index {@code from}; returns the next index. */
        int bindValues(PreparedStatement ps, int from, TableMeta t, List<String> columns, Map<String, Object> values, List<String> keys)
                throws SQLException {
            int i = from;
            for (int n = 0; n < columns.size(); n++) {
                bind(ps, i++, t, t.byKey().get(columns.get(n)), values.get(keys.get(n)));
            }
            return i;
        }

        /** The rows of {@code t} whose {@code columns} hold {@code values}' entries at {@code keys}, as canonical rows. */
        List<Map<String, Object>> rowsWhere(TableMeta t, List<String> columns, Map<String, Object> values, List<String> keys)
                throws SQLException {
            flush();
            PreparedStatement ps = statement("SELECT * FROM " + dialect.quote(t.name()) + " WHERE " + equal(t, columns));
            bindValues(ps, 1, t, columns, values, keys);
            List<Map<String, Object>> out = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(rowOf(t, rs));
                }
            }
            return out;
        }

        /** The current row of {@code rs} as a canonical row. */
        Map<String, Object> rowOf(TableMeta t, ResultSet rs) throws SQLException {
            return Json.parseRow(io.syncline.engine.codec.CanonicalWriter.row(t.columns(), rs, false));
        }

        /**
         * See {@link BatchApplier#recordHubEdits}: one version of the row at {@code key}'s key ({@code row}, null: none), in a
         * transaction of its own; 1 when recorded.
         */
        int recordHubEdit(TableMeta t, Map<String, Object> key, Map<String, Object> row, String hubId, long at,
                          HybridClock clock) throws SQLException {
            try {
                dialect.limitLockWait(c, 200); // a key a site's batch holds is left for later: it is stamped when met
                String rowKey = TwoWayApply.keyJson(t, key);
                ConflictLog.lockKey(c, dialect, t.name(), rowKey);
                List<String> pk = t.primaryKey().stream().map(ColumnMeta::key).toList();
                List<Map<String, Object>> now = rowsWhere(t, pk, key, pk);
                String hash = Rows.hash(row);
                ConflictLog.Stamp known = ConflictLog.stamp(c, t.name(), rowKey);
                if (!hash.equals(Rows.hash(now.isEmpty() ? null : now.getFirst()))
                        || known != null && known.rowHash().equals(hash)) {
                    // The row changed again since (that version is recorded, or will be), or this version was recorded when
                    // it was written: a site's, an outcome, an operator's, or this edit again.
                    c.commit();
                    return 0;
                }
                long stamp = clock.observe(Math.max(at, known == null ? 0 : known.stamp() + 1)); // made on the version before
                ConflictLog.putStamp(c, t.name(), rowKey,
                        new ConflictLog.Stamp(stamp, hubId, hash));
                c.commit();
                return 1;
            } catch (SQLException e) {
                rollbackQuietly(c);
                LOG.debug("hub edit of {} {} not recorded: {}", t.name(), Guards.keyOf(t, key), e.getMessage());
                return 0;
            }
        }

        /**
         * What of a change of the hub applies here, where rows are guarded: nothing at a guarded key (null), the change
         * itself when it touches none. A key change touches two keys: when only its old key is guarded, its new row is
         * still written; when only its new key is, its old row is still removed.
         */
        Change unguarded(Change change) throws SQLException {
            TableSpec spec = channel.table(change.table());
            if (spec == null) {
                return change; // refused by apply, with the reason
            }
            TableMeta t = target(c, spec.target());
            Change out = switch (change) {
                case Change.Insert i -> guards.guarded(c, t, i.newRow()) ? null : change;
                case Change.Reload r -> guards.guarded(c, t, r.newRow()) ? null : change;
                case Change.Delete d -> guards.guarded(c, t, d.oldRow()) ? null : change;
                case Change.Update u -> {
                    Map<String, Object> before = withUnchanged(t, u.oldRow(), u.newRow());
                    boolean oldKey = guards.guarded(c, t, before);
                    if (samePrimaryKey(t, before, u.newRow())) {
                        yield oldKey ? null : change;
                    }
                    boolean newKey = guards.guarded(c, t, u.newRow());
                    yield oldKey && newKey ? null : oldKey ? new Change.Reload(u.table(), u.newRow())
                            : newKey ? new Change.Delete(u.table(), before) : change;
                }
                case Change.Mark m -> change;
                case Change.Refresh r -> change;
            };
            if (out != change) {
                LOG.debug("batch {}: {} of {} {} {}: this site changed the row since, and the hub has not taken that change in yet", id,
                        change.getClass().getSimpleName(), t.name(), change, out == null ? "skipped" : "applied as " + out);
            }
            return out;
        }

        /*
         * At a site of a two-way channel, a row of its own that the hub has not taken in yet is removed here to make room for
         * the hub's rows (a unique value, a removed parent, a copy). Its change still reaches the hub, which may take it in
         * without conflict and would not send it back: so the site asks the hub to send that row again (op K), in its next
         * batch, whose seal guards the key until then.
         */
        private void refreshIfGuarded(TableMeta t, Map<String, Object> row) throws SQLException {
            if (guards != null && guards.guarded(c, t, row)) {
                requestRefresh(t, row);
            }
        }

        private void requestRefresh(TableMeta t, Map<String, Object> row) throws SQLException {
            flush();
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_outbox (channel, table_name, op, old_row, origin) "
                    + "VALUES (?, ?, 'K', ?, NULL)")) {
                ps.setString(1, channel.name());
                ps.setString(2, t.name().toLowerCase(Locale.ROOT));
                ps.setString(3, Json.write(Guards.keyOf(t, row)));
                ps.executeUpdate();
            }
        }

        /** Empties {@code t} for a reload; with {@code spare}, the rows guarded here stay (their changes are on their way). */
        void empty(TableMeta t, boolean spare) throws SQLException {
            flush();
            if (!spare) {
                try (Statement s = c.createStatement()) {
                    s.executeUpdate("DELETE FROM " + dialect.quote(t.name()));
                }
                return;
            }
            try (Statement s = c.createStatement()) {
                s.setFetchSize(1000);
                try (ResultSet rs = s.executeQuery("SELECT * FROM " + dialect.quote(t.name()))) {
                    while (rs.next()) {
                        Map<String, Object> row = rowOf(t, rs);
                        if (guards.guarded(c, t, row)) {
                            continue;
                        }
                        if (referencedHere(t, row)) {
                            // A kept row of this channel references it: it stays too, and the hub sends it again.
                            requestRefresh(t, row);
                            continue;
                        }
                        delete(t, row);
                    }
                }
            }
            flush();
        }

        /** Whether a row of another table of this channel references {@code row}. */
        private boolean referencedHere(TableMeta t, Map<String, Object> row) throws SQLException {
            for (SchemaReader.Reference ref : referencedBy(c, t)) {
                if (holds(ref.table()) && ref.referenced().stream().noneMatch(col -> row.get(col) == null)
                        && !rowsWhere(target(c, ref.table()), ref.columns(), row, ref.referenced()).isEmpty()) {
                    return true;
                }
            }
            return false;
        }

        /**
         * At a site, after a two-way batch of the hub was applied: what this site committed while it was applied is not
         * sealed (on PostgreSQL, at the seal isolation, there is none: a row changed meanwhile refuses the write instead).
         * A change of those whose row no longer holds what it wrote was overwritten by the hub's batch without a guard: the
         * batch is applied again, after that change is sealed and guarded. The others are sealed and guarded later.
         */
        void checkLateChanges() throws SQLException {
            // The last change of each key committed meanwhile (earlier ones of a key were overwritten by the site itself).
            Map<String, Map.Entry<TableMeta, Map<String, Object>[]>> last = new LinkedHashMap<>();
            try {
                dialect.streamUnsealed(c, channel.name(), (op, table, oldRow, newRow, capturedAt, origin) -> {
                    if (origin != null || "M".equals(op) || "K".equals(op)) {
                        return;
                    }
                    try {
                        TableMeta t = target(c, table); // this site's own change: its own table
                        Map<String, Object> wrote = newRow == null ? null : Json.parseRow(newRow.text());
                        Map<String, Object> before = oldRow == null ? null : Json.parseRow(oldRow.text());
                        if (before != null && (wrote == null || !samePrimaryKey(t, withUnchanged(t, before, wrote), wrote))) {
                            Map<String, Object> gone = wrote == null ? before : withUnchanged(t, before, wrote);
                            last.put(t.name() + " " + TwoWayApply.keyJson(t, gone), latest(t, gone, null));
                        }
                        if (wrote != null) {
                            last.put(t.name() + " " + TwoWayApply.keyJson(t, wrote), latest(t, wrote, wrote));
                        }
                    } catch (SQLException e) {
                        throw new java.io.IOException(e);
                    }
                });
            } catch (java.io.IOException e) {
                if (e.getCause() instanceof SQLException s) {
                    throw s;
                }
                throw new java.io.UncheckedIOException(e);
            }
            for (Map.Entry<TableMeta, Map<String, Object>[]> e : last.values()) {
                TableMeta t = e.getKey();
                Map<String, Object> key = e.getValue()[0];
                Map<String, Object> wrote = e.getValue()[1];
                List<String> pk = t.primaryKey().stream().map(ColumnMeta::key).toList();
                List<Map<String, Object>> now = rowsWhere(t, pk, key, pk);
                boolean holds = wrote == null ? now.isEmpty()
                        : now.size() == 1 && Rows.sameWhereBoth(wrote, now.getFirst());
                if (!holds) {
                    throw new RetriableSyncException(Stage.APPLY, "batch " + id + ": a change this site committed to " + t.name() + " "
                            + Guards.keyOf(t, key) + " while the batch was applied was overwritten by it; the batch is applied again");
                }
            }
        }

        @SuppressWarnings("unchecked")
        private static Map.Entry<TableMeta, Map<String, Object>[]> latest(TableMeta t, Map<String, Object> key, Map<String, Object> wrote) {
            return Map.entry(t, new Map[] {key, wrote});
        }

        void apply(Change change) throws SQLException {
            refuseNotRows(id, change, Change.Mark.class);
            refuseNotRows(id, change, Change.Refresh.class);
            TableSpec spec = channel.table(change.table());
            if (spec == null) {
                throw new BadBatchException(Stage.APPLY, "table '" + change.table() + "' is not in channel '" + channel.name() + "'");
            }
            if (files != null) {
                files.check(id, spec, change);
            }
            TableMeta t = target(c, spec.target());
            count++;
            if (displaceUniques) {
                if (change instanceof Change.Delete d) {
                    release(t, d.oldRow(), 0);
                } else if (change instanceof Change.Update u) {
                    Map<String, Object> before = withUnchanged(t, u.oldRow(), u.newRow());
                    if (!samePrimaryKey(t, before, u.newRow())) {
                        release(t, before, 0); // re-keyed
                    }
                }
                if (!(change instanceof Change.Delete)) {
                    Map<String, Object> newRow = change instanceof Change.Update u ? u.newRow() : change instanceof Change.Insert i
                            ? i.newRow() : ((Change.Reload) change).newRow();
                    if (!parentsPresent(t, newRow)) {
                        // The hub sends it again once it has settled the parent's change (a REFERENCE conflict, or a key
                        // change whose cascade the hub's share of this site leaves out): this site asks for it.
                        LOG.info("batch {}: {} row {} references a row this site removed and the hub still has; it comes again once "
                                + "the hub has settled that", id, t.name(), newRow);
                        if (guards != null) {
                            requestRefresh(t, newRow);
                        }
                        return;
                    }
                    displace(t, newRow);
                }
            }
            switch (change) {
                case Change.Insert ins -> upsert(t, withHubColumn(spec, ins.newRow()), true);
                case Change.Reload r -> upsert(t, withHubColumn(spec, r.newRow()), false);
                case Change.Update u -> {
                    Map<String, Object> newRow = withHubColumn(spec, u.newRow());
                    Map<String, Object> oldRow = withUnchanged(t, withHubColumn(spec, u.oldRow()), newRow);
                    if (samePrimaryKey(t, oldRow, newRow)) {
                        upsert(t, newRow, false);
                    } else {
                        changeKey(t, oldRow, newRow);
                    }
                }
                case Change.Delete d -> delete(t, withHubColumn(spec, d.oldRow()));
                case Change.Mark m -> throw new IllegalStateException("refused above");
                case Change.Refresh r -> throw new IllegalStateException("refused above");
            }
        }

        private Map<String, Object> withHubColumn(TableSpec spec, Map<String, Object> row) {
            if (spec.hubColumn() == null) {
                return row;
            }
            Map<String, Object> copy = new LinkedHashMap<>(row);
            copy.put(spec.hubColumn().toLowerCase(Locale.ROOT), id.source());
            return copy;
        }

        /*
         * An update's old row carries at least the source's primary key and the old value of every column that changed
         * (docs/protocol.md). A key column of this table that it lacks did not change: its old value is the new one.
         */
        Map<String, Object> withUnchanged(TableMeta t, Map<String, Object> oldRow, Map<String, Object> newRow) {
            Map<String, Object> copy = null;
            for (ColumnMeta col : t.primaryKey()) {
                if (!oldRow.containsKey(col.key()) && newRow.containsKey(col.key())) {
                    if (copy == null) {
                        copy = new LinkedHashMap<>(oldRow);
                    }
                    copy.put(col.key(), newRow.get(col.key()));
                }
            }
            return copy == null ? oldRow : copy;
        }

        private static List<Object> keyOf(TableMeta t, Map<String, Object> row) {
            List<Object> key = new ArrayList<>(t.primaryKey().size());
            for (ColumnMeta col : t.primaryKey()) {
                key.add(row.get(col.key()));
            }
            return key;
        }

        private boolean samePrimaryKey(TableMeta t, Map<String, Object> a, Map<String, Object> b) {
            for (ColumnMeta col : t.primaryKey()) {
                if (!Objects.equals(a.get(col.key()), b.get(col.key()))) {
                    return false;
                }
            }
            return true;
        }

        List<ColumnMeta> columns(TableMeta t, Map<String, Object> row) {
            Map<String, ColumnMeta> byKey = t.byKey();
            List<ColumnMeta> cols = new ArrayList<>(row.size());
            for (String k : row.keySet()) {
                ColumnMeta col = byKey.get(k); // keys on the wire are canonical (lower case): lower-case only otherwise
                if (col == null) {
                    col = byKey.get(k.toLowerCase(Locale.ROOT));
                }
                if (col == null) {
                    throw new BadBatchException(Stage.APPLY, "column '" + k + "' of table '" + t.name() + "' does not exist at the target");
                }
                if (cols.contains(col)) {
                    throw new BadBatchException(Stage.APPLY, "row for table '" + t.name() + "' names column '" + col.key()
                            + "' twice (keys differ only in case, or the row sets the hub column the hub fills itself)");
                }
                cols.add(col);
            }
            for (ColumnMeta pk : t.primaryKey()) {
                if (!row.containsKey(pk.key())) {
                    throw new BadBatchException(Stage.APPLY, "row for table '" + t.name() + "' lacks primary-key column '" + pk.key() + "'");
                }
            }
            return cols;
        }

        /**
         * Inserts a row at once, with a plain INSERT: a key another transaction took meanwhile fails (two-way apply
         * retries the batch and then sees the row) instead of being overwritten.
         */
        void insertNow(TableMeta t, Map<String, Object> row) throws SQLException {
            flush();
            List<ColumnMeta> cols = columns(t, row);
            PreparedStatement ps = statement("INSERT INTO " + dialect.quote(t.name()) + " ("
                    + cols.stream().map(col -> dialect.quote(col.name())).collect(Collectors.joining(", ")) + ") VALUES ("
                    + cols.stream().map(dialect::placeholder).collect(Collectors.joining(", ")) + ")");
            int i = 1;
            for (ColumnMeta col : cols) {
                bind(ps, i++, t, col, row.get(rowKey(row, col)));
            }
            ps.executeUpdate();
        }

        /** {@code inserted}: the source inserted this row (its key is most likely new at the target). */
        void upsert(TableMeta t, Map<String, Object> row, boolean inserted) throws SQLException {
            List<ColumnMeta> cols = columns(t, row);
            if (dialect.supportsBulkUpsert()) {
                bulkUpsert(t, cols, row, inserted);
                return;
            }
            PreparedStatement ps = batched(upsertSql.computeIfAbsent(new UpsertKey(t.name(), cols), k -> dialect.upsertSql(t, cols)));
            List<Object> key = keyOf(t, row);
            if (!openKeys.add(key)) {
                flush();
                open = ps;
                openKeys.add(key);
            }
            int i = 1;
            for (ColumnMeta col : cols) {
                bind(ps, i++, t, col, row.get(rowKey(row, col)));
            }
            add(ps);
        }

        void delete(TableMeta t, Map<String, Object> oldRow) throws SQLException {
            columns(t, oldRow);
            PreparedStatement ps = batched("DELETE FROM " + dialect.quote(t.name()) + " WHERE " + keyPredicate(t));
            bindKey(ps, 1, t, oldRow);
            add(ps);
        }

        /*
         * A key change moves the row. If the new key is taken already, the target holds a later state than this change was
         * made on (a reload or an initial load read after it; the change is replayed): the old key's row goes and the new
         * row is written whole, the state the change led to, instead of failing on the duplicate key for ever.
         */
        void changeKey(TableMeta t, Map<String, Object> oldRow, Map<String, Object> newRow) throws SQLException {
            flush();
            PreparedStatement exists = statement("SELECT 1 FROM " + dialect.quote(t.name()) + " WHERE " + keyPredicate(t));
            bindKey(exists, 1, t, newRow);
            boolean taken;
            try (ResultSet rs = exists.executeQuery()) {
                taken = rs.next();
            }
            if (taken) {
                delete(t, oldRow);
                upsert(t, newRow, false);
                return;
            }
            List<ColumnMeta> cols = columns(t, newRow);
            String set = cols.stream().map(col -> dialect.quote(col.name()) + " = " + dialect.placeholder(col))
                    .collect(Collectors.joining(", "));
            PreparedStatement ps = statement("UPDATE " + dialect.quote(t.name()) + " SET " + set + " WHERE " + keyPredicate(t));
            int i = 1;
            for (ColumnMeta col : cols) {
                bind(ps, i++, t, col, newRow.get(rowKey(newRow, col)));
            }
            bindKey(ps, i, t, oldRow);
            if (ps.executeUpdate() == 0) {
                upsert(t, newRow, false);
            }
        }

        String quote(String name) {
            return dialect.quote(name);
        }

        String keyPredicate(TableMeta t) {
            return t.primaryKey().stream().map(col -> dialect.quote(col.name()) + " = " + dialect.placeholder(col))
                    .collect(Collectors.joining(" AND "));
        }

        void bindKey(PreparedStatement ps, int from, TableMeta t, Map<String, Object> row) throws SQLException {
            int i = from;
            for (ColumnMeta col : t.primaryKey()) {
                bind(ps, i++, t, col, row.get(col.key()));
            }
        }

        String rowKey(Map<String, Object> row, ColumnMeta col) {
            return row.containsKey(col.key()) ? col.key() : col.name();
        }

        void bind(PreparedStatement ps, int index, TableMeta t, ColumnMeta col, Object value) throws SQLException {
            try {
                CanonicalReader.bind(ps, index, col, value);
            } catch (IllegalArgumentException e) {
                throw new BadBatchException(Stage.APPLY, "table '" + t.name() + "': " + e.getMessage(), e);
            }
        }

        PreparedStatement statement(String sql) throws SQLException {
            PreparedStatement ps = statements.get(sql);
            if (ps == null) {
                ps = c.prepareStatement(sql);
                statements.put(sql, ps);
            }
            return ps;
        }

        private PreparedStatement batched(String sql) throws SQLException {
            PreparedStatement ps = statement(sql);
            if (ps != open) {
                flush();
                open = ps;
            }
            return ps;
        }

        private void add(PreparedStatement ps) throws SQLException {
            ps.addBatch();
            if (++openCount >= JDBC_BATCH) {
                flush();
                open = ps;
            }
        }

        /*
         * Bulk path (PostgreSQL): consecutive upserts into one table with one column list collect here, the last
         * version of each key winning (they are upserts of whole rows, so earlier versions are superseded), and go to
         * the database in one COPY and one INSERT ... SELECT ... ON CONFLICT. Any other statement flushes them first.
         */
        private TableMeta runTable;
        private List<ColumnMeta> runColumns;
        private final Map<List<Object>, Map<String, Object>> runRows = new LinkedHashMap<>();
        /** Every change of the run was an insert at the source. */
        private boolean runInserts = true;
        /*
         * Plain inserts left for this batch. Each one runs in a savepoint, and a transaction's subtransactions beyond
         * PostgreSQL's cache of 64 slow every snapshot taken on the server while it runs; small runs gain little.
         */
        private int plainInsertsLeft = PLAIN_INSERTS_PER_BATCH;

        private void bulkUpsert(TableMeta t, List<ColumnMeta> cols, Map<String, Object> row, boolean inserted) throws SQLException {
            if (open != null || runTable != t || !cols.equals(runColumns)) {
                flush(); // statements before this upsert run first: order is kept
                runTable = t;
                runColumns = cols;
            }
            List<Object> key = keyOf(t, row);
            runRows.remove(key);
            runRows.put(key, row);
            runInserts &= inserted;
            if (runRows.size() >= BULK_ROWS) {
                flushRun();
            }
        }

        private void flushRun() throws SQLException {
            if (!runRows.isEmpty()) {
                try {
                    boolean plain = runInserts && runRows.size() >= PLAIN_INSERT_MIN_ROWS && plainInsertsLeft > 0;
                    if (plain) {
                        plainInsertsLeft--;
                    }
                    if (!dialect.bulkUpsert(c, runTable, runColumns, runRows.values(), plain) && plain) {
                        plainInsertsLeft = 0; // a key existed: this batch's target has diverged, upsert the rest
                    }
                } catch (IllegalArgumentException e) {
                    throw new BadBatchException(Stage.APPLY, "table '" + runTable.name() + "': " + e.getMessage(), e);
                }
                runRows.clear();
            }
            runInserts = true;
        }

        /** Forgets statements not yet sent (after a rollback to a savepoint took back what they were part of). */
        void discard() throws SQLException {
            if (open != null) {
                open.clearBatch();
            }
            openCount = 0;
            open = null;
            openKeys.clear();
            runRows.clear();
            runInserts = true;
        }

        void flush() throws SQLException {
            flushRun();
            if (open != null && openCount > 0) {
                open.executeBatch();
            }
            openCount = 0;
            open = null;
            openKeys.clear();
        }

        @Override
        public void close() throws SQLException {
            SQLException first = null;
            for (PreparedStatement ps : statements.values()) {
                try {
                    ps.close();
                } catch (SQLException e) {
                    first = first == null ? e : first;
                }
            }
            if (first != null) {
                throw first;
            }
        }
    }
}
