package io.syncline.engine.capture;

import java.sql.Connection;
import java.sql.SQLException;

/**
 * Tells a node, as soon as the database knows, that a transaction captured changes, so the node seals and sends them
 * at once instead of at its next poll (docs/ARCHITECTURE.md, "Real time"). Made by
 * {@link io.syncline.engine.dialect.Dialect#watchCaptures}. Best effort: a node still seals every
 * {@code capture.interval}, which catches anything a watch missed (a dropped listener connection, a restart).
 */
public interface CaptureWatch extends AutoCloseable {

    /**
     * Whether the watch may call before the capturing transaction commits (H2 calls from inside the trigger). A node
     * that finds nothing to seal after such a call looks again a few times shortly after.
     */
    boolean callsBeforeCommit();

    /** Stops watching; the callback is not called afterwards (but for one already running). */
    @Override
    void close();

    /** Opens a connection for the watch to hold (PostgreSQL: one outside the pool, held for as long as it listens). */
    @FunctionalInterface
    interface ConnectionSource {
        Connection open() throws SQLException;
    }
}
