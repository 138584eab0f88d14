package io.syncline.engine.verify;

import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.TableMeta;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * Row count and SHA-256 of a table's rows in primary-key order, each row in canonical form (instants in
 * UTC). Two tables with the same rows have the same checksum on any supported database. Streams the table.
 */
public final class TableChecksum {
    /** Count and hex digest. */
    public record Result(long rows, String sha256) {
        /** The first 12 hex digits, for tables printed to people. */
        public String shortSha() {
            return sha256.substring(0, 12);
        }
    }

    private TableChecksum() {
    }

    /** Checksums every row of {@code table}. */
    public static Result of(Connection c, Dialect d, String table) throws SQLException {
        return of(c, d, table, null, null);
    }

    /**
     * Checksums the rows of {@code table} whose {@code filterColumn} equals {@code filterValue}, leaving
     * {@code filterColumn} itself out of each row (so a hub's aggregated table compares with a site's).
     */
    public static Result of(Connection c, Dialect d, String table, String filterColumn, String filterValue) throws SQLException {
        TableMeta meta = SchemaReader.read(c, table);
        return of(c, d, meta, filterColumn == null ? null : d.quote(meta.byKey().get(filterColumn.toLowerCase(Locale.ROOT)).name()) + " = ?",
                filterColumn, filterValue);
    }

    /**
     * Checksums the rows of {@code table} that satisfy the SQL predicate {@code where} (trusted text, e.g. a hub-to-sites
     * filter written in SQL), keeping every column: a site's share of a hub table compares with the site's copy.
     */
    public static Result where(Connection c, Dialect d, String table, String where) throws SQLException {
        return of(c, d, SchemaReader.read(c, table), where, null, null);
    }

    private static Result of(Connection c, Dialect d, TableMeta meta, String where, String filterColumn, String filterValue)
            throws SQLException {
        List<ColumnMeta> cols = meta.columns().stream()
                .filter(col -> filterColumn == null || !col.key().equals(filterColumn.toLowerCase(Locale.ROOT))).toList();
        List<ColumnMeta> order = meta.primaryKey().stream()
                .filter(col -> filterColumn == null || !col.key().equals(filterColumn.toLowerCase(Locale.ROOT))).toList();
        String select = cols.stream().map(col -> d.quote(col.name())).collect(Collectors.joining(", "));
        String sql = "SELECT " + select + " FROM " + d.quote(meta.name()) + (where == null ? "" : " WHERE " + where)
                + " ORDER BY " + order.stream().map(col -> d.quote(col.name())).collect(Collectors.joining(", "));
        MessageDigest digest = sha256();
        long rows = 0;
        boolean auto = c.getAutoCommit();
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            if (auto) {
                c.setAutoCommit(false);
            }
            ps.setFetchSize(1000);
            if (filterColumn != null) {
                ps.setString(1, filterValue);
            }
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    digest.update(CanonicalWriter.row(cols, rs, true).getBytes(StandardCharsets.UTF_8));
                    digest.update((byte) '\n');
                    rows++;
                }
            }
        } finally {
            c.commit();
            if (auto) {
                c.setAutoCommit(true);
            }
        }
        return new Result(rows, HexFormat.of().formatHex(digest.digest()));
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
