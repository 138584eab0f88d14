package io.syncline.tests;

import static io.syncline.tests.ProcessCluster.ITEM_CHANNEL;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.verify.TableChecksum;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A site whose database already holds 1,000,000 rows registers with a running hub while another site keeps
 * writing: the existing rows arrive through the initial load, and the other site's changes keep arriving
 * meanwhile with a bounded lag.
 */
class InitialLoadIT {
    private static final int ROWS = 1_000_000;
    /** Most the busy site's oldest unacknowledged change may age while the load runs. */
    private static final Duration MAX_LAG = Duration.ofSeconds(20);
    @RegisterExtension
    static final PgServer pg = new PgServer();

    @RegisterExtension
    final ProcessCluster cluster = new ProcessCluster();

    /** Age in ms of the oldest change in a site's outbox (0 when empty). */
    private static long backlogAgeMs(String siteDb) throws Exception {
        return Db.queryLong(siteDb, "SELECT COALESCE(CAST(EXTRACT(EPOCH FROM now() - min(captured_at)) * 1000 AS BIGINT), 0) FROM sync_outbox");
    }

    @Test
    void existingMillionRowsArriveByInitialLoadWhileAnotherSiteKeepsFlowing() throws Exception {
        String hubDb = pg.createDatabase("hub");
        String busyDb = pg.createDatabase("busy");
        String bigDb = pg.createDatabase("big");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(busyDb, Db.SITE_ITEM);
        Db.exec(bigDb, Db.SITE_ITEM, "INSERT INTO item (id, name, qty, price) SELECT g, 'existing ' || g, g % 1000, (g % 100000) / 100.0 "
                + "FROM generate_series(1, " + ROWS + ") g");
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL).startAndAwait();
        NodeProcess busy = cluster.site("busy", busyDb, hub, "").startAndAwait();
        Db.awaitLoaded(busyDb, "items", "item", Duration.ofSeconds(30));

        try (SiteWriter writer = new SiteWriter(busyDb, 100_000, Duration.ofMillis(5), 42).start()) {
            await().atMost(Duration.ofSeconds(30)).until(() -> Db.queryLong(hubDb, "SELECT count(*) FROM item WHERE site_id = 'busy'") > 100);
            long t0 = System.nanoTime();
            NodeProcess big = cluster.site("big", bigDb, hub, "").startAndAwait();
            long maxLag = 0;
            long samples = 0;
            long deadline = System.nanoTime() + Duration.ofMinutes(4).toNanos();
            while (Db.queryLong(bigDb, "SELECT count(*) FROM sync_state WHERE k = 'load.items.item' AND v = 'done'") == 0
                    || Db.outboxRows(bigDb) > 0) {
                assertThat(System.nanoTime()).as("initial load finished and delivered within 4 minutes").isLessThan(deadline);
                assertThat(hub.isAlive() && busy.isAlive() && big.isAlive()).as("all nodes alive").isTrue();
                long lag = backlogAgeMs(busyDb);
                maxLag = Math.max(maxLag, lag);
                samples++;
                assertThat(lag).as("lag of the busy site during the load (ms)").isLessThan(MAX_LAG.toMillis());
                Thread.sleep(500);
            }
            long t1 = System.nanoTime();
            System.out.printf("initial load of %d rows delivered in %d ms; busy site: %d writes so far, max backlog age %d ms over %d samples%n",
                    ROWS, (t1 - t0) / 1_000_000, writer.committed(), maxLag, samples);
            assertThat(samples).as("the load took long enough to sample the busy site's lag").isGreaterThan(3);
            writer.close();

            TableChecksum.Result loaded = Db.awaitConverged(bigDb, hubDb, "big", "item", Duration.ofMinutes(2), hub, busy, big);
            assertThat(loaded.rows()).isEqualTo(ROWS);
            TableChecksum.Result flowing = Db.awaitConverged(busyDb, hubDb, "busy", "item", Duration.ofMinutes(2), hub, busy, big);
            assertThat(flowing.rows()).isPositive();
        }
    }
}
