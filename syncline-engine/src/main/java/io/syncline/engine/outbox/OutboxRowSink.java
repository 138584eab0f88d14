package io.syncline.engine.outbox;

import java.io.IOException;
import java.time.Instant;

/** Receives a sealed batch's rows, in order, as raw canonical JSON text straight from the outbox. */
@FunctionalInterface
public interface OutboxRowSink {
    void accept(String op, String table, String oldRow, String newRow, Instant capturedAt) throws IOException;
}
