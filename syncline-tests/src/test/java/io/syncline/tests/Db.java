package io.syncline.tests;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.dialect.postgres.PostgresDialect;
import io.syncline.engine.verify.TableChecksum;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;

/** Small JDBC helpers and the convergence check used by the process tests. */
public final class Db {
    /** Site table {@code item}. */
    public static final String SITE_ITEM = "CREATE TABLE item (id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty INT NOT NULL, "
            + "price NUMERIC(12,2), updated_at TIMESTAMPTZ NOT NULL DEFAULT now())";
    /** Hub table {@code item}: the sites' rows side by side, told apart by site_id. */
    public static final String HUB_ITEM = "CREATE TABLE item (site_id VARCHAR(64) NOT NULL, id BIGINT NOT NULL, name TEXT NOT NULL, "
            + "qty INT NOT NULL, price NUMERIC(12,2), updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (site_id, id))";

    private Db() {
    }

    public static void exec(String url, String... sql) throws SQLException {
        try (Connection c = PgServer.connect(url); Statement s = c.createStatement()) {
            for (String q : sql) {
                s.execute(q);
            }
        }
    }

    /** The first column of the first row of a query, as a long (0 when there is no row). */
    public static long queryLong(String url, String sql, Object... params) throws SQLException {
        try (Connection c = PgServer.connect(url); PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setObject(i + 1, params[i]);
            }
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        }
    }

    public static TableChecksum.Result checksum(String url, String table) throws SQLException {
        try (Connection c = PgServer.connect(url)) {
            return TableChecksum.of(c, new PostgresDialect(), table);
        }
    }

    public static TableChecksum.Result hubChecksum(String hubUrl, String table, String site) throws SQLException {
        try (Connection c = PgServer.connect(hubUrl)) {
            return TableChecksum.of(c, new PostgresDialect(), table, "site_id", site);
        }
    }

    /** Hub ledger of {@code site}: {last_batch, rows_applied} summed over channels. */
    public static long[] ledger(String hubUrl, String site) throws SQLException {
        try (Connection c = PgServer.connect(hubUrl);
             PreparedStatement ps = c.prepareStatement("SELECT COALESCE(MAX(last_batch), 0), COALESCE(SUM(rows_applied), 0) "
                     + "FROM sync_incoming WHERE source = ?")) {
            ps.setString(1, site);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new long[] {rs.getLong(1), rs.getLong(2)};
            }
        }
    }

    /**
     * Waits (bounded) until a site has registered, installed capture and finished the initial load of
     * {@code channel.table}: from then on every change is captured as such.
     */
    public static void awaitLoaded(String siteUrl, String channel, String table, Duration atMost) {
        await("initial load of " + table + " done").atMost(atMost).pollInterval(Duration.ofMillis(100)).ignoreExceptions()
                .until(() -> queryLong(siteUrl, "SELECT count(*) FROM sync_state WHERE k = ? AND v = 'done'",
                        "load." + channel + "." + table) == 1);
    }

    /** Changes still in a site's (PostgreSQL) outbox. */
    public static long outboxRows(String siteUrl) throws SQLException {
        return queryLong(siteUrl, "SELECT COALESCE(sum(row_count), 0) FROM sync_outbox");
    }

    /**
     * Waits (bounded) until the hub holds exactly the site's rows of {@code table} (same count and checksum) and
     * the site's outbox is empty (everything acknowledged); fails fast if a node process dies meanwhile.
     */
    public static TableChecksum.Result awaitConverged(String siteUrl, String hubUrl, String site, String table, Duration atMost,
                                                      NodeProcess... mustLive) {
        AtomicReference<String> last = new AtomicReference<>("never compared");
        try {
            await("hub converges with site " + site).atMost(atMost).pollInterval(Duration.ofMillis(500))
                    .failFast("a node process died", () -> Arrays.stream(mustLive).anyMatch(p -> !p.isAlive()))
                    .ignoreExceptions()
                    .until(() -> {
                        TableChecksum.Result s = checksum(siteUrl, table);
                        TableChecksum.Result h = hubChecksum(hubUrl, table, site);
                        long outbox = outboxRows(siteUrl);
                        last.set("site " + s + ", hub " + h + ", site outbox rows " + outbox);
                        return s.equals(h) && outbox == 0;
                    });
        } catch (RuntimeException | Error e) {
            throw new AssertionError(e.getMessage() + "; last comparison: " + last.get(), e);
        }
        try {
            TableChecksum.Result s = checksum(siteUrl, table);
            assertThat(hubChecksum(hubUrl, table, site)).as("hub rows of site %s", site).isEqualTo(s);
            return s;
        } catch (SQLException e) {
            throw new AssertionError(e);
        }
    }
}
