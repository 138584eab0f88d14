package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A table taken out of the configuration stops being captured and its undelivered changes do not block the channel. */
class CaptureRemovalTest extends DbTestBase {
    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldStopCapturingATableRemovedFromItsChannel(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(100))", "CREATE TABLE extra (id INT PRIMARY KEY)");
        ChannelSpec both = new ChannelSpec("ch", null, List.of(TableSpec.of("item"), TableSpec.of("extra")));
        ChannelSpec itemOnly = new ChannelSpec("ch", null, List.of(TableSpec.of("item")));
        try (Connection c = db.open()) {
            CaptureInstaller installer = new CaptureInstaller(db.dialect(), Clock.systemUTC());
            installer.install(c, List.of(both));
            db.exec("INSERT INTO item VALUES (1, 'a')", "INSERT INTO extra VALUES (1)");
            installer.install(c, List.of(itemOnly));
            db.exec("INSERT INTO item VALUES (2, 'b')", "INSERT INTO extra VALUES (2)");
            assertThat(tables(c)).containsExactly("item", "item");
            assertThat(installer.install(c, List.of(itemOnly))).as("nothing to reinstall").isEmpty();
        }
    }

    private static List<String> tables(Connection c) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT table_name FROM sync_outbox ORDER BY seq")) {
            List<String> out = new java.util.ArrayList<>();
            while (rs.next()) {
                out.add(rs.getString(1));
            }
            c.commit();
            return out;
        }
    }
}
