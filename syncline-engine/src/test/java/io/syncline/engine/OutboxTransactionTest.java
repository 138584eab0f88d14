package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every outbox row records its source transaction: rows of one transaction share it, and a transaction open at the
 * same time has another (H2 reuses ids after a transaction ends, so only concurrent ones are compared).
 */
class OutboxTransactionTest extends DbTestBase {
    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldRecordTheWritingTransactionOfEveryChange(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))");
        try (Connection c = db.open(); Connection w = db.open(); Connection other = db.open()) {
            new CaptureInstaller(db.dialect(), Clock.systemUTC()).install(c, List.of(new ChannelSpec("ch", null, List.of(TableSpec.of("item")))));
            try (Statement s = w.createStatement(); Statement o = other.createStatement()) {
                s.executeUpdate("INSERT INTO item VALUES (1, 'a')");
                o.executeUpdate("INSERT INTO item VALUES (2, 'b')");
                s.executeUpdate("INSERT INTO item VALUES (3, 'c')");
                w.commit();
                other.commit();
            }
            List<Long> txids = new ArrayList<>();
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT txid FROM sync_outbox ORDER BY seq")) {
                // seq order: row 1 (w), row 2 (other), row 3 (w)
                while (rs.next()) {
                    txids.add(rs.getObject(1) == null ? null : rs.getLong(1));
                }
            }
            c.commit();
            assertThat(txids).hasSize(3).doesNotContainNull();
            assertThat(txids.get(2)).isEqualTo(txids.get(0));
            assertThat(txids.get(1)).isNotEqualTo(txids.get(0));
        }
    }

    /** PostgreSQL seals at REPEATABLE READ for the seal's transaction only, set in one statement; never inside an open one. */
    @org.junit.jupiter.api.Test
    void shouldSealAtRepeatableReadForThatTransactionOnlyOnPostgres() throws Exception {
        TestDb db = newDb(TestDb.Kind.POSTGRES);
        try (Connection c = db.open()) {
            assertThat(db.dialect().beginSealTransaction(c)).isTrue();
            assertThat(isolation(c)).isEqualTo("repeatable read");
            c.commit();
            assertThat(isolation(c)).as("the next transaction is back at the session's level").isEqualTo("read committed");
            assertThat(db.dialect().beginSealTransaction(c)).as("a transaction is open (the SHOW above)").isFalse();
            c.commit();
        }
    }

    private static String isolation(Connection c) throws Exception {
        try (java.sql.Statement s = c.createStatement(); java.sql.ResultSet rs = s.executeQuery("SHOW transaction_isolation")) {
            rs.next();
            return rs.getString(1);
        }
    }
}
