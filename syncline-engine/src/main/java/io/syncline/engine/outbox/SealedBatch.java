package io.syncline.engine.outbox;

import java.time.Instant;

/**
 * A closed batch in a source's outbox: which rows belong to it is fixed forever (by a snapshot pair on
 * PostgreSQL, by a claim number on H2), so it can be re-read identically for every retry until acknowledged.
 *
 * @param channel       channel name
 * @param sequence      1, 2, 3, ... per channel
 * @param from          dialect-specific lower bound (PostgreSQL: the previous snapshot), may be null
 * @param to            dialect-specific upper bound (PostgreSQL: this batch's snapshot), may be null
 * @param rowCount      outbox rows in the batch
 * @param sealedAt      when it was closed
 * @param firstCaptured capture time of its oldest row
 * @param stamp         the node's hybrid logical clock when it sealed the batch (0 for batches sealed before stamps existed)
 * @param token         the hub's token of the batch, sent with it to the sites (null when none, or when not read)
 */
public record SealedBatch(String channel, long sequence, String from, String to, long rowCount, Instant sealedAt,
                          Instant firstCaptured, long stamp, String token) {
    public SealedBatch(String channel, long sequence, String from, String to, long rowCount, Instant sealedAt, Instant firstCaptured) {
        this(channel, sequence, from, to, rowCount, sealedAt, firstCaptured, 0, null);
    }

    public SealedBatch(String channel, long sequence, String from, String to, long rowCount, Instant sealedAt, Instant firstCaptured,
                       long stamp) {
        this(channel, sequence, from, to, rowCount, sealedAt, firstCaptured, stamp, null);
    }

    /** This batch with its stamp. */
    public SealedBatch stamped(long stamp) {
        return new SealedBatch(channel, sequence, from, to, rowCount, sealedAt, firstCaptured, stamp, token);
    }
}
