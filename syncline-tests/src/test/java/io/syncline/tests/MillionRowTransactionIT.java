package io.syncline.tests;

import static io.syncline.tests.ProcessCluster.ITEM_CHANNEL;
import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.verify.TableChecksum;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * One site transaction of 1,000,000 rows becomes one batch of 1,000,000 changes. Hub and site run with a
 * 256 MiB heap, so the batch must stream end to end (outbox cursor, wire writer, HTTP, wire reader, applier).
 */
class MillionRowTransactionIT {
    private static final int ROWS = 1_000_000;
    @RegisterExtension
    static final PgServer pg = new PgServer();

    @RegisterExtension
    final ProcessCluster cluster = new ProcessCluster();

    @Test
    void millionRowTransactionMovesAsOneBatchWithSmallHeaps() throws Exception {
        String hubDb = pg.createDatabase("hub");
        String siteDb = pg.createDatabase("big");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(siteDb, Db.SITE_ITEM);
        String transport = "transport: {readTimeout: 15m}\n";
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL + transport, "-Xmx256m").startAndAwait();
        NodeProcess site = cluster.site("big", siteDb, hub, transport, "-Xmx256m").startAndAwait();
        Db.awaitLoaded(siteDb, "items", "item", Duration.ofSeconds(30));

        long t0 = System.nanoTime();
        Db.exec(siteDb, "INSERT INTO item (id, name, qty, price) SELECT g, 'row ' || g, g % 1000, (g % 100000) / 100.0 "
                + "FROM generate_series(1, " + ROWS + ") g");
        long t1 = System.nanoTime();
        TableChecksum.Result sum = Db.awaitConverged(siteDb, hubDb, "big", "item", Duration.ofMinutes(4), hub, site);
        long t2 = System.nanoTime();
        System.out.printf("million-row transaction: insert+capture %d ms, seal/send/apply/ack until converged %d ms%n",
                (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000);

        assertThat(sum.rows()).isEqualTo(ROWS);
        long[] ledger = Db.ledger(hubDb, "big");
        assertThat(ledger[0]).as("batches applied").isEqualTo(1);
        assertThat(ledger[1]).as("changes applied").isEqualTo(ROWS);
        assertThat(hub.outputSinceStart()).doesNotContain("OutOfMemoryError");
        assertThat(site.outputSinceStart()).doesNotContain("OutOfMemoryError");
    }
}
