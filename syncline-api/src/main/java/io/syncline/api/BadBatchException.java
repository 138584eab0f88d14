package io.syncline.api;

/**
 * A batch that cannot be applied as sent: malformed, truncated, out of order, or naming tables or
 * columns the target does not have. Nothing of it was applied; the sender keeps it and retries.
 */
public class BadBatchException extends SyncException {
    public BadBatchException(Stage stage, String message) {
        super(stage, message);
    }

    public BadBatchException(Stage stage, String message, Throwable cause) {
        super(stage, message, cause);
    }
}
