package io.syncline.api;

/**
 * Identity of one batch: the source node, the channel, and a sequence number that starts at 1 and
 * grows by exactly one per batch for that (source, channel). The target applies batch {@code n}
 * only after {@code n - 1}; that contiguity is what makes apply exactly-once and in order. Number 0 names the
 * state before any batch: a reload taken before the source sealed anything carries it.
 */
public record BatchId(String source, String channel, long sequence) {
    public BatchId {
        Names.requireValid("source", source);
        Names.requireValid("channel", channel);
        if (sequence < 0) {
            throw new IllegalArgumentException("batch sequence must be >= 0, was " + sequence);
        }
    }

    @Override
    public String toString() {
        return source + "/" + channel + "#" + sequence;
    }
}
