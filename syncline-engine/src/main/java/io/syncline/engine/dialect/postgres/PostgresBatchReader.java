package io.syncline.engine.dialect.postgres;

import com.fasterxml.jackson.core.JsonGenerator;
import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.outbox.OutboxRowSink;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.ColumnMeta;
import io.syncline.engine.schema.ValueKind;
import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.postgresql.PGConnection;
import org.postgresql.PGStatement;

/*
 * Reads a sealed batch: its headers in statement order through one cursor, and, chunk by chunk, the rows of those
 * statements from each row table by statement range alone, merged with the headers in Java.
 *
 * No query joins headers and rows: the outbox and the row tables are queues whose statistics are always stale, and
 * a planner-chosen join over them ranged from fast to quadratic between runs. Each query here reads one table by an
 * index range (BRIN on txid for the headers, BRIN on stmt for the rows), which has one sensible plan. A row table's
 * range may hold rows of statements outside the batch (a transaction that committed later, or whose origin is the
 * destination): they have no header in the chunk and are skipped by the merge. Memory is bounded by one chunk of
 * headers; a single statement of a million rows is one chunk whose rows stream through the cursor.
 *
 * Values are rendered into canonical JSON here, by CanonicalWriter, the code the initial load and the H2 trigger use.
 */
final class PostgresBatchReader {
    /** Headers per chunk, and rows (by the headers' counts) after which a chunk is closed. */
    private static final int CHUNK_HEADERS = 2_000;
    private static final long CHUNK_ROWS = 20_000;
    private static final int FETCH = 1_000;

    private PostgresBatchReader() {
    }

    private record Header(long seq, String op, String table, Integer captureId, java.time.Instant capturedAt, String oldRow,
                          String newRow, long rows, String origin) {
    }

    static void stream(Connection c, SealedBatch b, String destination, String window, OutboxRowSink sink) throws SQLException, IOException {
        Map<Integer, PostgresCapture.Generation> generations = new HashMap<>();
        for (PostgresCapture.Generation g : PostgresCapture.ofChannel(c, b.channel())) {
            generations.put(g.id(), g);
        }
        try (Statement s = c.createStatement()) {
            s.execute(PostgresDialect.INDEXES_ONLY);
        }
        String sql = "SELECT o.seq, o.op, o.table_name, o.capture_id, o.captured_at, o.old_row, o.new_row, o.row_count, o.origin "
                + "FROM sync_outbox o WHERE " + window + " AND o.channel = " + PostgresCapture.literal(b.channel())
                + " AND (o.origin IS NULL OR o.origin <> " + PostgresCapture.literal(destination) + ") ORDER BY o.seq";
        try (Statement s = c.createStatement()) {
            s.setFetchSize(FETCH);
            try (ResultSet rs = s.executeQuery(sql)) {
                List<Header> chunk = new ArrayList<>();
                long rows = 0;
                while (rs.next()) {
                    OffsetDateTime captured = rs.getObject(5, OffsetDateTime.class);
                    int id = rs.getInt(4);
                    Integer captureId = rs.wasNull() ? null : id;
                    Header h = new Header(rs.getLong(1), rs.getString(2), rs.getString(3), captureId,
                            captured == null ? null : captured.toInstant(), rs.getString(6), rs.getString(7), rs.getLong(8), rs.getString(9));
                    if (h.rows() >= CHUNK_ROWS && !chunk.isEmpty()) {
                        // A big statement gets a chunk of its own, whose rows stream unsorted.
                        emit(c, chunk, generations, sink);
                        chunk.clear();
                        rows = 0;
                    }
                    chunk.add(h);
                    rows += h.rows();
                    if (chunk.size() >= CHUNK_HEADERS || rows >= CHUNK_ROWS) {
                        emit(c, chunk, generations, sink);
                        chunk.clear();
                        rows = 0;
                    }
                }
                emit(c, chunk, generations, sink);
            }
            // The rest of the transaction plans as usual: a site's two-way apply reads a batch it just sealed, then writes.
            s.execute("SET LOCAL enable_seqscan TO DEFAULT");
        }
    }

    private static void emit(Connection c, List<Header> chunk, Map<Integer, PostgresCapture.Generation> generations,
                             OutboxRowSink sink) throws SQLException, IOException {
        if (chunk.isEmpty()) {
            return;
        }
        long first = chunk.getFirst().seq();
        long last = chunk.getLast().seq();
        Map<Integer, Rows> open = new HashMap<>();
        boolean done = false;
        try {
            for (Header h : chunk) {
                if (h.captureId() == null) {
                    sink.accept(h.op(), h.table(), OutboxRowSink.Row.ofJson(h.oldRow()), OutboxRowSink.Row.ofJson(h.newRow()),
                            h.capturedAt(), h.origin());
                    continue;
                }
                PostgresCapture.Generation g = generations.get(h.captureId());
                if (g == null) {
                    throw new SQLException("outbox statement " + h.seq() + " refers to capture " + h.captureId()
                            + ", which is not registered for its channel");
                }
                Rows r = open.get(g.id());
                if (r == null) {
                    r = new Rows(c, g, first, last);
                    open.put(g.id(), r);
                }
                r.skipTo(h.seq());
                long n = 0;
                while (r.at(h.seq())) {
                    r.load(h.op());
                    sink.accept(h.op(), h.table(), h.op().equals("I") ? null : r.oldRow, h.op().equals("D") ? null : r.newRow,
                            h.capturedAt(), h.origin());
                    r.advance();
                    n++;
                }
                if (n != h.rows()) {
                    throw new SQLException("outbox statement " + h.seq() + " recorded " + h.rows() + " rows, but " + g.rowTable()
                            + " holds " + n);
                }
            }
            done = true;
        } finally {
            SQLException failed = null;
            for (Rows r : open.values()) {
                try {
                    r.close();
                } catch (SQLException e) {
                    failed = failed == null ? e : failed;
                }
            }
            if (failed != null && done) {
                throw failed; // after a failure, that failure is the one to report
            }
        }
    }

