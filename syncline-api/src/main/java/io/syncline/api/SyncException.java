package io.syncline.api;

/**
 * Base of every exception Syncline throws on purpose. Unchecked. Carries the pipeline {@link Stage}
 * where it happened so that logs and status can say where a failure is.
 */
public class SyncException extends RuntimeException {
    /** Where in the data flow an error happened. */
    public enum Stage { CONFIG, CAPTURE, BATCH, TRANSPORT, APPLY, ACKNOWLEDGE, PURGE, LOAD }

    private final Stage stage;

    public SyncException(Stage stage, String message) {
        super(message);
        this.stage = stage;
    }

    public SyncException(Stage stage, String message, Throwable cause) {
        super(message, cause);
        this.stage = stage;
    }

    /** The pipeline stage the failure belongs to. */
    public Stage stage() {
        return stage;
    }

    /** True when trying the same operation again later may succeed. */
    public boolean isRetriable() {
        return false;
    }
}
