package io.syncline.node;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.syncline.api.RetriableSyncException;
import io.syncline.api.SyncException.Stage;
import io.syncline.engine.dialect.Dialect;
import io.syncline.node.config.NodeConfig;
import java.sql.Connection;
import java.sql.SQLException;

/** A node's connection pool (HikariCP, autocommit off) and its dialect. Thread-safe. */
final class Database implements AutoCloseable {
    private final HikariDataSource pool;
    private final Dialect dialect;
    private final NodeConfig cfg;

    Database(NodeConfig cfg) {
        this.cfg = cfg;
        HikariConfig hc = new HikariConfig();
        hc.setPoolName("syncline-" + cfg.nodeId());
        hc.setJdbcUrl(cfg.databaseUrl());
        hc.setUsername(cfg.databaseUser());
        hc.setPassword(cfg.databasePassword());
        hc.setMaximumPoolSize(cfg.poolSize());
        hc.setMinimumIdle(1);
        hc.setAutoCommit(false);
        hc.setInitializationFailTimeout(-1);
        if (cfg.databaseUrl().startsWith("jdbc:postgresql:")) {
            hc.addDataSourceProperty("reWriteBatchedInserts", "true");
            // A transaction left idle by a stalled peer (apply reads the batch from the network) must not hold
            // its locks forever.
            // (A server option, not connectionInitSql: with autocommit off that would leave a transaction open.)
            hc.addDataSourceProperty("options", "-c idle_in_transaction_session_timeout=900000");
        }
        this.pool = new HikariDataSource(hc);
        try (Connection c = pool.getConnection()) {
            this.dialect = Dialect.of(c);
        } catch (SQLException e) {
            pool.close();
            throw new RetriableSyncException(Stage.CONFIG, "cannot connect to database " + cfg.databaseUrl() + " (database.url): "
                    + e.getMessage(), e);
        }
    }

    Connection connection() throws SQLException {
        return pool.getConnection();
    }

    /** Work on one connection, in one transaction. */
    @FunctionalInterface
    interface Work<T> {
        T run(Connection c) throws SQLException;
    }

    /** Runs {@code w} in a transaction of its own: committed when it returns, rolled back when it throws. */
    <T> T inTransaction(Work<T> w) throws SQLException {
        try (Connection c = pool.getConnection()) {
            try {
                T result = w.run(c);
                c.commit();
                return result;
            } catch (SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
    }

    /**
     * Starts the dialect's capture watch (null when the database cannot report commits): on PostgreSQL it holds a
     * connection of its own, outside the pool, for as long as it listens.
     */
    io.syncline.engine.capture.CaptureWatch watchCaptures(String name, Runnable onChange) throws SQLException {
        return dialect.watchCaptures(() -> cfg.databaseUrl().startsWith("jdbc:postgresql:")
                ? java.sql.DriverManager.getConnection(cfg.databaseUrl(), cfg.databaseUser(), cfg.databasePassword())
                : pool.getConnection(), name, onChange);
    }

    Dialect dialect() {
        return dialect;
    }

    @Override
    public void close() {
        pool.close();
    }
}
