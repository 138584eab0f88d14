package io.syncline.api;

import java.time.Instant;

/**
 * What travels in front of a batch's changes.
 *
 * @param id            source, channel and sequence number
 * @param sealedAt      when the source closed the batch
 * @param firstCaptured capture time of the batch's oldest change (null for an empty batch); used for lag
 */
public record BatchHeader(BatchId id, Instant sealedAt, Instant firstCaptured) {
    public BatchHeader {
        java.util.Objects.requireNonNull(id, "id");
        java.util.Objects.requireNonNull(sealedAt, "sealedAt");
    }
}
