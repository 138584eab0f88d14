package io.syncline.tests;

import static io.syncline.tests.ProcessCluster.ITEM_CHANNEL;
import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.verify.TableChecksum;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Offline and catch-up: a site keeps capturing while the hub is down, and when the hub is back the site drains a backlog
 * of a million changes by itself, in order, exactly once, with both processes limited to a 128 MB heap (memory that grew
 * with the backlog would end the test with an OutOfMemoryError and a dead process).
 */
class BacklogIT {
    private static final int ROWS = 500_000;
    private static final int PER_TX = 1_000;

    @RegisterExtension
    static final PgServer pg = new PgServer();

    @RegisterExtension
    final ProcessCluster cluster = new ProcessCluster();

    @Test
    void shouldDrainAMillionChangeBacklogOnItsOwnWithBoundedMemory() throws Exception {
        String hubDb = pg.createDatabase("hub");
        String siteDb = pg.createDatabase("s1");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(siteDb, Db.SITE_ITEM);
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL, "-Xmx128m").startAndAwait();
        NodeProcess site = cluster.site("s1", siteDb, hub, "", "-Xmx128m").startAndAwait();
        Db.awaitLoaded(siteDb, "items", "item", Duration.ofSeconds(60));

        hub.kill(); // the site cannot reach the hub from now on
        // A million changes in a thousand transactions: every row inserted, then every row updated.
        for (int from = 1; from <= ROWS; from += PER_TX) {
            Db.exec(siteDb, "INSERT INTO item (id, name, qty, price) SELECT g, 'row ' || g, g % 7, g / 100.0 FROM generate_series("
                    + from + ", " + (from + PER_TX - 1) + ") g");
        }
        for (int from = 1; from <= ROWS; from += PER_TX) {
            Db.exec(siteDb, "UPDATE item SET qty = qty + 1, name = 'updated' WHERE id BETWEEN " + from + " AND " + (from + PER_TX - 1));
        }
        assertThat(Db.outboxRows(siteDb)).as("changes captured while the hub was down").isEqualTo(2L * ROWS);
        assertThat(site.isAlive()).isTrue();

        long started = System.nanoTime();
        hub.start(Map.of()).awaitReady();
        // Cheap to ask while it drains (a full checksum of both tables every poll would take the CPU the nodes need).
        org.awaitility.Awaitility.await("backlog drained").atMost(Duration.ofMinutes(5)).pollInterval(Duration.ofMillis(200))
                .failFast("a node process died", () -> !hub.isAlive() || !site.isAlive())
                .until(() -> Db.outboxRows(siteDb) == 0);
        double seconds = (System.nanoTime() - started) / 1e9;
        TableChecksum.Result sum = Db.awaitConverged(siteDb, hubDb, "s1", "item", Duration.ofMinutes(1), hub, site);
        System.out.printf("backlog of %,d changes drained in %.1f s after the hub came back (%,.0f changes/s, hub start included)%n",
                2L * ROWS, seconds, 2L * ROWS / seconds);
        assertThat(sum.rows()).isEqualTo(ROWS);
        assertThat(Db.ledger(hubDb, "s1")[1]).as("changes applied by the hub (exactly once)").isEqualTo(2L * ROWS);
    }
}
