package io.syncline.transport.http;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.syncline.transport.wire.WireFormat;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A small HTTP server on the JDK's built-in {@code com.sun.net.httpserver}: named worker threads, a bounded
 * queue, JSON error bodies, and a bounded shutdown. Routes are exact paths. Thread-safe after start.
 */
public final class HttpEndpoint implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HttpEndpoint.class);

    static {
        // The JDK server waits forever for a stalled peer by default. Bound reading a request (body included) and
        // writing a response to 15 minutes, far above the largest batch, unless the operator chose otherwise.
        System.getProperties().putIfAbsent("sun.net.httpserver.maxReqTime", "900");
        System.getProperties().putIfAbsent("sun.net.httpserver.maxRspTime", "900");
    }

    /** Handles one request; throw {@link HttpError} to answer with an error status and message. */
    @FunctionalInterface
    public interface Handler {
        void handle(HttpExchange exchange) throws IOException;
    }

    private final HttpServer server;
    private final ThreadPoolExecutor executor;
    private final String name;

    /** Binds to {@code host:port} (0 picks a free port). */
    public HttpEndpoint(String name, String host, int port, int threads) throws IOException {
        this.name = name;
        this.server = HttpServer.create(new InetSocketAddress(host, port), 256);
        AtomicInteger n = new AtomicInteger();
        this.executor = new ThreadPoolExecutor(threads, threads, 60, TimeUnit.SECONDS, new ArrayBlockingQueue<>(1024), r -> {
            Thread t = new Thread(r, "syncline-" + name + "-http-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        }, (r, pool) -> LOG.warn("{}: HTTP queue full, dropping a connection", name));
        server.setExecutor(executor);
    }

    /** Registers a handler for an exact path. */
    public void route(String path, String method, Handler handler) {
        server.createContext(path, exchange -> {
            // Not try-with-resources: the exchange must still be open when the catch blocks answer with an error.
            try {
                if (!exchange.getRequestURI().getPath().equals(path)) {
                    throw new HttpError(404, "no such endpoint: " + exchange.getRequestURI().getPath());
                }
                if (!exchange.getRequestMethod().equalsIgnoreCase(method)) {
                    throw new HttpError(405, path + " accepts " + method + ", not " + exchange.getRequestMethod());
                }
                handler.handle(exchange);
            } catch (HttpError e) {
                sendError(exchange, e.status(), e.getMessage(), e.extra());
            } catch (RuntimeException e) {
                LOG.error("{}: {} {} failed", name, exchange.getRequestMethod(), path, e);
                sendError(exchange, 500, "internal error: " + e, Map.of());
            } catch (IOException e) {
                LOG.debug("{}: {} {}: connection problem: {}", name, exchange.getRequestMethod(), path, e.toString());
            } finally {
                exchange.close();
            }
        });
    }

    public void start() {
        server.start();
        LOG.info("{}: listening on http://{}:{}", name, host(), port());
    }

    public int port() {
        return server.getAddress().getPort();
    }

    public String host() {
        return server.getAddress().getHostString();
    }

    /** Sends a JSON body with a status code. */
    public static void sendJson(HttpExchange ex, int status, Object body) throws IOException {
        byte[] bytes = WireFormat.MAPPER.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    private static void sendError(HttpExchange ex, int status, String message, Map<String, Object> extra) {
        try {
            drain(ex.getRequestBody());
            java.util.LinkedHashMap<String, Object> body = new java.util.LinkedHashMap<>();
            body.put("error", message);
            body.put("status", status);
            body.putAll(extra);
            sendJson(ex, status, body);
        } catch (IOException | RuntimeException e) {
            LOG.debug("could not send error response: {}", e.toString());
        }
    }

    /** Reads and discards what is left of a request body, at most 64 MiB, so the client sees the response. */
    public static void drain(InputStream in) {
        byte[] buf = new byte[8192];
        long total = 0;
        try {
            int n;
            while (total < (64L << 20) && (n = in.read(buf)) > 0) {
                total += n;
            }
        } catch (IOException ignored) {
            // the peer went away: nothing to drain
        }
    }

    /** Reads a small request body as UTF-8 text (at most 1 MiB). */
    public static String readSmallBody(HttpExchange ex) throws IOException {
        byte[] bytes = ex.getRequestBody().readNBytes(1 << 20);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdown();
        try {
            if (!executor.awaitTermination(5, TimeUnit.SECONDS)) {
                executor.shutdownNow();
            }
        } catch (InterruptedException e) {
            executor.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }

    /** The request's query parameters, decoded; a parameter given twice keeps its last value. */
    public static java.util.Map<String, String> query(HttpExchange ex) {
        java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
        String raw = ex.getRequestURI().getRawQuery();
        if (raw == null) {
            return m;
        }
        for (String part : raw.split("&")) {
            int i = part.indexOf('=');
            if (i > 0) {
                m.put(java.net.URLDecoder.decode(part.substring(0, i), java.nio.charset.StandardCharsets.UTF_8),
                        java.net.URLDecoder.decode(part.substring(i + 1), java.nio.charset.StandardCharsets.UTF_8));
            }
        }
        return m;
    }
}
