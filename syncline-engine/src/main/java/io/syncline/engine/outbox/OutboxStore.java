package io.syncline.engine.outbox;

import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.load.InitialLoadState;
import io.syncline.engine.schema.SyncSchema;
import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/*
 * The source side of the pipeline after capture: seal outbox rows into numbered batches, read a batch
 * back (any number of times, identically), record acknowledgements and purge what was acknowledged.
 *
 * Batch numbers per channel start at 1 and are contiguous; the next number lives in sync_state and is
 * advanced in the same transaction that records the batch, so a crash can neither skip nor reuse one.
 * Purge runs in the transaction that records the acknowledgement: the outbox holds exactly the
 * unacknowledged batches plus rows not yet sealed. Instances are thread-safe; what they keep in memory
 * (positions recorded, purges done, batch numbers seen) only spares statements and is rebuilt from the
 * database after a restart. Callers serialize seal() per channel (one sync thread per node does it).
 */
public final class OutboxStore {
    private static final String NEXT_SEQ = "batch.next.";
    /** The last batch purged per shared channel and its token, as "n:token" (sync_state key prefix). */
    private static final String PURGED = "batch.purged.";
    /**
     * Per shared channel, the last batch that may be purged, while something here still reads the batches after it
     * (sync_state key prefix; absent: no hold). The hub's recording of its own edits in two-way batches holds it.
     */
    public static final String PURGE_HOLD = "purge.hold.";
    private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();
    private final Dialect dialect;
    private final Clock clock;
    private final HybridClock stamps;
    private final SealListener listener;

    public OutboxStore(Dialect dialect, Clock clock) {
        this(dialect, clock, new HybridClock(clock));
    }

    /** {@code stamps}: the node's hybrid logical clock, which stamps every batch sealed here. */
    public OutboxStore(Dialect dialect, Clock clock, HybridClock stamps) {
        this(dialect, clock, stamps, null);
    }

    /** Like {@link #OutboxStore(Dialect, Clock, HybridClock)}; {@code listener} (may be null) sees every batch sealed here. */
    public OutboxStore(Dialect dialect, Clock clock, HybridClock stamps, SealListener listener) {
        this.dialect = dialect;
        this.clock = clock;
        this.stamps = stamps;
        this.listener = listener;
    }

    /** Told of each batch in the transaction that seals it, after the batch is recorded; a failure undoes the seal. */
    @FunctionalInterface
    public interface SealListener {
        void sealed(Connection c, SealedBatch batch) throws SQLException;
    }

