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
import java.util.concurrent.Semaphore;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A small HTTP server on the JDK's built-in {@code com.sun.net.httpserver}: named worker threads, JSON error bodies, and
 * a bounded shutdown. Routes are exact paths. Thread-safe after start.
 *
 * <p>At most {@code threads} requests are worked on at once (a permit each); a request that finds none free waits up to
 * {@link #BUSY_WAIT} and is then answered 503, so a node that cannot keep up slows its senders instead of queueing
 * without bound. A request that waits for something to happen (a long poll) gives its permit back while it waits
 * ({@link #idle}), so up to {@link #MAX_WAITING} such requests can wait at once.
 */
public final class HttpEndpoint implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HttpEndpoint.class);

    static {
        // The JDK server waits forever for a stalled peer by default. Bound reading a request (body included) and
        // writing a response to 15 minutes, far above the largest batch, unless the operator chose otherwise.
        System.getProperties().putIfAbsent("sun.net.httpserver.maxReqTime", "900");
        System.getProperties().putIfAbsent("sun.net.httpserver.maxRspTime", "900");
        // Send each write at once (TCP_NODELAY). Otherwise the last small write of a streamed answer (the end of a
        // chunked response) waits for the peer's delayed acknowledgement, about 40 ms on Linux, and a site that commits
        // a fetch's batches at the end of the answer shows them that much later.
        System.getProperties().putIfAbsent("sun.net.httpserver.nodelay", "true");
    }

    /** Handles one request; throw {@link HttpError} to answer with an error status and message. */
    @FunctionalInterface
    public interface Handler {
        void handle(HttpExchange exchange) throws IOException;
    }

    /** How long a request waits for a working permit before it is answered 503, unless the endpoint says otherwise. */
    public static final java.time.Duration BUSY_WAIT = java.time.Duration.ofSeconds(30);
    /** Requests that may wait (long polls, or for a permit) on top of those being worked on. */
    public static final int MAX_WAITING = 4096;
    /** The permits of the endpoint whose request this thread serves, while it holds one. */
    private static final ThreadLocal<Semaphore> HELD = new ThreadLocal<>();

    private final HttpServer server;
    private final ThreadPoolExecutor executor;
    private final Semaphore permits;
    private final java.time.Duration busyWait;
    private final String name;

    /** Binds to {@code host:port} (0 picks a free port); works on at most {@code threads} requests at once. */
    public HttpEndpoint(String name, String host, int port, int threads) throws IOException {
        this(name, host, port, threads, BUSY_WAIT);
    }

    /** As above; a request that finds no working permit for {@code busyWait} is answered 503. */
    public HttpEndpoint(String name, String host, int port, int threads, java.time.Duration busyWait) throws IOException {
        this.name = name;
        this.busyWait = busyWait;
        this.server = HttpServer.create(new InetSocketAddress(host, port), 256);
        AtomicInteger n = new AtomicInteger();
        this.permits = new Semaphore(threads);
        this.executor = new ThreadPoolExecutor(threads, threads + MAX_WAITING, 60, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
            Thread t = new Thread(r, "syncline-" + name + "-http-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        }, (r, pool) -> {
            LOG.warn("{}: {} requests at once, refusing a connection", name, threads + MAX_WAITING);
            throw new java.util.concurrent.RejectedExecutionException(name + " is full"); // the server closes the connection
        });
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
                if (!permits.tryAcquire(busyWait.toMillis(), TimeUnit.MILLISECONDS)) {
                    throw new HttpError(503, name + " is busy: every one of its request slots stayed taken for " + busyWait.toMillis()
                            + " ms; try again later");
                }
                HELD.set(permits);
                try {
                    handler.handle(exchange);
                } finally {
                    HELD.remove();
                    permits.release();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
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

    /** Something to wait for: returns normally once it happened or its time ran out. */
    @FunctionalInterface
    public interface Wait {
        void await() throws InterruptedException;
    }

    /**
     * Runs {@code wait} (a long poll waiting for news) without holding the calling request's working permit, and takes
     * a permit again before returning; a thread that serves no request just waits.
     */
    public static void idle(Wait wait) throws InterruptedException {
        Semaphore held = HELD.get();
        if (held == null) {
            wait.await();
            return;
        }
        held.release();
        HELD.remove();
        try {
            wait.await();
        } finally {
            held.acquireUninterruptibly();
            HELD.set(held);
        }
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
