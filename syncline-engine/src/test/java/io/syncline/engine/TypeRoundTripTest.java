package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.codec.Json;
import io.syncline.engine.load.InitialLoader;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.verify.TableChecksum;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Clock;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Every supported value kind survives capture (trigger and initial load), the outbox, and apply, exactly. */
class TypeRoundTripTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("typed", null, List.of(TableSpec.of("typed")));
    private static final String TEXT = "Grüße 😀🇩🇪 漢字テスト e\u0301 \"quoted\" \\ back\nnew\tline";
    private static final BigDecimal BIG = new BigDecimal("12345678901234567890.0123456789");
    private static final OffsetDateTime TSTZ = OffsetDateTime.parse("2024-06-01T12:00:00.5+05:30");
    private static final OffsetDateTime TSTZ2 = OffsetDateTime.parse("1999-12-31T23:59:59-08:00");
    private static final byte[] BYTES = {0, (byte) 0xff, 0, 1, 0};
    private static final UUID ID = UUID.fromString("123e4567-e89b-12d3-a456-426614174000");
    private static final String JSON = "{\"b\": [1, 2.50, null, \"😀\"], \"a\": {\"x\": \"y\"}}";
    private static final String COLUMNS = "id, small_v, int_v, big_v, dec_v, num_v, text_v, empty_v, null_v, bool_v, date_v, time_v, "
            + "ts_v, tstz_v, bin_v, uuid_v, json_v, jsonb_v";

    static Stream<Arguments> pairs() {
        return Stream.of(Arguments.of(TestDb.Kind.POSTGRES, TestDb.Kind.POSTGRES), Arguments.of(TestDb.Kind.H2, TestDb.Kind.H2),
                Arguments.of(TestDb.Kind.H2, TestDb.Kind.POSTGRES));
    }

    static String ddl(TestDb.Kind kind) {
        return kind == TestDb.Kind.POSTGRES
                ? "CREATE TABLE typed (id INT PRIMARY KEY, small_v SMALLINT, int_v INT, big_v BIGINT, dec_v NUMERIC(30,10), "
                + "num_v NUMERIC, text_v TEXT, empty_v VARCHAR(20), null_v VARCHAR(20), bool_v BOOLEAN, date_v DATE, time_v TIME, "
                + "ts_v TIMESTAMP, tstz_v TIMESTAMPTZ, bin_v BYTEA, uuid_v UUID, json_v JSON, jsonb_v JSONB)"
                : "CREATE TABLE typed (id INT PRIMARY KEY, small_v SMALLINT, int_v INT, big_v BIGINT, dec_v NUMERIC(30,10), "
                + "num_v NUMERIC(30,10), text_v CHARACTER LARGE OBJECT, empty_v VARCHAR(20), null_v VARCHAR(20), bool_v BOOLEAN, "
                + "date_v DATE, time_v TIME(6), ts_v TIMESTAMP(6), tstz_v TIMESTAMP(6) WITH TIME ZONE, bin_v VARBINARY(100), "
                + "uuid_v UUID, json_v JSON, jsonb_v JSON)";
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @MethodSource("pairs")
    void shouldRoundTripEveryValueKindExactly(TestDb.Kind sourceKind, TestDb.Kind targetKind) throws Exception {
        TestDb source = newDb(sourceKind);
        TestDb target = newDb(targetKind);
        source.exec(ddl(sourceKind));
        target.exec(ddl(targetKind));
        try (Connection src = source.open(); Connection tgt = target.open()) {
            insertRows(source, src, 0); // before capture: travels by the initial load
            new CaptureInstaller(source.dialect(), Clock.systemUTC()).install(src, List.of(CHANNEL));
            while (new InitialLoader(source.dialect(), 2).step(src, CHANNEL)) {
                // chunks of 2 rows
            }
            insertRows(source, src, 10); // after capture: travels by the trigger
            SyncSchema.install(tgt, target.dialect());
            tgt.commit();

            SealedBatch batch = Pipe.seal(source, src, "typed").orElseThrow();
            List<Change> changes = Pipe.read(source, src, batch, "hub");
            assertThat(changes).hasSize(6);
            assertThat(changes).filteredOn(c -> c instanceof Change.Reload).hasSize(3);
            assertThat(changes).filteredOn(c -> c instanceof Change.Insert).hasSize(3);
            ApplyOutcome outcome = Pipe.apply(target, tgt, "site1", CHANNEL, batch.sequence(), changes);
            assertThat(outcome).isInstanceOf(ApplyOutcome.Applied.class);

            assertThat(Rows.of(tgt, target.dialect(), "typed")).containsExactlyElementsOf(Rows.of(src, source.dialect(), "typed"));
            TableChecksum.Result expected = TableChecksum.of(src, source.dialect(), "typed");
            assertThat(expected.rows()).isEqualTo(6);
            assertThat(TableChecksum.of(tgt, target.dialect(), "typed")).isEqualTo(expected);

            for (int id : new int[] {1, 11}) {
                assertFirstRow(tgt, id, sourceKind == TestDb.Kind.POSTGRES && targetKind == TestDb.Kind.POSTGRES);
            }
            for (int id : new int[] {3, 13}) {
                assertAllNull(tgt, id);
            }
        }
    }

    private static void insertRows(TestDb db, Connection c, int offset) throws Exception {
        String json = db.isPostgres() ? "CAST(? AS json)" : "? FORMAT JSON";
        String jsonb = db.isPostgres() ? "CAST(? AS jsonb)" : "? FORMAT JSON";
        String sql = "INSERT INTO typed (" + COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, " + json + ", " + jsonb + ")";
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            Object[][] rows = {
                {offset + 1, (short) 32767, Integer.MAX_VALUE, Long.MAX_VALUE, BIG, new BigDecimal("0.10"), TEXT, "", null, true,
                    LocalDate.of(2024, 2, 29), LocalTime.parse("12:34:56.789"), LocalDateTime.parse("2024-03-31T02:30:00.123456"),
                    TSTZ, BYTES, ID, JSON, JSON},
                {offset + 2, (short) -32768, Integer.MIN_VALUE, Long.MIN_VALUE, new BigDecimal("-0.0000000001"), new BigDecimal("1E+3"),
                    "", "x", null, false, LocalDate.of(1970, 1, 1), LocalTime.MIDNIGHT, LocalDateTime.parse("1970-01-01T00:00:00"),
                    TSTZ2, new byte[0], UUID.fromString("00000000-0000-0000-0000-000000000000"), "[]", "\"str\""},
                {offset + 3, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null},
            };
            for (Object[] row : rows) {
                for (int i = 0; i < row.length; i++) {
                    if (row[i] instanceof byte[] b) {
                        ps.setBytes(i + 1, b);
                    } else if (row[i] == null) {
                        ps.setNull(i + 1, i >= 16 ? java.sql.Types.VARCHAR : java.sql.Types.NULL);
                    } else {
                        ps.setObject(i + 1, row[i]);
                    }
                }
                ps.executeUpdate();
            }
        }
        c.commit();
    }

    private static void assertFirstRow(Connection c, int id, boolean postgresOnly) throws Exception {
        try (PreparedStatement ps = c.prepareStatement("SELECT " + COLUMNS + " FROM typed WHERE id = ?")) {
            ps.setInt(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                assertThat(rs.next()).as("row %d", id).isTrue();
                assertThat(rs.getInt("small_v")).isEqualTo(32767);
                assertThat(rs.getInt("int_v")).isEqualTo(Integer.MAX_VALUE);
                assertThat(rs.getLong("big_v")).isEqualTo(Long.MAX_VALUE);
                BigDecimal dec = rs.getBigDecimal("dec_v");
                assertThat(dec.toPlainString()).isEqualTo("12345678901234567890.0123456789");
                if (postgresOnly) {
                    assertThat(rs.getBigDecimal("num_v").toPlainString()).as("scale of unconstrained numeric").isEqualTo("0.10");
                } else {
                    assertThat(rs.getBigDecimal("num_v")).isEqualByComparingTo("0.10");
                }
                assertThat(rs.getString("text_v")).isEqualTo(TEXT);
                assertThat(rs.getString("empty_v")).isEqualTo("");
                assertThat(rs.wasNull()).as("empty string must not become NULL").isFalse();
                assertThat(rs.getString("null_v")).isNull();
                assertThat(rs.getBoolean("bool_v")).isTrue();
                assertThat(rs.getObject("date_v", LocalDate.class)).isEqualTo(LocalDate.of(2024, 2, 29));
                assertThat(rs.getObject("time_v", LocalTime.class)).isEqualTo(LocalTime.parse("12:34:56.789"));
                assertThat(rs.getObject("ts_v", LocalDateTime.class)).isEqualTo(LocalDateTime.parse("2024-03-31T02:30:00.123456"));
                assertThat(rs.getObject("tstz_v", OffsetDateTime.class).toInstant()).isEqualTo(TSTZ.toInstant());
                assertThat(rs.getBytes("bin_v")).isEqualTo(BYTES);
                assertThat(rs.getObject("uuid_v", UUID.class)).isEqualTo(ID);
                JsonNode expected = Json.MAPPER.readTree(JSON);
                assertThat(Json.MAPPER.readTree(rs.getString("json_v"))).isEqualTo(expected);
                assertThat(Json.MAPPER.readTree(rs.getString("jsonb_v"))).isEqualTo(expected);
            }
        }
        c.commit();
    }

    private static void assertAllNull(Connection c, int id) throws Exception {
        try (PreparedStatement ps = c.prepareStatement("SELECT " + COLUMNS + " FROM typed WHERE id = ?")) {
            ps.setInt(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                assertThat(rs.next()).isTrue();
                List<String> notNull = new ArrayList<>();
                for (String col : Arrays.asList(COLUMNS.split(", ")).subList(1, 18)) {
                    if (rs.getObject(col) != null) {
                        notNull.add(col);
                    }
                }
                assertThat(notNull).as("columns of all-NULL row %d", id).isEmpty();
            }
        }
        c.commit();
    }
}
