package io.syncline.engine.apply;

import io.syncline.api.BatchId;

/** What happened to a batch handed to {@link BatchApplier}. */
public sealed interface ApplyOutcome {
    /** The highest batch of this source and channel now applied at the target: the acknowledgement to send. */
    long lastApplied();

    /** The batch was applied and committed (in a {@link BatchApplier.Group}: applied, committed with the group). */
    record Applied(BatchId id, long changes) implements ApplyOutcome {
        @Override
        public long lastApplied() {
            return id.sequence();
        }
    }

    /** The batch had been applied before (a retry); nothing was done. */
    record Duplicate(BatchId id, long lastApplied) implements ApplyOutcome {
    }
}
