package io.syncline.node;

import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.verify.TableChecksum;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/** The H2 file databases of one test's nodes, in the test's temporary folder, by node name. */
record H2Files(Path dir) {
    String url(String name) {
        return "jdbc:h2:" + dir.resolve(name).toAbsolutePath() + ";DB_CLOSE_DELAY=0";
    }

    void exec(String db, String... sql) throws SQLException {
        try (Connection c = DriverManager.getConnection(url(db)); Statement s = c.createStatement()) {
            for (String q : sql) {
                s.execute(q);
            }
        }
    }

    /** The first column of the first row of {@code sql}, as a number. */
    long count(String db, String sql) throws SQLException {
        try (Connection c = DriverManager.getConnection(url(db)); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /** Checksum of a table at a node, or of its rows where {@code column = value} (without that column) when column is set. */
    TableChecksum.Result sum(String db, String table, String column, String value) throws SQLException {
        try (Connection c = DriverManager.getConnection(url(db))) {
            return column == null ? TableChecksum.of(c, new H2Dialect(), table) : TableChecksum.of(c, new H2Dialect(), table, column, value);
        }
    }
}
