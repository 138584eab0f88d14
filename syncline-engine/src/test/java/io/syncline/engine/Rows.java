package io.syncline.engine;

import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/** A table's rows in key order, in the normalized canonical form TableChecksum hashes: readable diffs for failed comparisons. */
final class Rows {
    private Rows() {
    }

    static List<String> of(Connection c, Dialect d, String table) throws SQLException {
        TableMeta meta = SchemaReader.read(c, table);
        String order = meta.primaryKey().stream().map(col -> d.quote(col.name())).collect(Collectors.joining(", "));
        List<String> out = new ArrayList<>();
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT * FROM " + d.quote(meta.name()) + " ORDER BY " + order)) {
            while (rs.next()) {
                out.add(CanonicalWriter.row(meta.columns(), rs, true));
            }
        }
        c.commit();
        return out;
    }
}
