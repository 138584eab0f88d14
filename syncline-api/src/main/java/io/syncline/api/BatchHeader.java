package io.syncline.api;

import java.time.Instant;

/**
 * What travels in front of a batch's changes.
 *
 * @param id            source, channel and sequence number
 * @param sealedAt      when the source closed the batch
 * @param firstCaptured capture time of the batch's oldest change (null for an empty batch); used for lag
 * @param stamp         the source's hybrid logical clock when it sealed the batch (0 when not known): orders the changes
 *                      of two-way channels for conflict resolution (docs/conflicts.md)
 */
public record BatchHeader(BatchId id, Instant sealedAt, Instant firstCaptured, long stamp) {
    public BatchHeader {
        java.util.Objects.requireNonNull(id, "id");
        java.util.Objects.requireNonNull(sealedAt, "sealedAt");
        if (stamp < 0) {
            throw new IllegalArgumentException("batch stamp must be >= 0, was " + stamp);
        }
    }

    public BatchHeader(BatchId id, Instant sealedAt, Instant firstCaptured) {
        this(id, sealedAt, firstCaptured, 0);
    }
}
