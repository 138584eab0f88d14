package io.syncline.node;

import io.syncline.transport.http.HttpError;
import java.util.Map;

/**
 * What a pull or a fetch asks for: the batches after {@code ack}, at most {@code max} (1 to 1000) of them, waiting up to
 * {@code waitMillis} for one when there is none yet (a long poll; 0 to {@link #MAX_WAIT_MILLIS}).
 *
 * @param ack        the last batch the asking node has (0 for none)
 * @param max        most batches to send
 * @param waitMillis how long to hold the request open when there is nothing to send yet
 */
record Window(long ack, int max, long waitMillis) {
    /** The longest a long poll is held open, below the idle time-outs of common proxies. */
    static final long MAX_WAIT_MILLIS = 60_000;

    /** Reads {@code ack} (default 0), {@code max} (default {@code defaultMax}) and {@code wait} (default 0) of a query; 400 naming what is wrong. */
    static Window of(Map<String, String> query, int defaultMax) {
        long ack = number(query, "ack", 0);
        int max = (int) Math.max(1, Math.min(1000, number(query, "max", defaultMax)));
        long wait = number(query, "wait", 0);
        if (ack < 0) {
            throw new HttpError(400, "'ack' must not be negative, got " + ack);
        }
        if (wait < 0) {
            throw new HttpError(400, "'wait' (milliseconds) must not be negative, got " + wait);
        }
        return new Window(ack, max, Math.min(wait, MAX_WAIT_MILLIS));
    }

    private static long number(Map<String, String> query, String name, long absent) {
        String text = query.get(name);
        if (text == null) {
            return absent;
        }
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            throw new HttpError(400, "'" + name + "' must be a whole number, got '" + text + "'");
        }
    }
}
