package io.syncline.transport.http;

import java.util.Map;

/** Thrown by a handler to answer with an HTTP error status and a JSON body {@code {"error": message, ...extra}}. */
public final class HttpError extends RuntimeException {
    private final int status;
    private final transient Map<String, Object> extra;

    public HttpError(int status, String message) {
        this(status, message, Map.of());
    }

    public HttpError(int status, String message, Map<String, Object> extra) {
        super(message);
        this.status = status;
        this.extra = Map.copyOf(extra);
    }

    public int status() {
        return status;
    }

    public Map<String, Object> extra() {
        return extra;
    }
}
