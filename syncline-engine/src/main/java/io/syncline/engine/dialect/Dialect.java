package io.syncline.engine.dialect;

import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.dialect.postgres.PostgresDialect;
import io.syncline.engine.outbox.OutboxRowSink;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * Everything that differs between databases. The engine talks only to this interface; adding MariaDB
 * or SQLite means one new package with a class per role ({@code MariaDbDialect}, {@code MariaDbCaptureTrigger})
 * and no change to the engine.
 *
 * <p>The outbox strategy is the heart of it: {@link #sealBatch} must never skip a change whose
 * transaction commits late (the "data gap" problem) and must order changes so that two changes to the
 * same row appear in commit order. Implementations are stateless and thread-safe.
 */
public interface Dialect {

    /** A short name for logs: {@code postgres}, {@code h2}. */
    String name();

    /** Quotes an identifier exactly as stored in the catalog. */
    default String quote(String identifier) {
        return '"' + identifier.replace("\"", "\"\"") + '"';
    }

    /** A column type for unbounded text in Syncline's own tables. */
    String textType();

    /** Creates the outbox table and its indexes if they do not exist. Runs in the caller's transaction. */
    void installOutbox(Connection c) throws SQLException;

    /** Creates or replaces the capture trigger of {@code table} in {@code channel}. Runs in the caller's transaction. */
    void installCapture(Connection c, String channel, TableMeta table) throws SQLException;

    /**
     * Starts watching for transactions that captured changes, calling {@code onChange} soon after each commits (see
     * {@link io.syncline.engine.capture.CaptureWatch}); null when this database cannot tell, and the node only polls.
     * {@code name} names the watch's thread and log lines.
     */
    default io.syncline.engine.capture.CaptureWatch watchCaptures(io.syncline.engine.capture.CaptureWatch.ConnectionSource source,
            String name, Runnable onChange) throws SQLException {
        return null;
    }

    /**
     * Lets the current transaction commit without waiting for its commit to reach the disk (PostgreSQL:
     * {@code synchronous_commit = off} for this transaction), for writes that may be lost in a crash without harm.
     */
    default void relaxCommit(Connection c) throws SQLException {
    }

    /** A version of the capture this dialect installs; a change reinstalls capture on every table at the next start. */
    default String captureVersion() {
        return "1";
    }

    /** Removes capture from {@code table}. */
    void dropCapture(Connection c, TableMeta table) throws SQLException;

    /**
     * Exports the snapshot of {@code c}'s open transaction for other connections to read in, where the database can
     * (PostgreSQL: {@code pg_export_snapshot()}); empty where it cannot.
     */
    default Optional<String> exportSnapshot(Connection c) throws SQLException {
        return Optional.empty();
    }

    /** Whether {@link #exportSnapshot} exports (PostgreSQL) or always answers empty. */
    default boolean exportsSnapshots() {
        return false;
    }

    /** Starts a REPEATABLE READ transaction on {@code c} that reads in a snapshot {@link #exportSnapshot} exported. */
    default void importSnapshot(Connection c, String snapshot) throws SQLException {
        throw new UnsupportedOperationException(name() + " cannot import snapshots");
    }

    /**
     * Closes the next batch of {@code channel}: everything committed since the previous batch and not yet in one.
     * Runs in the caller's transaction, which uses {@link #sealIsolation()}; the caller records the batch and commits.
     *
     * @return the sealed batch, or empty when nothing new was committed
     */
    Optional<SealedBatch> sealBatch(Connection c, String channel, long sequence, Instant now) throws SQLException;

    /** The isolation level of the transaction that calls {@link #sealBatch}. */
    default int sealIsolation() {
        return Connection.TRANSACTION_READ_COMMITTED;
    }

    /**
     * Starts a transaction on {@code c} at {@link #sealIsolation()} for that transaction only, when the dialect can and
     * {@code c} has no transaction open; false otherwise, and the caller switches the connection's isolation and back
     * (two statements more on PostgreSQL's driver, three with the check of the current level).
     */
    default boolean beginSealTransaction(Connection c) throws SQLException {
        return false;
    }

    /**
     * Streams a sealed batch's changes to {@code sink} in apply order, as canonical JSON rows, with memory bounded
     * whatever the batch's size. Changes whose origin equals the destination are left out (they came from it).
     * Runs in the caller's transaction, which the caller ends.
     */
    void streamBatch(Connection c, SealedBatch batch, String destination, OutboxRowSink sink)
            throws SQLException, java.io.IOException;

    /**
     * Streams the changes of {@code channel} that the next seal would take (committed, as the caller's transaction sees
     * them, and not sealed yet), without sealing them, like {@link #streamBatch}; in the caller's transaction.
     */
    void streamUnsealed(Connection c, String channel, OutboxRowSink sink) throws SQLException, java.io.IOException;

    /**
     * Keeps other transactions from writing {@code tables} (quoted names) until the caller's transaction ends; must be
     * its first statement. Where the database cannot, does nothing.
     */
    default void lockTables(Connection c, java.util.List<String> tables) throws SQLException {
    }

    /**
     * Makes a lock wait in the caller's transaction fail after {@code millis} instead of lasting (SQLState 55P03 on
     * PostgreSQL); must run at the transaction's start. Where the database cannot, does nothing (it has a lock timeout
     * of its own).
     */
    default void limitLockWait(Connection c, long millis) throws SQLException {
    }

    /**
     * {@code insert}, an INSERT statement, made to insert nothing, rather than fail, when the row's key is taken (once a
     * transaction that holds it ends). Where the database cannot, {@code insert} itself: the caller then catches the
     * duplicate key, which does not end the transaction there.
     */
    default String insertUnlessTaken(String insert) {
        return insert;
    }

    /** Deletes the outbox rows of every batch of {@code channel} up to and including {@code upTo}. */
    int purge(Connection c, SealedBatch upTo) throws SQLException;

    /** Empties the outbox and forgets the reader's position, in the caller's transaction (see OutboxStore.startOver). */
    default void resetOutbox(Connection c) throws SQLException {
        try (java.sql.Statement s = c.createStatement()) {
            s.executeUpdate("DELETE FROM sync_outbox");
        }
    }

    /** Drops the undelivered changes of a table that is no longer captured ({@code tableKey}: its lower-case name). */
    default void discardCaptured(Connection c, String tableKey) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_outbox WHERE table_name = ?")) {
            ps.setString(1, tableKey);
            ps.executeUpdate();
        }
    }

    /** Tags the current transaction's writes with {@code origin}, so capture records where they came from. */
    void beginApply(Connection c, String origin) throws SQLException;

    /** Clears the tag set by {@link #beginApply}. */
    void endApply(Connection c) throws SQLException;

    /** An insert-or-update statement for {@code columns} of {@code table}, keyed on its primary key. */
    String upsertSql(TableMeta table, List<ColumnMeta> columns);

    /** True when {@link #bulkUpsert} is faster than JDBC batches of {@link #upsertSql} statements. */
    default boolean supportsBulkUpsert() {
        return false;
    }

    /**
     * Upserts {@code rows} (canonical values; at most one per primary key) into {@code table} in one bulk operation,
     * in the caller's transaction. {@code inserted}: the source inserted every one of these rows, so their keys are
     * most likely new at the target (an implementation may try a plain insert first, and must fall back to an upsert).
     *
     * @return true when the rows went in by a plain insert, false when they were upserted
     * @throws IllegalArgumentException naming the column when a value does not fit it
     */
    default boolean bulkUpsert(Connection c, TableMeta table, List<ColumnMeta> columns, java.util.Collection<java.util.Map<String, Object>> rows,
                               boolean inserted) throws SQLException {
        throw new UnsupportedOperationException(name() + " has no bulk upsert");
    }

    /** The parameter placeholder for a column (some types need a cast). */
    default String placeholder(ColumnMeta column) {
        return "?";
    }

    /** Isolation level of an initial-load chunk: its rows must come from one snapshot, in key order. */
    default int loadIsolation() {
        return Connection.TRANSACTION_READ_COMMITTED;
    }

    /** Row-lock clause used by the initial load so that a concurrent update cannot be overtaken. */
    String loadLockClause();

    /** Picks the dialect from the connection's database product name. */
    static Dialect of(Connection c) throws SQLException {
        String product = c.getMetaData().getDatabaseProductName().toLowerCase(Locale.ROOT);
        if (product.contains("postgres")) {
            return new PostgresDialect();
        }
        if (product.contains("h2")) {
            return new H2Dialect();
        }
        throw new IllegalArgumentException("unsupported database '" + product + "': Syncline supports PostgreSQL and H2");
    }
}
