package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.api.WaitingForFileException;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.schema.SyncSchema;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Rows and files together: a row that references a file is written only once the file is at the target. */
class FileReferenceTest extends DbTestBase {
    private static final ChannelSpec CHANNEL = new ChannelSpec("products", null,
            List.of(new TableSpec("product", null, null, null, null, Map.of("image", "images"))));

    /** A clock the test moves. */
    private static final class TestClock extends Clock {
        Instant now = Instant.parse("2026-11-29T12:00:00Z");

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return now;
        }
    }

    private static Map<String, Object> row(int id, String name, String image) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("name", name);
        m.put("image", image);
        return m;
    }

    private Fixture fixture(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(100), image VARCHAR(200))");
        Path folder = Files.createDirectories(tmp.resolve("hub-images"));
        TestClock clock = new TestClock();
        Map<String, Integer> asked = new HashMap<>();
        BatchApplier applier = new BatchApplier(db.dialect(), clock, null, null, (source, fileChannel, path) -> {
            asked.merge(fileChannel, 1, Integer::sum);
            return "images".equals(fileChannel) ? folder.resolve(source).resolve(path) : null;
        }, Duration.ofMinutes(10));
        return new Fixture(db, folder, clock, applier, asked);
    }

    private record Fixture(TestDb db, Path folder, TestClock clock, BatchApplier applier, Map<String, Integer> asked) {
        ApplyOutcome apply(Connection c, long seq, Change... changes) {
            BatchHeader h = new BatchHeader(new BatchId("s1", "products", seq), Instant.now(), null);
            return applier.apply(c, h, CHANNEL, List.of(changes).iterator());
        }

        long count(Connection c) throws Exception {
            return Rows.of(c, db.dialect(), "product").size();
        }

        void arrive(String path) throws Exception {
            Path f = folder.resolve("s1").resolve(path);
            Files.createDirectories(f.getParent());
            Files.write(f, new byte[] {1, 2, 3});
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldHoldTheWholeBatchUntilTheFileItsRowReferencesIsThere(TestDb.Kind kind) throws Exception {
        Fixture f = fixture(kind);
        try (Connection c = f.db().open()) {
            SyncSchema.install(c, f.db().dialect());
            c.commit();
            Change plain = new Change.Insert("product", row(1, "no image", null));
            Change withImage = new Change.Insert("product", row(2, "chair", "chairs/2.jpg"));
            assertThatThrownBy(() -> f.apply(c, 1, plain, withImage))
                    .isInstanceOf(WaitingForFileException.class)
                    .hasMessageContaining("batch s1/products#1").hasMessageContaining("'chairs/2.jpg'").hasMessageContaining("'images'")
                    .satisfies(e -> assertThat(((WaitingForFileException) e).isRetriable()).isTrue());
            assertThat(f.count(c)).as("nothing of the batch is written, not even the row without a file").isZero();
            assertThat(BatchApplier.lastApplied(c, "s1", "products")).isZero();
            c.commit();

            f.arrive("chairs/2.jpg");
            assertThat(f.apply(c, 1, plain, withImage)).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(f.count(c)).isEqualTo(2);

            // An update that leaves the reference as it was does not look for the file again (it may have gone since).
            Files.delete(f.folder().resolve("s1/chairs/2.jpg"));
            Map<String, Object> renamed = row(2, "armchair", "chairs/2.jpg");
            Map<String, Object> old = new LinkedHashMap<>(Map.of("id", 2, "name", "chair"));
            Map<String, Object> wholeOld = row(2, "chair", "chairs/2.jpg"); // an old row with every column, the reference unchanged
            assertThat(f.apply(c, 2, new Change.Update("product", old, renamed), new Change.Update("product", wholeOld, renamed)))
                    .isInstanceOf(ApplyOutcome.Applied.class);

            // One that changes it waits for the new file; a deletion never waits.
            Map<String, Object> oldImage = new LinkedHashMap<>(Map.of("id", 2));
            oldImage.put("image", "chairs/2.jpg");
            Change newImage = new Change.Update("product", oldImage, row(2, "armchair", "chairs/2b.jpg"));
            assertThatThrownBy(() -> f.apply(c, 3, newImage)).isInstanceOf(WaitingForFileException.class).hasMessageContaining("chairs/2b.jpg");
            f.arrive("chairs/2b.jpg");
            assertThat(f.apply(c, 3, newImage)).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(f.apply(c, 4, new Change.Delete("product", row(2, "armchair", "chairs/gone.jpg")))).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(f.count(c)).isEqualTo(1);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldWriteTheRowWithoutItsFileOnceTheWaitIsOver(TestDb.Kind kind) throws Exception {
        Fixture f = fixture(kind);
        try (Connection c = f.db().open()) {
            SyncSchema.install(c, f.db().dialect());
            c.commit();
            // Three files that never come: the batch waits 10 minutes once, not once per file.
            Change[] never = {new Change.Insert("product", row(1, "lamp", "lamps/1.jpg")), new Change.Insert("product", row(2, "lamp", "lamps/2.jpg")),
                    new Change.Insert("product", row(3, "lamp", "lamps/3.jpg"))};
            assertThatThrownBy(() -> f.apply(c, 1, never)).isInstanceOf(WaitingForFileException.class).hasMessageContaining("lamps/1.jpg");
            f.arrive("lamps/1.jpg");
            f.clock().now = f.clock().now.plus(Duration.ofMinutes(9));
            assertThatThrownBy(() -> f.apply(c, 1, never)).as("9 minutes of 10").isInstanceOf(WaitingForFileException.class)
                    .hasMessageContaining("lamps/2.jpg");
            f.clock().now = f.clock().now.plus(Duration.ofMinutes(1));
            assertThat(f.apply(c, 1, never)).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(f.count(c)).isEqualTo(3);

            // The next batch that references a missing file waits its own time.
            Change later = new Change.Insert("product", row(4, "lamp", "lamps/2.jpg"));
            assertThatThrownBy(() -> f.apply(c, 2, later)).isInstanceOf(WaitingForFileException.class);
            f.clock().now = f.clock().now.plus(Duration.ofMinutes(10));
            assertThat(f.apply(c, 2, later)).isInstanceOf(ApplyOutcome.Applied.class);
        }
    }

    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldNotWaitForAValueThatCannotBeAFileOfTheChannel(TestDb.Kind kind) throws Exception {
        Fixture f = fixture(kind);
        try (Connection c = f.db().open()) {
            SyncSchema.install(c, f.db().dialect());
            c.commit();
            assertThat(f.apply(c, 1, new Change.Insert("product", row(1, "a", "../../etc/passwd")),
                    new Change.Insert("product", row(2, "b", "/abs/path.jpg")),
                    new Change.Insert("product", row(3, "c", "")))).isInstanceOf(ApplyOutcome.Applied.class);
            assertThat(f.count(c)).isEqualTo(3);
            assertThat(f.asked()).as("the node is not asked where a hostile or empty path is").isEmpty();
        }
    }
}
