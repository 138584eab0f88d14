package io.syncline.transport.http;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.nio.charset.StandardCharsets;

/** Reading the small JSON answers and error bodies of the peer, for the client side of an exchange. */
public final class Responses {
    private Responses() {
    }

    /** A failed exchange in words: "cannot reach <peer>: ..." when the peer did not answer, else the failure's message. */
    public static String describe(Throwable failure, String peer) {
        return failure instanceof java.net.ConnectException || failure instanceof java.net.SocketTimeoutException
                ? "cannot reach " + peer + ": " + failure.getMessage()
                : failure.getMessage();
    }

    /** The first 4 KiB of an error response, or "" when there is none. Never throws. */
    public static String errorBody(HttpURLConnection conn) {
        try (InputStream err = conn.getErrorStream()) {
            return err == null ? "" : new String(err.readNBytes(4096), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }
}