    /** The highest stamp of any batch sealed here, for the node's clock to start above after a restart (0 if none). */
    public static long lastStamp(Connection c) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT MAX(stamp) FROM sync_batch"); ResultSet rs = ps.executeQuery()) {
            long max = rs.next() ? rs.getLong(1) : 0;
            c.commit();
            return max;
        }
    }

    public Dialect dialect() {
        return dialect;
    }

    /** Seals everything committed and not yet sealed in {@code channel} into the next batch. Commits. */
    public Optional<SealedBatch> seal(Connection c, String channel) throws SQLException {
        boolean once = dialect.beginSealTransaction(c);
        int isolation = once ? -1 : c.getTransactionIsolation();
        boolean changeIsolation = !once && isolation != dialect.sealIsolation();
        if (changeIsolation) {
            c.setTransactionIsolation(dialect.sealIsolation());
        }
        try {
            Optional<SealedBatch> sealed = sealWithin(c, channel);
            c.commit();
            return sealed;
        } catch (SQLException | RuntimeException e) {
            c.rollback();
            throw e;
        } finally {
            if (changeIsolation) {
                c.setTransactionIsolation(isolation);
            }
        }
    }

    /**
     * Seals what is committed and not yet sealed in {@code channel} into the next batch, inside the caller's transaction,
     * which must run at the dialect's {@link Dialect#sealIsolation()} and hold off other seals of the channel until it
     * ends; does not commit. On PostgreSQL the batch holds what the transaction's snapshot sees.
     */
    public Optional<SealedBatch> sealInTransaction(Connection c, String channel) throws SQLException {
        return sealWithin(c, channel);
    }

    /** Seals into the next batch inside the caller's transaction, which must run at the dialect's seal isolation. */
    private Optional<SealedBatch> sealWithin(Connection c, String channel) throws SQLException {
        String next = SyncSchema.getState(c, NEXT_SEQ + channel);
        long seq = next == null ? 1 : Long.parseLong(next);
        Optional<SealedBatch> sealed = dialect.sealBatch(c, channel, seq, clock.instant());
        if (sealed.isPresent()) {
            SealedBatch b = sealed.get().stamped(stamps.tick());
            sealed = Optional.of(b);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_batch (channel, batch_seq, snap_from, snap_to, "
                    + "row_count, sealed_at, first_captured, token, stamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
                ps.setString(1, channel);
                ps.setLong(2, seq);
                ps.setString(3, b.from());
                ps.setString(4, b.to());
                ps.setLong(5, b.rowCount());
                ps.setObject(6, utc(b.sealedAt()));
                ps.setObject(7, b.firstCaptured() == null ? null : utc(b.firstCaptured()));
                byte[] token = new byte[8];
                RANDOM.nextBytes(token);
                ps.setString(8, java.util.HexFormat.of().formatHex(token));
                ps.setLong(9, b.stamp());
                ps.executeUpdate();
            }
            SyncSchema.putState(c, NEXT_SEQ + channel, Long.toString(seq + 1));
            if (listener != null) {
                listener.sealed(c, b);
            }
        }
        return sealed;
    }

    /**
     * Where a reload of {@code channel} for {@code destination} starts. In a transaction of {@code c} at the seal isolation
     * that stays open: seals what is committed into a batch, records {@code destination} at the last sealed batch N (the
     * acknowledgement may move back), and, where the dialect can, exports the transaction's snapshot. On PostgreSQL that
     * snapshot is the one batch N was sealed with: a reload read in it holds exactly the changes of batches up to N, and
     * none of a later batch. The caller imports the snapshot on another connection, then commits {@code c}, which must
     * not be used for anything else until then; the caller holds the channel's seal lock meanwhile.
     */
    public ReloadPoint openReload(Connection c, String destination, String channel) throws SQLException {
        lock.lock();
        try {
            forget(destination, channel); // the reload records the destination's position itself
            c.setTransactionIsolation(dialect.sealIsolation());
            sealWithin(c, channel);
            long last = lastSealed(c, channel);
            recordAck(c, destination, channel, last);
            return new ReloadPoint(last, token(c, channel, last), dialect.exportSnapshot(c).orElse(null));
        } catch (SQLException | RuntimeException e) {
            c.rollback();
            throw e;
        } finally {
            lock.unlock();
        }
    }

    /**
     * A reload's batch number, that batch's token (null for 0 or unknown), and, where the dialect exports snapshots, the
     * snapshot to read it in (else null).
     */
    public record ReloadPoint(long batch, String token, String snapshot) {
    }

    /**
     * For a destination of a shared channel that holds every batch up to {@code ledger}, the last of them with
     * {@code token} (null when it does not know it): records that as its position, also
     * when it moves back (its database was restored), purges what every sharer in {@code sharers} has, and commits. In one
     * step under the store's lock, so no purge passes the position between this check and the reading of the batches after
     * it.
     *
     * @return null when every batch after {@code ledger} is here to be sent; else why the destination needs a reload (also
     *         when its batch {@code ledger} carried another token than this database's: it came from a database this one
     *         was restored over)
     */
    public String position(Connection c, String destination, String channel, long ledger, String token,
                           java.util.Collection<String> sharers) throws SQLException {
        String key = destination + '\0' + channel;
        Object keyLock = keyLocks.computeIfAbsent(key, k -> new Object());
        String why = null;
        boolean fast;
        synchronized (keyLock) {
            Recorded before = recorded.get(key);
            fast = before != null && ledger >= before.batch() && sharers.contains(destination);
            if (fast) {
                why = forward(c, key, before, channel, ledger, token);
            }
        }
        if (!fast) {
            lock.lock();
            try {
                synchronized (keyLock) {
                    why = checkAndRecord(c, key, destination, channel, ledger, token, sharers);
                }
            } finally {
                lock.unlock();
            }
        }
        runWantedPurges(c, channel, sharers);
        return why;
    }

    /**
     * Runs the purge of {@code channel} that a position moved without the store's lock asked for, if any and if the lock
     * is free. For a node's periodic task: a position's own attempt gives up when another thread holds the lock, and the
     * holder may be one that does not run purges after it (a seal), so without this the purge would wait for the
     * channel's next fetch.
     */
    public void purgeIfWanted(Connection c, String channel, java.util.Collection<String> sharers) throws SQLException {
        runWantedPurges(c, channel, sharers);
    }

    /**
     * Runs the purges that positions moved without the store's lock asked for ({@link #purgeWanted}), unless another
     * thread holds the lock: a caller of {@link #position} that holds it runs them when it is done, and the node's
     * periodic task runs what is left ({@link #purgeIfWanted}). So no fetch waits for another's.
     */
    private void runWantedPurges(Connection c, String channel, java.util.Collection<String> sharers) throws SQLException {
        while (purgeWanted.contains(channel) && lock.tryLock()) {
            try {
                if (purgeWanted.remove(channel)) {
                    purgeShared(c, channel, sharers);
                    c.commit();
                }
            } catch (SQLException | RuntimeException e) {
                c.rollback();
                purgedTo.remove(channel); // a purge rolled back is not done
                purgeWanted.add(channel);
                throw e;
            } finally {
                lock.unlock();
            }
        }
    }

    /**
     * The common case of {@link #position}, without the store's lock, so the fetches of many destinations are not
     * served one at a time: the destination is a sharer whose position this store recorded, and it moved forward (or
     * stayed). Its batches after the recorded position are kept (its position holds the purge; a purge that leaves it
     * out, past its retention, forgets the recorded position), so those after {@code ledger} are too; only the batch
     * count and the token are checked, and not at all for the same place within {@link #RECORD_AGAIN}. Writing a higher
     * position needs no lock: a purge that reads the lower one keeps more. The purge that the move may allow is asked
     * for ({@link #purgeWanted}). Returns null when done, else why the destination needs a reload (as the full check
     * would say: its batches after the recorded position are all here).
     */
    private String forward(Connection c, String key, Recorded before, String channel, long ledger, String token)
            throws SQLException {
        try {
            Instant now = clock.instant();
            boolean same = ledger == before.batch() && java.util.Objects.equals(token, before.token());
            if (same && Duration.between(before.at(), now).compareTo(RECORD_AGAIN) < 0) {
                return null; // a fetch right after the last one at the same place (a long poll ended): nothing to check or write
            }
            String why = unservable(c, channel, ledger, token, false);
            if (why != null) {
                c.commit();
                return why;
            }
            dialect.relaxCommit(c);
            recordAck(c, before.destination(), channel, ledger);
            c.commit();
            recorded.put(key, new Recorded(before.destination(), ledger, token, now));
            if (ledger != before.batch()) {
                purgeWanted.add(channel); // after the commit: the purge that runs it reads this position
            }
            return null;
        } catch (SQLException | RuntimeException e) {
            c.rollback();
            throw e;
        }
    }

    /**
     * Why the batches after {@code ledger} (with {@code token}) cannot be served from here, or null: it is beyond the last
     * batch sealed, (with {@code purgedToo}) batches after it were purged, or its token is not this database's.
     */
    private String unservable(Connection c, String channel, long ledger, String token, boolean purgedToo) throws SQLException {
        long last = lastSealed(c, channel);
        if (ledger > last) {
            return "it holds batch " + ledger + " but only " + last + " were sealed here";
        }
        if (purgedToo && ledger + 1 < firstAvailable(c, channel)) {
            return "batches after " + ledger + " were purged";
        }
        String mine = ledger == 0 || token == null ? null : token(c, channel, ledger);
        if (mine != null && !mine.equals(token)) {
            return "its batch " + ledger + " is not this database's batch " + ledger + " (this database is older than what it "
                    + "received: restored from a backup?)";
        }
        return null;
    }

    /** Drops what {@link #position} remembers of a destination whose position is written elsewhere. */
    private void forget(String destination, String channel) {
        String key = destination + '\0' + channel;
        synchronized (keyLocks.computeIfAbsent(key, k -> new Object())) {
            recorded.remove(key);
        }
    }

    private String checkAndRecord(Connection c, String key, String destination, String channel, long ledger, String token,
                                  java.util.Collection<String> sharers) throws SQLException {
        try {
            String why = unservable(c, channel, ledger, token, true);
            if (why != null) {
                c.commit();
                return why;
            }
            // Positions are advisory (a destination sends its ledger again at every fetch), so on PostgreSQL their
            // transaction does not wait for its commit to be flushed: fetches are many, and each would cost a disk flush.
            dialect.relaxCommit(c);
            Recorded before = recorded.get(key);
            Instant now = clock.instant();
            boolean write = before == null || before.batch() != ledger || Duration.between(before.at(), now).compareTo(RECORD_AGAIN) >= 0;
            if (write) {
                recordAck(c, destination, channel, ledger);
            }
            purgeShared(c, channel, sharers);
            c.commit();
            if (write) {
                recorded.put(key, new Recorded(destination, ledger, token, now));
            }
            return null;
        } catch (SQLException | RuntimeException e) {
            c.rollback();
            purgedTo.remove(channel); // a purge rolled back with it is not done
            throw e;
        }
    }

    /**
     * Purges the batches of shared {@code channel} that every destination in {@code sharers} with a position has, and
     * commits; for when the sharers changed (a destination left them), not only at a destination's fetch.
     */
    public int purgeShared(Connection c, String channel, java.util.Set<String> sharers) throws SQLException {
        lock.lock();
        try {
            int n = purgeShared(c, channel, (java.util.Collection<String>) sharers);
            c.commit();
            return n;
        } catch (SQLException | RuntimeException e) {
            c.rollback();
            purgedTo.remove(channel); // a purge rolled back is not done
            throw e;
        } finally {
            lock.unlock();
        }
    }

    /** A destination's position as last written to sync_ack by this store and committed, with its token, and when. */
    private record Recorded(String destination, long batch, String token, Instant at) {
    }

    /** An unchanged position is written again (for its time, retention.maxAge) at most this often. */
    private static final Duration RECORD_AGAIN = Duration.ofSeconds(1);
    /**
     * Per destination and channel, the position last written by {@link #position} (under the key's lock, in
     * {@link #keyLocks}); removed by anything else that writes a position, so the next fetch takes the full check.
     */
    private final java.util.Map<String, Recorded> recorded = new ConcurrentHashMap<>();
    private final java.util.Map<String, Object> keyLocks = new ConcurrentHashMap<>();
    /** Channels where a position moved without the store's lock and the purge it may allow has not run yet. */
    private final java.util.Set<String> purgeWanted = ConcurrentHashMap.newKeySet();
    /**
     * Taken by what reads or moves positions as a whole: purges, reloads, acknowledgements, and a position's full check,
     * so no purge passes a position between its check and the reading of the batches after it.
     */
    private final java.util.concurrent.locks.ReentrantLock lock = new java.util.concurrent.locks.ReentrantLock();
    /** Per shared channel, the batch this store last purged up to: a purge that would not pass it does nothing. */
    private final java.util.Map<String, Long> purgedTo = new java.util.HashMap<>();

    /** Purges the batches of {@code channel} that every sharer with an acknowledgement has acknowledged. */
    private int purgeShared(Connection c, String channel, java.util.Collection<String> sharers) throws SQLException {
        purgeWanted.remove(channel); // this purge reads every position recorded so far
        long purgeTo = Long.MAX_VALUE;
        java.util.Set<String> sharing = sharers instanceof java.util.Set<String> set ? set : new java.util.HashSet<>(sharers);
        // One read of the channel's positions, whatever the number of sites.
        try (PreparedStatement ps = c.prepareStatement("SELECT destination, acked_batch FROM sync_ack WHERE channel = ?")) {
            ps.setString(1, channel);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    if (sharing.contains(rs.getString(1))) {
                        purgeTo = Math.min(purgeTo, rs.getLong(2));
                    } else {
                        // Left out (past its retention, no longer routed): its batches may go now, so its next fetch takes
                        // the full check, which sends it a reload if they did.
                        forget(rs.getString(1), channel);
                    }
                }
            }
        }
        if (purgeTo == Long.MAX_VALUE) {
            return 0;
        }
        String hold = SyncSchema.getState(c, PURGE_HOLD + channel);
        if (hold != null) {
            purgeTo = Math.min(purgeTo, Long.parseLong(hold));
        }
        Long done = purgedTo.get(channel);
        if (done != null && purgeTo <= done) {
            return 0; // nothing new to purge (most fetches): no statement more
        }
        // Destinations of a shared channel echo the token of their last batch, which may be the last one purged.
        boolean present = isAvailable(c, channel, purgeTo);
        if (present) {
            String token = token(c, channel, purgeTo);
            SyncSchema.putState(c, PURGED + channel, purgeTo + ":" + (token == null ? "" : token));
        }
        int purged = purgeUpTo(c, channel, purgeTo);
        // Remembered only when the batch purged up to was there (or was purged before): a position may name a batch whose
        // seal this purge's transaction does not see yet, and a purge that found nothing must run again at the next fetch
        // (remembered, it kept that batch until a later one came: DistributionTest, 2 runs in 8).
        if (present || purgedUpTo(c, channel) >= purgeTo) {
            purgedTo.put(channel, purgeTo);
        }
        return purged;
    }

    /** The last batch of {@code channel} this database purged (0: none). */
    private static long purgedUpTo(Connection c, String channel) throws SQLException {
        String purged = SyncSchema.getState(c, PURGED + channel);
        return purged == null ? 0 : Long.parseLong(purged.substring(0, purged.indexOf(':')));
    }

    private int purgeUpTo(Connection c, String channel, long upTo) throws SQLException {
        int purged = 0;
        SealedBatch last = batch(c, channel, upTo);
        if (last != null) {
            purged = dialect.purge(c, last);
        }
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_batch WHERE channel = ? AND batch_seq <= ?")) {
            ps.setString(1, channel);
            ps.setLong(2, upTo);
            ps.executeUpdate();
        }
        return purged;
    }

    /**
     * The token of batch {@code seq} of {@code channel}: from the outbox, or, for the last batch purged, as recorded at
     * the purge; null when it is not known here (older batches, or sealed before tokens existed).
     */
    public String token(Connection c, String channel, long seq) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT token FROM sync_batch WHERE channel = ? AND batch_seq = ?")) {
            ps.setString(1, channel);
            ps.setLong(2, seq);
            try (ResultSet rs = ps.executeQuery()) {
                if (rs.next()) {
                    return rs.getString(1);
                }
            }
        }
        String purged = SyncSchema.getState(c, PURGED + channel);
        if (purged != null && purged.startsWith(seq + ":")) {
            String token = purged.substring(purged.indexOf(':') + 1);
            return token.isEmpty() ? null : token;
        }
        return null;
    }

    /** Whether batch {@code seq} of {@code channel} is still in the outbox (not purged). */
    public boolean isAvailable(Connection c, String channel, long seq) throws SQLException {
        return batch(c, channel, seq) != null;
    }

    /** Sealed batches of {@code channel} not yet acknowledged by {@code destination}, oldest first, at most {@code limit}. */
    public List<SealedBatch> unacknowledged(Connection c, String destination, String channel, int limit) throws SQLException {
        return sealedAfter(c, channel, acknowledged(c, destination, channel), limit);
    }

    /** Sealed batches of {@code channel} numbered above {@code after}, oldest first, at most {@code limit}, with their tokens. */
    public List<SealedBatch> sealedAfter(Connection c, String channel, long after, int limit) throws SQLException {
        List<SealedBatch> out = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT batch_seq, snap_from, snap_to, row_count, sealed_at, first_captured, "
                + "stamp, token FROM sync_batch WHERE channel = ? AND batch_seq > ? ORDER BY channel, batch_seq")) {
            // (ORDER BY the key's columns, channel included: H2 then reads the key in order and stops at the limit;
            // ORDER BY batch_seq alone made it read and sort every batch after, on each call)
            ps.setString(1, channel);
            ps.setLong(2, after);
            ps.setMaxRows(limit);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    OffsetDateTime first = rs.getObject(6, OffsetDateTime.class);
                    out.add(new SealedBatch(channel, rs.getLong(1), rs.getString(2), rs.getString(3), rs.getLong(4),
                            rs.getObject(5, OffsetDateTime.class).toInstant(), first == null ? null : first.toInstant(), rs.getLong(7),
                            rs.getString(8)));
                }
            }
        }
        c.commit();
        return out;
    }

    /** Streams a batch's rows in apply order. Uses a cursor, so memory stays flat for any batch size. */
    public void stream(Connection c, SealedBatch batch, String destination, OutboxRowSink sink) throws SQLException, IOException {
        try {
            dialect.streamBatch(c, batch, destination, sink);
        } finally {
            c.commit();
        }
    }

    /** The highest batch of {@code channel} that {@code destination} acknowledged (0 if none). */
    public long acknowledged(Connection c, String destination, String channel) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT acked_batch FROM sync_ack WHERE destination = ? AND channel = ?")) {
            ps.setString(1, destination);
            ps.setString(2, channel);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        }
    }

    /**
     * Records that {@code destination} applied every batch of {@code channel} up to {@code upTo}, then purges
     * those batches from the outbox, in one transaction. Acknowledgements never move backwards.
     *
     * @throws DivergedException when {@code upTo} is beyond the last sealed batch (nothing is changed)
     * @return outbox rows purged
     */
    public int acknowledge(Connection c, String destination, String channel, long upTo) throws SQLException {
        lock.lock();
        try {
            forget(destination, channel);
            long previous = acknowledged(c, destination, channel);
            if (upTo <= previous) {
                c.commit();
                return 0;
            }
            String next = SyncSchema.getState(c, NEXT_SEQ + channel);
            long lastSealed = next == null ? 0 : Long.parseLong(next) - 1;
            if (upTo > lastSealed) {
                // The destination has batches this database never sealed: the database is older than what was
                // delivered (restored from a backup). Purging on it would delete batches the destination never had.
                throw new DivergedException(destination + " acknowledged batch " + upTo + " of channel '" + channel
                        + "', but only " + lastSealed + " have been sealed here: this database is older than what "
                        + destination + " received");
            }
            // Lost in a crash, an acknowledgement costs nothing: the batches are sent again and the destination's ledger
            // answers them as duplicates. So this commit does not wait for the disk (PostgreSQL).
            dialect.relaxCommit(c);
            recordAck(c, destination, channel, upTo);
            int purged = purgeUpTo(c, channel, upTo);
            io.syncline.engine.apply.CrashPoints.hit("ack-before-commit");
            c.commit();
            return purged;
        } catch (SQLException | RuntimeException e) {
            c.rollback();
            throw e;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Forgets everything sent: empties the outbox, the batches and the acknowledgements, restarts batch numbers at 1
     * and records an initial load of every captured table. Runs in the caller's transaction, which must also record
     * the node's new incarnation before it commits, so that the destination restarts its ledger for this node.
     * Used when the database has diverged from what the destination holds.
     */
    public void startOver(Connection c) throws SQLException {
        try (java.sql.Statement s = c.createStatement()) {
            dialect.resetOutbox(c);
            s.executeUpdate("DELETE FROM sync_batch");
            s.executeUpdate("DELETE FROM sync_ack");
            s.executeUpdate("DELETE FROM sync_guard"); // they name batches of the numbering that ends here
            s.executeUpdate("DELETE FROM sync_state WHERE k LIKE '" + NEXT_SEQ + "%' OR k LIKE '" + PURGED + "%' OR k LIKE '"
                    + InitialLoadState.PREFIX + "%'");
            try (java.sql.ResultSet rs = s.executeQuery("SELECT channel, table_name FROM sync_trigger_hist")) {
                java.util.List<String> keys = new ArrayList<>();
                while (rs.next()) {
                    keys.add(InitialLoadState.key(rs.getString(1), rs.getString(2).toLowerCase(java.util.Locale.ROOT)));
                }
                for (String k : keys) {
                    SyncSchema.putState(c, k, InitialLoadState.START);
                }
            }
        }
    }

    /** The number of the last batch sealed in {@code channel} (0 if none). */
    public long lastSealed(Connection c, String channel) throws SQLException {
        String next = SyncSchema.getState(c, NEXT_SEQ + channel);
        return next == null ? 0 : Long.parseLong(next) - 1;
    }

    /**
     * The first batch of {@code channel} still in the outbox, or the next one to be sealed when none is: a destination
     * whose acknowledgement is below this minus one has missed purged batches.
     */
    public long firstAvailable(Connection c, String channel) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT MIN(batch_seq) FROM sync_batch WHERE channel = ?")) {
            ps.setString(1, channel);
            try (ResultSet rs = ps.executeQuery()) {
                long min = rs.next() ? rs.getLong(1) : 0;
                return min > 0 ? min : lastSealed(c, channel) + 1;
            }
        }
    }

    /** Rows and age of what is sealed but not acknowledged by {@code destination}. */
    public Backlog backlog(Connection c, String destination, String channel) throws SQLException {
        long acked = acknowledged(c, destination, channel);
        try (PreparedStatement ps = c.prepareStatement("SELECT COALESCE(SUM(row_count), 0), MIN(first_captured), COUNT(*) "
                + "FROM sync_batch WHERE channel = ? AND batch_seq > ?")) {
            ps.setString(1, channel);
            ps.setLong(2, acked);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                OffsetDateTime oldest = rs.getObject(2, OffsetDateTime.class);
                Backlog b = new Backlog(rs.getLong(1), rs.getLong(3), oldest == null ? null : oldest.toInstant());
                c.commit();
                return b;
            }
        }
    }

    /** What a source still has to deliver on one channel. */
    public record Backlog(long rows, long batches, Instant oldestCaptured) {
    }

    private void recordAck(Connection c, String destination, String channel, long upTo) throws SQLException {
        for (String sql : new String[] {
                "UPDATE sync_ack SET acked_batch = ?, acked_at = ? WHERE destination = ? AND channel = ?",
                "INSERT INTO sync_ack (acked_batch, acked_at, destination, channel) VALUES (?, ?, ?, ?)"}) {
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setLong(1, upTo);
                ps.setObject(2, utc(clock.instant()));
                ps.setString(3, destination);
                ps.setString(4, channel);
                if (ps.executeUpdate() > 0) {
                    return;
                }
            }
        }
    }

    private static SealedBatch batch(Connection c, String channel, long seq) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT snap_from, snap_to, row_count, sealed_at FROM sync_batch "
                + "WHERE channel = ? AND batch_seq = ?")) {
            ps.setString(1, channel);
            ps.setLong(2, seq);
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    return null;
                }
                return new SealedBatch(channel, seq, rs.getString(1), rs.getString(2), rs.getLong(3),
                        rs.getObject(4, OffsetDateTime.class).toInstant(), null);
            }
        }
    }

    private static OffsetDateTime utc(Instant i) {
        return OffsetDateTime.ofInstant(i, ZoneOffset.UTC);
    }
}
