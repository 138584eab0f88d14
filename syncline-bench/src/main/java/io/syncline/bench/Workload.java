package io.syncline.bench;

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The writer workload of the benchmark: {@code rows} inserts in transactions of {@code insertTx} rows, then
 * one update of every row, spread over {@code updateTxs} transactions (each a single UPDATE of a key range).
 */
record Workload(int rows, int insertTx, int updateTxs) {
    static final String TABLE_DDL = "CREATE TABLE item (id bigint PRIMARY KEY, name text NOT NULL, qty int NOT NULL, "
            + "price numeric(12,2) NOT NULL, updated_at timestamptz NOT NULL)";

    long changes() {
        return 2L * rows;
    }

    /** Wall-clock seconds of the two phases. */
    record Timing(double insertSeconds, double updateSeconds) {
        double total() {
            return insertSeconds + updateSeconds;
        }
    }

    /** Runs the whole workload on {@code c} (autocommit off). */
    Timing run(Connection c) throws SQLException {
        long t0 = System.nanoTime();
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO item (id, name, qty, price, updated_at) VALUES (?, ?, ?, ?, now())")) {
            for (int id = 1; id <= rows; id++) {
                ps.setLong(1, id);
                ps.setString(2, "item-" + id);
                ps.setInt(3, id % 100);
                ps.setBigDecimal(4, BigDecimal.valueOf(id % 10_000, 2));
                ps.addBatch();
                if (id % insertTx == 0 || id == rows) {
                    ps.executeBatch();
                    c.commit();
                }
            }
        }
        long t1 = System.nanoTime();
        int per = (rows + updateTxs - 1) / updateTxs;
        try (PreparedStatement ps = c.prepareStatement(
                "UPDATE item SET qty = qty + 1, price = price + 1.25, updated_at = now() WHERE id > ? AND id <= ?")) {
            for (int from = 0; from < rows; from += per) {
                ps.setLong(1, from);
                ps.setLong(2, Math.min(rows, from + per));
                ps.executeUpdate();
                c.commit();
            }
        }
        long t2 = System.nanoTime();
        return new Timing((t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }

    /** A cheap summary of the table: equal fingerprints after this workload mean converged (confirmed by a checksum). */
    static String fingerprint(Connection c) throws SQLException {
        try (Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT count(*), coalesce(sum(qty), 0), coalesce(sum(price), 0), max(updated_at) FROM item")) {
            rs.next();
            return rs.getLong(1) + "/" + rs.getLong(2) + "/" + rs.getBigDecimal(3) + "/" + rs.getString(4);
        }
    }

    /** The row written last by this workload (the highest id), as text; null while it does not exist. */
    static String lastRow(Connection c, long id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT qty, price, updated_at FROM item WHERE id = ?")) {
            ps.setLong(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getInt(1) + "/" + rs.getBigDecimal(2) + "/" + rs.getString(3) : "none";
            }
        }
    }
}
