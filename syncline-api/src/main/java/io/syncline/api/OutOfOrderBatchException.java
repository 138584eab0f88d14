package io.syncline.api;

/**
 * A batch whose number is not the next one the target expects for its source and channel. Nothing was applied.
 * Carries the expected number, so a sender whose acknowledged batches the target no longer has (its database was
 * restored from a backup) can recognise that and start over.
 */
public class OutOfOrderBatchException extends BadBatchException {
    private final String channel;
    private final long expected;

    public OutOfOrderBatchException(Stage stage, String message, String channel, long expected) {
        super(stage, message);
        this.channel = channel;
        this.expected = expected;
    }

    /** The channel of the refused batch. */
    public String channel() {
        return channel;
    }

    /** The batch number the target expects next. */
    public long expected() {
        return expected;
    }
}
