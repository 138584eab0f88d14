package io.syncline.api;

/** A failure that may go away by itself (network down, peer restarting, lock timeout): the work is kept and retried. */
public class RetriableSyncException extends SyncException {
    public RetriableSyncException(Stage stage, String message) {
        super(stage, message);
    }

    public RetriableSyncException(Stage stage, String message, Throwable cause) {
        super(stage, message, cause);
    }

    @Override
    public boolean isRetriable() {
        return true;
    }
}