    /**
     * A cursor over one row table's rows in a statement range, in statement order. {@link #load} decodes the current
     * row before any of it is written, so a value that cannot be read fails between changes, not inside one. An
     * update's old row is sent as its primary key plus the old value of every column that changed: a column it lacks
     * kept its value, which the new row carries. A delete's old row is sent whole. Every old value stays captured in
     * the row table (docs/protocol.md, "Batch stream").
     */
    private static final class Rows implements AutoCloseable {
        private final PreparedStatement statement;
        private final ResultSet rs;
        private final List<ColumnMeta> columns;
        /** Columns always sent in an update's old row: the primary key (every column for old registrations). */
        private final boolean[] key;
        private final Object[] newValues;
        private final Object[] oldValues;
        private boolean wholeOld;
        final OutboxRowSink.Row newRow = this::writeNew;
        final OutboxRowSink.Row oldRow = this::writeOld;
        private long stmt;

        Rows(Connection c, PostgresCapture.Generation g, long first, long last) throws SQLException {
            this.columns = g.columns();
            int n = columns.size();
            this.key = new boolean[n];
            for (int i = 0; i < n; i++) {
                key[i] = g.keyColumns().isEmpty() || g.keyColumns().contains(i);
            }
            this.newValues = new Object[n];
            this.oldValues = new Object[n];
            // One statement needs no sort: a million-row statement streams straight from the scan.
            this.statement = c.prepareStatement("SELECT * FROM " + g.rowTable() + " WHERE stmt BETWEEN ? AND ?"
                    + (first == last ? "" : " ORDER BY stmt"));
            try {
                if (binarySafe(c)) {
                    // Binary results from the first execution: the server skips its text output functions (timestamps,
                    // numerics) and the driver its text parsing.
                    statement.unwrap(PGStatement.class).setPrepareThreshold(-1);
                }
                statement.setFetchSize(FETCH);
                statement.setLong(1, first);
                statement.setLong(2, last);
                this.rs = statement.executeQuery();
                advance();
            } catch (SQLException | RuntimeException e) {
                statement.close();
                throw e;
            }
        }

        /*
         * Binary results decode every value the way text results do, except columns of other types (arrays among
         * them: the driver rebuilds a binary array's text, quoting every element and dropping a lower bound other
         * than 1); and a connection configured with prepareThreshold=0 (no server-side prepared statements, as
         * behind a transaction-pooling proxy) must keep that.
         */
        private boolean binarySafe(Connection c) throws SQLException {
            return columns.stream().noneMatch(col -> col.kind() == ValueKind.OTHER)
                    && c.unwrap(PGConnection.class).getPrepareThreshold() != 0;
        }

        void advance() throws SQLException {
            stmt = rs.next() ? rs.getLong(1) : Long.MAX_VALUE;
        }

        void skipTo(long seq) throws SQLException {
            while (stmt < seq) {
                advance();
            }
        }

        boolean at(long seq) {
            return stmt == seq;
        }

        /** Decodes the current row: the new values (result columns 2 to N+1) and the old ones (after them). */
        void load(String op) throws SQLException {
            int n = columns.size();
            for (int i = 0; i < n; i++) {
                newValues[i] = op.equals("D") ? null : CanonicalWriter.read(rs, 2 + i, columns.get(i));
                oldValues[i] = op.equals("I") ? null : CanonicalWriter.read(rs, 2 + n + i, columns.get(i));
            }
            wholeOld = op.equals("D");
        }

        private void writeNew(JsonGenerator g) throws IOException {
            CanonicalWriter.row(g, columns, newValues, false);
        }

        private void writeOld(JsonGenerator g) throws IOException {
            g.writeStartObject();
            for (int i = 0; i < columns.size(); i++) {
                if (wholeOld || key[i] || !same(oldValues[i], newValues[i])) {
                    CanonicalWriter.field(g, columns.get(i), oldValues[i]);
                }
            }
            g.writeEndObject();
        }

        private static boolean same(Object a, Object b) {
            return a instanceof byte[] x && b instanceof byte[] y ? Arrays.equals(x, y) : Objects.equals(a, b);
        }

        @Override
        public void close() throws SQLException {
            statement.close();
        }
    }
}
