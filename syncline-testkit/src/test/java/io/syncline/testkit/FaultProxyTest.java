package io.syncline.testkit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.zip.CRC32;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class FaultProxyTest {
    /** The bound on every wait for something that should happen. */
    private static final Duration WAIT = Duration.ofSeconds(20);
    /** How long something that should not happen is watched for not happening. */
    private static final Duration QUIET = Duration.ofMillis(300);

    private Target target;
    private FaultProxy proxy;
    private final List<Socket> clients = new ArrayList<>();

    @BeforeEach
    void start() throws IOException {
        target = new Target(true);
        proxy = new FaultProxy("test", "127.0.0.1", target.port());
    }

    @AfterEach
    void stop() throws IOException {
        for (Socket c : clients) {
            c.close();
        }
        proxy.close();
        target.close();
    }

    @Test
    void shouldPassBytesUnchangedBothWays() throws Exception {
        byte[] sent = new byte[4 * 1024 * 1024 + 123];
        new Random(42).nextBytes(sent);
        Socket c = connect();
        Thread writer = daemon("client-writer", () -> {
            try {
                OutputStream out = c.getOutputStream();
                for (int off = 0; off < sent.length; off += 50_000) {
                    out.write(sent, off, Math.min(50_000, sent.length - off));
                }
                c.shutdownOutput();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        writer.start();
        byte[] echoed = c.getInputStream().readNBytes(sent.length);
        writer.join(WAIT.toMillis());

        assertThat(writer.isAlive()).isFalse();
        assertThat(echoed).hasSize(sent.length);
        assertThat(crc(echoed)).isEqualTo(crc(sent));
        assertThat(c.getInputStream().read()).as("the target's orderly end is passed on").isEqualTo(-1);
        assertThat(target.peer(0).received()).hasSize(sent.length);
        assertThat(crc(target.peer(0).received())).isEqualTo(crc(sent));
        assertThat(proxy.bytesForwarded()).isEqualTo(2L * sent.length);
        assertThat(proxy.connections()).isEqualTo(1);
        assertThat(proxy.cuts()).isZero();
        await().atMost(WAIT).until(() -> proxy.openConnections() == 0);
    }

    @Test
    void shouldDelayEachWay() throws Exception {
        Duration delay = Duration.ofMillis(200);
        proxy.delay(delay);
        Socket c = connect();

        long start = System.nanoTime();
        assertThat(roundTrip(c, "ping")).isEqualTo("ping");
        Duration took = Duration.ofNanos(System.nanoTime() - start);

        assertThat(took).as("held on the way there and on the way back").isGreaterThanOrEqualTo(delay.multipliedBy(2));
        proxy.delay(Duration.ZERO);
        assertThat(roundTrip(c, "pong")).isEqualTo("pong");
    }

    @Test
    void shouldKeepTheOrderOfChunksHeldByADelay() throws Exception {
        proxy.delay(Duration.ofMillis(50));
        Socket c = connect();
        OutputStream out = c.getOutputStream();
        ByteArrayOutputStream sent = new ByteArrayOutputStream();
        for (int i = 0; i < 100; i++) {
            byte[] b = ("line " + i + "\n").getBytes(StandardCharsets.US_ASCII);
            out.write(b);
            sent.write(b);
        }
        byte[] echoed = c.getInputStream().readNBytes(sent.size());
        assertThat(echoed).isEqualTo(sent.toByteArray());
    }

    @Test
    void shouldCutEverythingWhileDroppingAndPassAgainAfter() throws Exception {
        Socket before = connect();
        assertThat(roundTrip(before, "up")).isEqualTo("up");

        proxy.drop(true);
        assertThat(endsWithEofOrReset(before)).as("an open connection is cut").isTrue();
        assertThat(connectAndReadEndsWithEofOrReset()).as("a new connection is cut").isTrue();
        assertThat(proxy.cuts()).isEqualTo(2);

        proxy.drop(false);
        assertThat(roundTrip(connect(), "back")).isEqualTo("back");
        assertThat(proxy.connections()).isEqualTo(3);
        assertThat(target.peers()).as("a dropped connection never reaches the target").hasSize(2);
    }

    @Test
    void shouldCutAfterTheGivenBytesFromTheClient() throws Exception {
        target.close();
        target = new Target(false);
        proxy.close();
        proxy = new FaultProxy("test", "127.0.0.1", target.port());
        proxy.cutAfter(1000);

        for (int i = 0; i < 2; i++) {
            Socket c = connect();
            writeIgnoringReset(c, new byte[5000]);
            assertThat(endsWithEofOrReset(c)).isTrue();
            Peer p = target.peer(i);
            await().atMost(WAIT).until(p::ended);
            assertThat(p.received()).as("connection %d", i).hasSize(1000);
        }
        assertThat(proxy.cuts()).isEqualTo(2);

        proxy.cutAfter(-1);
        Socket c = connect();
        c.getOutputStream().write(new byte[5000]);
        await().atMost(WAIT).until(() -> target.peer(2).received().length == 5000);
        assertThat(proxy.cuts()).isEqualTo(2);
    }

    @Test
    void shouldCutAtRandomWithinTheBoundOrNotAtAll() throws Exception {
        target.close();
        target = new Target(false);
        proxy.close();
        proxy = new FaultProxy("test", "127.0.0.1", target.port());

        proxy.cutAfterProbability(1.0, 100, new SplittableRandom(7));
        Socket cut = connect();
        writeIgnoringReset(cut, new byte[5000]);
        assertThat(endsWithEofOrReset(cut)).isTrue();
        await().atMost(WAIT).until(() -> target.peer(0).ended());
        assertThat(target.peer(0).received().length).isBetween(1, 100);

        proxy.cutAfterProbability(0.0, 100, new SplittableRandom(7));
        Socket kept = connect();
        kept.getOutputStream().write(new byte[5000]);
        await().atMost(WAIT).until(() -> target.peer(1).received().length == 5000);
        assertThat(proxy.cuts()).isEqualTo(1);

        assertThatThrownBy(() -> proxy.cutAfterProbability(1.5, 100, new SplittableRandom()))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> proxy.cutAfterProbability(0.5, 0, new SplittableRandom()))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void shouldSendWhatTheClientSendsTwiceWhenDuplicating() throws Exception {
        proxy.duplicate(true);
        Socket c = connect();
        assertThat(roundTrip(c, "POST /push")).isEqualTo("POST /push");
        c.shutdownOutput();
        assertThat(c.getInputStream().read()).as("the client gets one answer only").isEqualTo(-1);

        await().atMost(WAIT).until(() -> target.peers().size() == 2
                && target.peers().stream().allMatch(p -> p.text().equals("POST /push") && p.ended()));
        await().atMost(WAIT).until(() -> proxy.openConnections() == 0);

        proxy.duplicate(false);
        assertThat(roundTrip(connect(), "once")).isEqualTo("once");
        assertThat(target.peers()).hasSize(3);
    }

    @Test
    void shouldHoldBothWaysWhileStalledAndKeepTheConnection() throws Exception {
        Socket c = connect();
        assertThat(roundTrip(c, "a")).isEqualTo("a");
        Peer p = target.peer(0);

        proxy.stall(true);
        c.getOutputStream().write("bcd".getBytes(StandardCharsets.US_ASCII));
        p.send("xyz".getBytes(StandardCharsets.US_ASCII));
        await().during(QUIET).atMost(QUIET.multipliedBy(3))
                .until(() -> p.received().length == 1 && c.getInputStream().available() == 0);

        proxy.stall(false);
        await().atMost(WAIT).until(() -> p.text().equals("abcd"));
        // The client gets the echoed "a" already read, then "xyz" from the target and the echo of "bcd", in some order.
        byte[] rest = c.getInputStream().readNBytes(6);
        assertThat(new String(rest, StandardCharsets.US_ASCII)).containsOnlyOnce("xyz").containsOnlyOnce("bcd");
        assertThat(proxy.cuts()).isZero();
        assertThat(p.ended()).isFalse();
    }

    @Test
    void shouldCutAllOpenConnectionsOnDemand() throws Exception {
        Socket one = connect();
        Socket two = connect();
        assertThat(roundTrip(one, "1")).isEqualTo("1");
        assertThat(roundTrip(two, "2")).isEqualTo("2");

        assertThat(proxy.cutAll()).isEqualTo(2);

        assertThat(endsWithEofOrReset(one)).isTrue();
        assertThat(endsWithEofOrReset(two)).isTrue();
        await().atMost(WAIT).until(() -> target.peers().stream().allMatch(Peer::ended));
        assertThat(proxy.cuts()).isEqualTo(2);
        assertThat(proxy.openConnections()).isZero();
        assertThat(roundTrip(connect(), "3")).as("new connections still pass").isEqualTo("3");
    }

    @Test
    void shouldFreeThePortAndEndItsThreadsWhenClosed() throws Exception {
        Socket c = connect();
        assertThat(roundTrip(c, "x")).isEqualTo("x");
        proxy.stall(true);
        int port = proxy.port();
        assertThat(proxy.url()).isEqualTo("http://127.0.0.1:" + port);
        assertThat(proxy.host()).isEqualTo("127.0.0.1");

        proxy.close();

        assertThat(endsWithEofOrReset(c)).isTrue();
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.getName().startsWith("faultproxy-test-"));
        try (ServerSocket again = new ServerSocket()) {
            again.bind(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), port));
            assertThat(again.getLocalPort()).isEqualTo(port);
        }
    }

    private Socket connect() throws IOException {
        Socket s = new Socket();
        clients.add(s);
        s.connect(new InetSocketAddress(proxy.host(), proxy.port()), (int) WAIT.toMillis());
        s.setSoTimeout((int) WAIT.toMillis());
        return s;
    }

    /** Connects and reads: true if either meets a reset or the stream ends, as when the network is down. */
    private boolean connectAndReadEndsWithEofOrReset() {
        Socket s;
        try {
            s = connect();
        } catch (SocketException e) {
            return true; // the reset came before the connection was set up on this side
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return endsWithEofOrReset(s);
    }

    private static String roundTrip(Socket s, String text) throws IOException {
        byte[] b = text.getBytes(StandardCharsets.US_ASCII);
        s.getOutputStream().write(b);
        byte[] back = s.getInputStream().readNBytes(b.length);
        return new String(back, StandardCharsets.US_ASCII);
    }

    /** Writes as much as the reset the proxy may send first lets through. */
    private static void writeIgnoringReset(Socket s, byte[] b) {
        try {
            s.getOutputStream().write(b);
        } catch (IOException e) {
            // cut while writing: what was written is what the assertions look at
        }
    }

    /** Reads what is left until the stream ends: true for an end or a reset, false if it stays open for {@link #WAIT}. */
    private static boolean endsWithEofOrReset(Socket s) {
        byte[] buf = new byte[8192];
        try {
            InputStream in = s.getInputStream();
            for (int i = 0; i < 100_000; i++) {
                if (in.read(buf) < 0) {
                    return true;
                }
            }
            return false;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (SocketException e) {
            return true;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static long crc(byte[] b) {
        CRC32 crc = new CRC32();
        crc.update(b);
        return crc.getValue();
    }

    private static Thread daemon(String name, Runnable r) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    /**
     * A socket server on a free port of 127.0.0.1 for the tests: records what each connection received and whether it
     * ended, and echoes it back if asked. Thread-safe.
     */
    private static final class Target implements AutoCloseable {
        final ServerSocket server;
        final boolean echo;
        final List<Peer> peers = new CopyOnWriteArrayList<>();
        final Thread acceptor;

        Target(boolean echo) throws IOException {
            this.echo = echo;
            this.server = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
            this.acceptor = daemon("target-accept", this::accept);
            acceptor.start();
        }

        int port() {
            return server.getLocalPort();
        }

        List<Peer> peers() {
            return List.copyOf(peers);
        }

        /** The {@code i}th connection accepted, once it has been. */
        Peer peer(int i) {
            await().atMost(WAIT).until(() -> peers.size() > i);
            return peers.get(i);
        }

        private void accept() {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    Peer p = new Peer(s, echo);
                    peers.add(p);
                    p.thread.start();
                } catch (IOException e) {
                    return;
                }
            }
        }

        @Override
        public void close() throws IOException {
            server.close();
            for (Peer p : peers) {
                p.socket.close();
            }
            try {
                acceptor.join(WAIT.toMillis());
                for (Peer p : peers) {
                    p.thread.join(WAIT.toMillis());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** One connection the target accepted: what it received, and whether it ended (an orderly end or a reset). Thread-safe. */
    private static final class Peer {
        final Socket socket;
        final boolean echo;
        final Thread thread;
        private final ByteArrayOutputStream received = new ByteArrayOutputStream();
        private volatile boolean ended;

        Peer(Socket socket, boolean echo) {
            this.socket = socket;
            this.echo = echo;
            this.thread = daemon("target-peer-" + socket.getPort(), this::serve);
        }

        private void serve() {
            byte[] buf = new byte[16 * 1024];
            try {
                InputStream in = socket.getInputStream();
                for (int n; (n = in.read(buf)) >= 0; ) {
                    synchronized (received) {
                        received.write(buf, 0, n);
                    }
                    if (echo) {
                        send(java.util.Arrays.copyOf(buf, n));
                    }
                }
                socket.shutdownOutput();
            } catch (IOException e) {
                // a reset: the connection ended all the same
            } finally {
                ended = true;
            }
        }

        void send(byte[] b) throws IOException {
            synchronized (socket) {
                socket.getOutputStream().write(b);
            }
        }

        byte[] received() {
            synchronized (received) {
                return received.toByteArray();
            }
        }

        String text() {
            return new String(received(), StandardCharsets.US_ASCII);
        }

        boolean ended() {
            return ended;
        }
    }
}
