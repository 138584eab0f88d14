package io.syncline.testkit;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.random.RandomGenerator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A TCP proxy for tests that puts network faults between a client and a target: latency ({@link #delay}), a network
 * that is down ({@link #drop}), connections cut after some bytes, at a fixed count or at random ({@link #cutAfter},
 * {@link #cutAfterProbability}), requests sent twice ({@link #duplicate}), a link that goes silent without a reset
 * ({@link #stall}) and cuts on demand ({@link #cutAll}). It listens on 127.0.0.1 and forwards each connection it
 * accepts to the target over a connection of its own; a cut closes both with a reset (SO_LINGER 0).
 *
 * <p>Threads, all daemons: {@code faultproxy-NAME-accept} accepts and connects to the target; each connection has a
 * reader and a writer per direction ({@code faultproxy-NAME-ID-up-read}, {@code -up-write}, {@code -down-read},
 * {@code -down-write}; up is client to target) with a queue of at most {@value #QUEUED} chunks of at most
 * {@value #CHUNK} bytes between them, and {@code faultproxy-NAME-ID-dup} reads and discards the answers to a duplicate.
 * A reader does not read while the proxy is stalled and waits while its queue is full, so memory stays bounded whatever
 * the peers do.
 *
 * <p>Thread-safe: the faults may be changed from any thread at any time. A delay and a stall apply at once to every
 * open connection; a cut rule and duplication apply to the connections opened after they are set.
 */
public final class FaultProxy implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FaultProxy.class);

    /** The most bytes read at once from one side. */
    static final int CHUNK = 16 * 1024;
    /** The most chunks read but not forwarded yet, per direction of a connection. */
    static final int QUEUED = 16;
    /** How long connecting to the target may take before the client's connection is dropped. */
    static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
    /** How long {@link #close} waits for the proxy's threads to end. */
    static final Duration CLOSE_WAIT = Duration.ofSeconds(10);

    private static final String HOST = "127.0.0.1";

    private final String name;
    private final String targetHost;
    private final int targetPort;
    private final ServerSocket server;
    private final Thread acceptor;
    /** Connections open now: cut by {@link #cutAll}, {@link #drop} and {@link #close}. */
    private final Set<Connection> open = ConcurrentHashMap.newKeySet();
    /** Every thread of this proxy still running, joined by {@link #close}. */
    private final Set<Thread> threads = ConcurrentHashMap.newKeySet();
    /** Notified whenever a stall ends, the delay changes or the proxy closes: writers and readers wait on it. */
    private final Object signal = new Object();

    private final AtomicLong connections = new AtomicLong();
    private final AtomicLong cuts = new AtomicLong();
    private final AtomicLong bytesForwarded = new AtomicLong();
    private final AtomicBoolean closed = new AtomicBoolean();

    private volatile Duration delay = Duration.ZERO;
    private volatile boolean dropping;
    private volatile boolean duplicating;
    private volatile boolean stalled;
    private volatile CutRule cutRule = CutRule.NONE;

    /** Listens on a free port of 127.0.0.1 at once and forwards what it accepts to {@code targetHost:targetPort}. */
    public FaultProxy(String name, String targetHost, int targetPort) throws IOException {
        this(name, 0, targetHost, targetPort);
    }

    /**
     * Listens on {@code port} of 127.0.0.1 at once (0 picks a free port; another port lets a test put a new proxy where
     * a closed one was) and forwards what it accepts to {@code targetHost:targetPort}.
     */
    public FaultProxy(String name, int port, String targetHost, int targetPort) throws IOException {
        this.name = Objects.requireNonNull(name, "name");
        this.targetHost = Objects.requireNonNull(targetHost, "targetHost");
        this.targetPort = targetPort;
        ServerSocket s = new ServerSocket();
        try {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(InetAddress.getByName(HOST), port), 128);
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
        this.server = s;
        this.acceptor = thread("accept", this::accept);
        acceptor.start();
        LOG.debug("{}: listening on {}:{}, forwarding to {}:{}", name, HOST, port(), targetHost, targetPort);
    }

    /** Holds every chunk of data, both ways, for {@code d} after it was read before forwarding it; ZERO for none. */
    public FaultProxy delay(Duration d) {
        Objects.requireNonNull(d, "delay");
        if (d.isNegative()) {
            throw new IllegalArgumentException("a delay cannot be negative: " + d);
        }
        delay = d;
        LOG.debug("{}: delay {}", name, d);
        wake();
        return this;
    }

    /**
     * While true the network is down: every open connection is cut at once, and a new one is accepted and cut at once
     * (both counted in {@link #cuts}).
     */
    public FaultProxy drop(boolean on) {
        dropping = on;
        LOG.debug("{}: drop {}", name, on ? "on" : "off");
        if (on) {
            cutOpen("network down");
        }
        return this;
    }

    /**
     * Cuts each connection opened from now on once {@code bytes} have been forwarded from the client to the target over
     * it (the target gets exactly that many; 0 cuts it as soon as it is opened); -1 turns cutting off. Replaces a rule
     * set by {@link #cutAfterProbability}.
     */
    public FaultProxy cutAfter(long bytes) {
        if (bytes < -1) {
            throw new IllegalArgumentException("cutAfter takes a byte count or -1 for off: " + bytes);
        }
        cutRule = bytes < 0 ? CutRule.NONE : new CutRule(1.0, bytes, bytes, null);
        LOG.debug("{}: cut {}", name, bytes < 0 ? "off" : "after " + bytes + " bytes");
        return this;
    }

    /**
     * Cuts each connection opened from now on with probability {@code p}, once a number of bytes drawn from {@code [1,
     * maxBytes]} has been forwarded from the client to the target. {@code rnd} is only used by the accept thread, so need
     * not be thread-safe; a seeded one makes a run repeatable as far as the order of connections is. Replaces a rule set
     * by {@link #cutAfter}, which also turns this off with -1.
     */
    public FaultProxy cutAfterProbability(double p, long maxBytes, RandomGenerator rnd) {
        if (!(p >= 0 && p <= 1)) {
            throw new IllegalArgumentException("a probability is within [0, 1]: " + p);
        }
        if (maxBytes < 1) {
            throw new IllegalArgumentException("maxBytes must be at least 1: " + maxBytes);
        }
        cutRule = new CutRule(p, 1, maxBytes, Objects.requireNonNull(rnd, "rnd"));
        LOG.debug("{}: cut with probability {} after 1 to {} bytes", name, p, maxBytes);
        return this;
    }

    /**
     * While true each connection opened is doubled: what the client sends is also sent to the target over a second
     * connection opened alongside, whose answers are read and discarded (the target gets every request twice).
     */
    public FaultProxy duplicate(boolean on) {
        duplicating = on;
        LOG.debug("{}: duplicate {}", name, on ? "on" : "off");
        return this;
    }

    /**
     * While true nothing is forwarded either way and nothing more is read, but connections stay open: a link that goes
     * silent without a reset. What was held is forwarded, in order, once false.
     */
    public FaultProxy stall(boolean on) {
        stalled = on;
        LOG.debug("{}: stall {}", name, on ? "on" : "off");
        wake();
        return this;
    }

    /** Cuts every open connection now (each counted in {@link #cuts}); returns how many were cut. */
    public int cutAll() {
        return cutOpen("cut on demand");
    }

    /** The port this proxy listens on. */
    public int port() {
        return server.getLocalPort();
    }

    /** The address this proxy listens on: {@code 127.0.0.1}. */
    public String host() {
        return HOST;
    }

    /** {@code http://127.0.0.1:PORT}. */
    public String url() {
        return "http://" + HOST + ":" + port();
    }

    /** Connections accepted, dropped ones included. */
    public long connections() {
        return connections.get();
    }

    /** Connections cut by a fault: {@link #drop}, a cut rule or {@link #cutAll} ({@link #close} does not count). */
    public long cuts() {
        return cuts.get();
    }

    /** Bytes forwarded both ways to the client and the target (duplicates not counted). */
    public long bytesForwarded() {
        return bytesForwarded.get();
    }

    /** Connections open now. */
    public int openConnections() {
        return open.size();
    }

    /** Stops listening, cuts every connection and waits up to {@link #CLOSE_WAIT} for the proxy's threads to end. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            server.close();
        } catch (IOException e) {
            LOG.debug("{}: closing the listening socket: {}", name, e.toString());
        }
        for (Connection c : open) {
            c.end("proxy closed", false);
        }
        wake();
        long deadline = System.nanoTime() + CLOSE_WAIT.toNanos();
        List<Thread> left = new ArrayList<>();
        for (Thread t : List.copyOf(threads)) {
            try {
                t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            if (t.isAlive()) {
                left.add(t);
            }
        }
        if (!left.isEmpty()) {
            LOG.warn("{}: {} threads still running after {}: {}", name, left.size(), CLOSE_WAIT, left);
        }
        LOG.debug("{}: closed after {} connections, {} cuts, {} bytes", name, connections(), cuts(), bytesForwarded());
    }

    @Override
    public String toString() {
        return "FaultProxy[" + name + " " + HOST + ":" + port() + " -> " + targetHost + ":" + targetPort + "]";
    }

    private void accept() {
        while (!closed.get()) {
            Socket client;
            try {
                client = server.accept();
            } catch (IOException e) {
                if (!closed.get()) {
                    LOG.warn("{}: accepting stopped: {}", name, e.toString());
                }
                return;
            }
            open(client);
        }
    }

    /** Connects an accepted client to the target, or cuts it if the network is down. Accept thread only. */
    private void open(Socket client) {
        long id = connections.incrementAndGet();
        if (dropping || closed.get()) {
            if (!closed.get()) {
                cuts.incrementAndGet();
                LOG.debug("{}: connection {} dropped (network down)", name, id);
            }
            abort(client);
            return;
        }
        Socket target = new Socket();
        Socket dup = null;
        try {
            client.setTcpNoDelay(true);
            target.setTcpNoDelay(true);
            target.connect(new InetSocketAddress(targetHost, targetPort), (int) CONNECT_TIMEOUT.toMillis());
        } catch (IOException e) {
            LOG.debug("{}: connection {} could not reach {}:{}: {}", name, id, targetHost, targetPort, e.toString());
            abort(client);
            abort(target);
            return;
        }
        if (duplicating) {
            dup = new Socket();
            try {
                dup.setTcpNoDelay(true);
                dup.connect(new InetSocketAddress(targetHost, targetPort), (int) CONNECT_TIMEOUT.toMillis());
                LOG.debug("{}: connection {} duplicated", name, id);
            } catch (IOException e) {
                LOG.debug("{}: connection {} not duplicated, could not reach the target: {}", name, id, e.toString());
                abort(dup);
                dup = null;
            }
        }
        long cutAt = cutRule.pick();
        if (cutAt >= 0) {
            LOG.debug("{}: connection {} will be cut after {} bytes", name, id, cutAt);
        }
        Connection c = new Connection(id, client, target, dup, cutAt);
        open.add(c);
        c.start();
        // Checked again after registering: a drop or close that came meanwhile may not have seen this connection.
        if (closed.get()) {
            c.end("proxy closed", false);
        } else if (dropping) {
            c.end("network down", true);
        } else if (cutAt == 0) {
            c.end("cut after 0 bytes", true);
        }
    }

    private int cutOpen(String why) {
        int n = 0;
        for (Connection c : open) {
            if (c.end(why, true)) {
                n++;
            }
        }
        return n;
    }

    private void wake() {
        synchronized (signal) {
            signal.notifyAll();
        }
    }

    /** Waits while stalled; false if the connection ended meanwhile. */
    private boolean awaitFlowing(Connection c) throws InterruptedException {
        synchronized (signal) {
            while (stalled && !c.over.get()) {
                signal.wait();
            }
        }
        return !c.over.get();
    }

    /** Waits until a chunk read at {@code readNanos} is due and the proxy is not stalled; false if the connection ended. */
    private boolean awaitDue(Connection c, long readNanos) throws InterruptedException {
        synchronized (signal) {
            while (!c.over.get()) {
                if (stalled) {
                    signal.wait();
                    continue;
                }
                long left = nanos(delay) - (System.nanoTime() - readNanos);
                if (left <= 0) {
                    return true;
                }
                TimeUnit.NANOSECONDS.timedWait(signal, left);
            }
        }
        return false;
    }

    private static long nanos(Duration d) {
        try {
            return d.toNanos();
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    /** A new daemon thread of this proxy, not started yet, that leaves {@link #threads} when it ends. */
    private Thread thread(String suffix, Runnable body) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } finally {
                threads.remove(Thread.currentThread());
            }
        }, "faultproxy-" + name + "-" + suffix);
        t.setDaemon(true);
        threads.add(t);
        return t;
    }

    /** Closes a socket with a reset instead of an orderly end. Never throws. */
    private static void abort(Socket s) {
        if (s == null) {
            return;
        }
        try {
            if (!s.isClosed()) {
                s.setSoLinger(true, 0);
            }
        } catch (IOException e) {
            // closed meanwhile: nothing to reset
        }
        quietClose(s);
    }

    private static void quietClose(Socket s) {
        try {
            s.close();
        } catch (IOException e) {
            // nothing left to do with it
        }
    }

    /**
     * When each new connection is cut: with probability {@code p}, after a byte count drawn from {@code [min, max]}. Not
     * thread-safe ({@code rnd}); used by the accept thread only.
     */
    private record CutRule(double p, long min, long max, RandomGenerator rnd) {
        static final CutRule NONE = new CutRule(0, -1, -1, null);

        /** The byte count after which to cut a new connection, -1 for never. */
        long pick() {
            if (min < 0 || p <= 0) {
                return -1;
            }
            if (rnd == null) {
                return min;
            }
            if (p < 1 && rnd.nextDouble() >= p) {
                return -1;
            }
            return min == max ? min : rnd.nextLong(min, max + 1);
        }
    }

    /**
     * A chunk read from one side (the first {@code length} bytes of {@code data}), with the time it was read at;
     * {@link #END} marks an orderly end of the stream.
     */
    private record Chunk(byte[] data, int length, long readNanos) {
        static final Chunk END = new Chunk(new byte[0], 0, 0);
    }

    /**
     * One client connection: the client's socket, the proxy's connection to the target and possibly a duplicate of it,
     * with the threads that forward between them. Thread-safe: it ends once, by whichever thread comes first.
     */
    private final class Connection {
        final long id;
        final Socket client;
        final Socket target;
        final Socket dup;
        /** Bytes from the client after which to cut, -1 for never. */
        final long cutAt;
        final AtomicBoolean over = new AtomicBoolean();
        /** Directions still forwarding; at 0 both sides ended in order and both sockets are closed. */
        final AtomicInteger directions = new AtomicInteger(2);
        /** Parts still running: the two directions together, and the duplicate's reader. At 0 the connection is over. */
        final AtomicInteger parts;
        final List<Thread> workers;
        /** Set by the up writer when writing to the duplicate failed: it stops being written. Up writer only. */
        boolean dupBroken;
        /** Bytes forwarded from the client to the target. Written by the up writer only. */
        volatile long sentUp;

        Connection(long id, Socket client, Socket target, Socket dup, long cutAt) {
            this.id = id;
            this.client = client;
            this.target = target;
            this.dup = dup;
            this.cutAt = cutAt;
            this.parts = new AtomicInteger(dup == null ? 1 : 2);
            BlockingQueue<Chunk> up = new ArrayBlockingQueue<>(QUEUED);
            BlockingQueue<Chunk> down = new ArrayBlockingQueue<>(QUEUED);
            // Each direction's buffers, written by its writer, back to its reader: no array per chunk (the benchmarks'
            // proxies forward gigabytes in the process they measure).
            BlockingQueue<byte[]> upFree = new ArrayBlockingQueue<>(QUEUED + 2);
            BlockingQueue<byte[]> downFree = new ArrayBlockingQueue<>(QUEUED + 2);
            List<Thread> ts = new ArrayList<>(5);
            ts.add(thread(id + "-up-read", () -> read(client, up, upFree)));
            ts.add(thread(id + "-up-write", () -> write(up, upFree, target, true)));
            ts.add(thread(id + "-down-read", () -> read(target, down, downFree)));
            ts.add(thread(id + "-down-write", () -> write(down, downFree, client, false)));
            if (dup != null) {
                ts.add(thread(id + "-dup", this::drainDup));
            }
            this.workers = List.copyOf(ts);
        }

        void start() {
            workers.forEach(Thread::start);
            if (over.get()) {
                // Ended before its threads were alive, when interrupting them had no effect.
                workers.forEach(Thread::interrupt);
            }
        }

        /**
         * Ends the connection now with a reset on every socket; {@code fault} counts it in {@link #cuts}. True if this
         * call ended it.
         */
        boolean end(String why, boolean fault) {
            if (!over.compareAndSet(false, true)) {
                return false;
            }
            if (fault) {
                cuts.incrementAndGet();
                LOG.debug("{}: connection {} cut ({}) after {} bytes from the client", name, id, why, sentUp);
            } else {
                LOG.debug("{}: connection {} ended: {}", name, id, why);
            }
            open.remove(this);
            abort(client);
            abort(target);
            abort(dup);
            workers.forEach(Thread::interrupt);
            wake();
            return true;
        }

        /**
         * Reads {@code from} into {@code queue} until it ends, into buffers from {@code free} (new ones while it has
         * none); stops reading while the proxy is stalled.
         */
        private void read(Socket from, BlockingQueue<Chunk> queue, BlockingQueue<byte[]> free) {
            try {
                InputStream in = from.getInputStream();
                while (awaitFlowing(this)) {
                    byte[] buf = free.poll();
                    if (buf == null) {
                        buf = new byte[CHUNK];
                    }
                    int n = in.read(buf);
                    if (n < 0) {
                        queue.put(Chunk.END);
                        return;
                    }
                    queue.put(new Chunk(buf, n, System.nanoTime()));
                }
            } catch (IOException | InterruptedException e) {
                failed(e);
            }
        }

        /**
         * Forwards what {@code queue} holds to {@code to} once due, cutting the connection when its rule says so; each
         * chunk's buffer goes to {@code free} once written.
         */
        private void write(BlockingQueue<Chunk> queue, BlockingQueue<byte[]> free, Socket to, boolean up) {
            try {
                OutputStream out = to.getOutputStream();
                OutputStream dupOut = up && dup != null ? dup.getOutputStream() : null;
                while (true) {
                    Chunk c = queue.take();
                    if (c == Chunk.END) {
                        to.shutdownOutput();
                        if (dupOut != null && !dupBroken) {
                            shutdownDup();
                        }
                        directionDone();
                        return;
                    }
                    if (!awaitDue(this, c.readNanos())) {
                        return;
                    }
                    int len = c.length();
                    boolean cut = false;
                    if (up && cutAt >= 0 && sentUp + len >= cutAt) {
                        len = (int) (cutAt - sentUp);
                        cut = true;
                    }
                    out.write(c.data(), 0, len);
                    bytesForwarded.addAndGet(len);
                    if (up) {
                        sentUp += len;
                        if (dupOut != null && !dupBroken) {
                            writeDup(dupOut, c.data(), len);
                        }
                    }
                    if (cut) {
                        end("cut after " + cutAt + " bytes", true);
                        return;
                    }
                    free.offer(c.data());
                }
            } catch (IOException | InterruptedException e) {
                failed(e);
            }
        }

        private void writeDup(OutputStream dupOut, byte[] data, int len) {
            try {
                dupOut.write(data, 0, len);
            } catch (IOException e) {
                dupBroken = true;
                LOG.debug("{}: connection {} duplicate stopped: {}", name, id, e.toString());
            }
        }

        private void shutdownDup() {
            try {
                dup.shutdownOutput();
            } catch (IOException e) {
                LOG.debug("{}: connection {} duplicate: {}", name, id, e.toString());
            }
        }

        /** Reads and discards what the target answers to the duplicate, until it ends. */
        private void drainDup() {
            byte[] buf = new byte[CHUNK];
            boolean clean = false;
            try {
                InputStream in = dup.getInputStream();
                while (in.read(buf) >= 0) {
                    // discarded: the client gets the answers to the first connection only
                }
                clean = true;
            } catch (IOException e) {
                if (!over.get()) {
                    LOG.debug("{}: connection {} duplicate ended: {}", name, id, e.toString());
                }
            }
            if (clean) {
                quietClose(dup);
            } else {
                abort(dup);
            }
            partDone();
        }

        /** One direction ended in order; once both have, both sockets are closed. */
        private void directionDone() {
            if (directions.decrementAndGet() == 0) {
                quietClose(client);
                quietClose(target);
                partDone();
            }
        }

        private void partDone() {
            if (parts.decrementAndGet() == 0 && over.compareAndSet(false, true)) {
                open.remove(this);
                LOG.debug("{}: connection {} closed", name, id);
            }
        }

        /** A side failed (a reset, a closed socket): the connection ends, passing the reset on to the other side. */
        private void failed(Exception e) {
            if (!over.get()) {
                end(e.toString(), false);
            }
        }
    }
}
