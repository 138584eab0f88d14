package io.syncline.engine.outbox;

import io.syncline.api.SyncException;

/**
 * This database no longer matches what its destination has received: it was restored from a backup or
 * replaced. Continuing would lose changes silently (batch numbers the destination already has would be
 * skipped as duplicates), so the node must start over with {@link OutboxStore#startOver}.
 */
public final class DivergedException extends SyncException {
    public DivergedException(String message) {
        super(Stage.ACKNOWLEDGE, message);
    }
}
