package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.DriverManager;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** FileOutbox on a real (H2) database: what the receiver's acknowledgements, page by page, leave of the record. */
class FileOutboxTest {
    private static final String CH = "docs";
    private Connection c;

    @BeforeEach
    void open() throws Exception {
        c = DriverManager.getConnection("jdbc:h2:mem:" + UUID.randomUUID());
        c.setAutoCommit(false);
        SyncSchema.install(c, new H2Dialect());
        c.commit();
    }

    @AfterEach
    void close() throws Exception {
        c.close();
    }

    private static FileMeta meta(String path, String content) {
        return new FileMeta(path, content.length(), 1_000, 0644, ContentHash.of(content.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

    @Test
    void shouldSettleEachAcknowledgedPageAndLeaveTheChangesAfterIt() throws Exception {
        // Changes 1-4: files a, b, c, d. Then 5: a deleted; 6 and 7: b moved to b2 (b2 from b, b's tombstone); 8: c deleted;
        // 9: file e.
        FileOutbox.record(c, CH, List.of(new FileScanner.Put(meta("a", "1")), new FileScanner.Put(meta("b", "2")),
                new FileScanner.Put(meta("c", "3")), new FileScanner.Put(meta("d", "4"))));
        FileOutbox.record(c, CH, List.of(new FileScanner.Delete("a"), new FileScanner.Move("b", meta("b2", "2")),
                new FileScanner.Delete("c"), new FileScanner.Put(meta("e", "5"))));
        assertThat(seqs(FileOutbox.pending(c, CH, 0, 100))).containsExactly(4L, 5L, 6L, 7L, 8L, 9L);

        FileOutbox.acknowledge(c, CH, 6); // up to the move to b2 (not b's tombstone, 7)
        List<FileEntry> left = FileOutbox.pending(c, CH, 0, 100);
        assertThat(seqs(left)).as("a's tombstone is gone: the receiver has it").containsExactly(4L, 6L, 7L, 8L, 9L);
        assertThat(left.get(1).path()).isEqualTo("b2");
        assertThat(left.get(1).from()).as("the move's source, no longer needed").isNull();
        assertThat(left.get(1).base()).as("what both now have").isEqualTo(meta("b2", "2").hash());
        assertThat(left.get(2).deleted()).as("b's tombstone, not acknowledged yet").isTrue();
        assertThat(FileOutbox.recorded(c, CH, "e").base()).as("not acknowledged yet").isNull();

        FileOutbox.acknowledge(c, CH, 9);
        assertThat(seqs(FileOutbox.pending(c, CH, 0, 100))).as("tombstones of b and c dropped by the second page")
                .containsExactly(4L, 6L, 9L);
        assertThat(FileOutbox.recorded(c, CH, "e").base()).isEqualTo(meta("e", "5").hash());
        assertThat(FileOutbox.recorded(c, CH, "d").base()).as("acknowledged with the first page").isEqualTo(meta("d", "4").hash());
        assertThat(FileOutbox.acknowledged(c, CH)).isEqualTo(9);

        FileOutbox.acknowledge(c, CH, 7); // an older acknowledgement changes nothing
        assertThat(FileOutbox.acknowledged(c, CH)).isEqualTo(9);
    }

    @Test
    void shouldRecordAMoveBetweenFoldersHeardInDifferentWalksAsAMove(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000; // past the walk's two seconds of doubt
        Files.createDirectories(folder.resolve("a"));
        Files.createDirectories(folder.resolve("b"));
        Files.writeString(folder.resolve("a/x.jpg"), "image");
        Files.writeString(folder.resolve("a/y.jpg"), "other");
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(2);
        FileOutbox.acknowledge(c, CH, 2);

        Files.move(folder.resolve("a/x.jpg"), folder.resolve("b/x.jpg"));
        // Only a is heard of first (b's event comes in the next burst): x is not taken as deleted and sent again.
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("a"), true)).isEqualTo(1);
        List<FileEntry> moved = FileOutbox.pending(c, CH, 2, 10);
        assertThat(moved).extracting(FileEntry::path, FileEntry::from).containsExactly(org.assertj.core.groups.Tuple.tuple("b/x.jpg", "a/x.jpg"),
                org.assertj.core.groups.Tuple.tuple("a/x.jpg", null));
        assertThat(moved.get(1).deleted()).isTrue();
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("b"), true)).as("b: nothing new").isZero();

        Files.move(folder.resolve("a/y.jpg"), folder.resolve("b/y.jpg"));
        // The folders this node changed itself (not heard): exactly those are looked at.
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("a"), false)).isEqualTo(1);
        assertThat(FileOutbox.recorded(c, CH, "a/y.jpg").meta()).as("a deletion").isNull();
        assertThat(FileOutbox.recorded(c, CH, "b/y.jpg")).as("not looked at yet").isNull();

        Files.delete(folder.resolve("b/x.jpg"));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { }, false, List.of("b"), true))
                .as("heard gone, not found elsewhere: a deletion (and b/y.jpg found by the whole walk)").isEqualTo(2);
        assertThat(FileOutbox.recorded(c, CH, "b/x.jpg").meta()).isNull();
        assertThat(FileOutbox.recorded(c, CH, "b/y.jpg").meta()).isNotNull();
    }

    @Test
    void shouldRecordNewFilesInOneBatchAndAFileBackWhereItsTombstoneStillIs(@TempDir Path folder) throws Exception {
        FileScanner scanner = new FileScanner(folder, List.of(), List.of());
        long later = System.currentTimeMillis() + 60_000; // past the walk's two seconds of doubt
        for (int i = 0; i < 2_500; i++) { // more than one batch
            Files.writeString(folder.resolve("f" + i + ".txt"), "content " + i);
        }
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(2_500);
        List<FileEntry> all = FileOutbox.pending(c, CH, 0, 3_000);
        assertThat(all).hasSize(2_500);
        assertThat(seqs(all)).as("numbered in order, from 1").containsExactlyElementsOf(
                java.util.stream.LongStream.rangeClosed(1, 2_500).boxed().toList());
        assertThat(FileOutbox.recorded(c, CH, "f7.txt").meta().hash()).isEqualTo(ContentHash.of("content 7".getBytes()));

        Files.delete(folder.resolve("f7.txt"));
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(1);
        assertThat(FileOutbox.recorded(c, CH, "f7.txt").meta()).as("a tombstone").isNull();
        Files.writeString(folder.resolve("f7.txt"), "back again"); // before the deletion was acknowledged
        assertThat(FileOutbox.recordWalk(c, CH, scanner, later, why -> { })).isEqualTo(1);
        FileOutbox.Recorded back = FileOutbox.recorded(c, CH, "f7.txt");
        assertThat(back.meta().hash()).isEqualTo(ContentHash.of("back again".getBytes()));
        assertThat(back.seq()).isEqualTo(2_502);
    }

    private static List<Long> seqs(List<FileEntry> entries) {
        List<Long> out = new ArrayList<>();
        entries.forEach(e -> out.add(e.seq()));
        return out;
    }
}
