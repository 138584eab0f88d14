package io.syncline.engine;

import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.dialect.postgres.PostgresDialect;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;

/** A real test database (embedded PostgreSQL database or H2 file database) and how to connect to it. */
record TestDb(Kind kind, String name, String url, String user, String password) {

    enum Kind { POSTGRES, H2 }

    Dialect dialect() {
        return kind == Kind.POSTGRES ? new PostgresDialect() : new H2Dialect();
    }

    boolean isPostgres() {
        return kind == Kind.POSTGRES;
    }

    /** A connection in manual-commit mode, as the engine expects. */
    Connection open() throws SQLException {
        Connection c = DriverManager.getConnection(url, user, password);
        c.setAutoCommit(false);
        return c;
    }

    /** Runs statements in auto-commit mode. */
    void exec(String... sql) throws SQLException {
        try (Connection c = DriverManager.getConnection(url, user, password); Statement s = c.createStatement()) {
            for (String q : sql) {
                s.execute(q);
            }
        }
    }

    @Override
    public String toString() {
        return kind + ":" + name;
    }
}
