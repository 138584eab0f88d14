package io.syncline.node;

import io.syncline.transport.http.HttpError;
import java.util.Map;

/**
 * What a pull or a fetch asks for: the batches after {@code ack}, at most {@code max} (1 to 1000) of them.
 *
 * @param ack the last batch the asking node has (0 for none)
 * @param max most batches to send
 */
record Window(long ack, int max) {
    /** Reads {@code ack} (default 0) and {@code max} (default {@code defaultMax}) of a query; 400 naming what is wrong. */
    static Window of(Map<String, String> query, int defaultMax) {
        long ack;
        int max;
        try {
            ack = Long.parseLong(query.getOrDefault("ack", "0"));
            max = Math.max(1, Math.min(1000, Integer.parseInt(query.getOrDefault("max", String.valueOf(defaultMax)))));
        } catch (NumberFormatException e) {
            throw new HttpError(400, "'ack' and 'max' must be whole numbers: " + e.getMessage());
        }
        if (ack < 0) {
            throw new HttpError(400, "'ack' must not be negative, got " + ack);
        }
        return new Window(ack, max);
    }
}
