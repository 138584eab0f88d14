package io.syncline.tests;

import static io.syncline.tests.ProcessCluster.ITEM_CHANNEL;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A 4 GiB file from a site to the hub, both nodes separate processes limited to a 256 MB heap; the hub is killed in
 * the middle of the transfer and started again, and the transfer goes on from the chunks it had received.
 */
class BigFileIT {
    private static final long SIZE = 4L << 30;

    @RegisterExtension
    static final PgServer pg = new PgServer();

    @RegisterExtension
    final ProcessCluster cluster = new ProcessCluster();

    @TempDir
    Path dir;

    @Test
    void shouldSendAFourGibFileWithBoundedMemoryAndResumeAfterTheHubDiesMidway() throws Exception {
        assumeThat(Files.getFileStore(dir).getUsableSpace()).as("free disk for the file, its copy and a partial copy")
                .isGreaterThan(13L << 30);
        Path siteFolder = Files.createDirectories(dir.resolve("site-media"));
        Path hubFolder = dir.resolve("hub-media");
        String sha = writeBigFile(siteFolder.resolve("video/big.bin"));

        String hubDb = pg.createDatabase("hub");
        String siteDb = pg.createDatabase("s1");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(siteDb, Db.SITE_ITEM);
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL + """
                fileChannels:
                  - {name: media}
                folders: {media: "%s"}
                """.formatted(hubFolder), "-Xmx256m").startAndAwait();
        NodeProcess site = cluster.site("s1", siteDb, hub, """
                folders: {media: "%s"}
                """.formatted(siteFolder), "-Xmx256m").startAndAwait();

        Path work = hubFolder.resolve("s1").resolve(".syncline-tmp");
        org.awaitility.Awaitility.await("a quarter of the file at the hub").atMost(Duration.ofMinutes(3)).pollInterval(Duration.ofMillis(100))
                .failFast("a node process died", () -> !hub.isAlive() || !site.isAlive())
                .until(() -> written(work) > SIZE / 4);
        hub.kill();
        long kept = written(work);
        hub.start(Map.of()).awaitReady();

        Path copy = hubFolder.resolve("s1").resolve("video/big.bin");
        org.awaitility.Awaitility.await("the whole file at the hub").atMost(Duration.ofMinutes(5)).pollInterval(Duration.ofMillis(500))
                .failFast("a node process died", () -> !hub.isAlive() || !site.isAlive())
                .until(() -> Files.exists(copy) && Files.size(copy) == SIZE);
        assertThat(sha256(copy)).isEqualTo(sha);
        Matcher m = Pattern.compile("file 'video/big.bin' of (\\d+) bytes in place: (\\d+) bytes received, (\\d+) bytes from chunks")
                .matcher(hub.outputSinceStart());
        assertThat(m.find()).as("the hub's log of the file after its restart").isTrue();
        long reused = Long.parseLong(m.group(3));
        System.out.printf("4 GiB file: %,d bytes written before the hub was killed; after its restart %,d bytes received, %,d reused%n",
                kept, Long.parseLong(m.group(2)), reused);
        assertThat(reused).as("bytes the restarted hub took from the partial file instead of receiving them again")
                .isGreaterThan(SIZE / 5);
        assertThat(site.isAlive()).as("the site ran the whole time within its 256 MB heap").isTrue();
    }

    /** Bytes of the largest temporary or partial file in the hub's working folder. */
    private static long written(Path work) throws Exception {
        if (!Files.isDirectory(work)) {
            return 0;
        }
        long max = 0;
        try (var files = Files.list(work)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                try {
                    max = Math.max(max, Files.size(p));
                } catch (java.nio.file.NoSuchFileException gone) {
                    // renamed meanwhile
                }
            }
        }
        return max;
    }

    /** Writes SIZE bytes no chunk of which repeats (a random block, each 4 KiB of it stamped with its offset); returns the SHA-256. */
    private static String writeBigFile(Path f) throws Exception {
        Files.createDirectories(f.getParent());
        byte[] block = new byte[1 << 20];
        new Random(42).nextBytes(block);
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        ByteBuffer buf = ByteBuffer.wrap(block);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (long off = 0; off < SIZE; off += block.length) {
                for (int i = 0; i < block.length; i += 4096) {
                    buf.putLong(i, off + i);
                }
                md.update(block);
                buf.clear();
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** SHA-256 of a file, worked out here: a check of the copies that does not use Syncline's own hashing. */
    private static String sha256(Path f) throws Exception {
        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
        byte[] buf = new byte[1 << 16];
        try (java.io.InputStream in = Files.newInputStream(f)) {
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        }
        return java.util.HexFormat.of().formatHex(md.digest());
    }
}
