package io.syncline.tests;

import static io.syncline.tests.ProcessCluster.ITEM_CHANNEL;
import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.verify.TableChecksum;
import java.time.Duration;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Hub and sites as real processes on real PostgreSQL, halted at the engine's crash points or SIGKILLed at
 * random moments, then restarted: the hub must end up with exactly each site's rows (same checksum), and the
 * ledger must show that every change was applied exactly once.
 */
class CrashRecoveryIT {
    private static final Duration CONVERGE = Duration.ofSeconds(90);
    private static final String CHANNEL = "items";
    @RegisterExtension
    static final PgServer pg = new PgServer();

    @RegisterExtension
    final ProcessCluster cluster = new ProcessCluster();

    private static String pullSites(String mode, String... ids) {
        if (!mode.equals("pull")) {
            return "";
        }
        StringBuilder sb = new StringBuilder("sites:\n");
        for (String id : ids) {
            sb.append("  ").append(id).append(": {mode: pull, interval: 200ms}\n");
        }
        return sb.toString();
    }

    /** 500 inserts in one transaction, then 20 one-row updates in 20 transactions: 520 changes. */
    private static int writeSomeChanges(String siteDb) throws Exception {
        Db.exec(siteDb, "INSERT INTO item (id, name, qty, price) SELECT g, 'row ' || g, g % 7, g / 100.0 FROM generate_series(1, 500) g");
        for (int i = 1; i <= 20; i++) {
            Db.exec(siteDb, "UPDATE item SET qty = qty + 100, name = 'updated' WHERE id = " + (i * 7));
        }
        return 520;
    }

    @ParameterizedTest(name = "hub halts at {0}, {1} mode")
    @CsvSource({"apply-before-commit, push", "apply-before-commit, pull", "apply-after-commit, push", "apply-after-commit, pull"})
    void hubHaltedWhileApplyingRecoversExactlyOnce(String point, String mode) throws Exception {
        String hubDb = pg.createDatabase("hub");
        String siteDb = pg.createDatabase("s1");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(siteDb, Db.SITE_ITEM);
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL + pullSites(mode, "s1"))
                .start(Map.of("SYNCLINE_CRASH_AT", point)).awaitReady();
        NodeProcess site = cluster.site("s1", siteDb, hub, "").startAndAwait();
        Db.awaitLoaded(siteDb, CHANNEL, "item", Duration.ofSeconds(30));

        int changes = writeSomeChanges(siteDb);

        assertThat(hub.awaitExit(Duration.ofSeconds(60))).as("hub exit code").isEqualTo(137);
        assertThat(hub.outputSinceStart()).contains("SYNCLINE_CRASH_AT: halting at " + point);
        long[] ledger = Db.ledger(hubDb, "s1");
        long hubRows = Db.queryLong(hubDb, "SELECT count(*) FROM item WHERE site_id = 's1'");
        if (point.equals("apply-before-commit")) {
            assertThat(ledger[0]).as("ledger after a halt before commit").isZero();
            assertThat(hubRows).as("hub rows after a halt before commit").isZero();
        } else {
            assertThat(ledger[0]).as("ledger after a halt after commit").isGreaterThanOrEqualTo(1);
            assertThat(hubRows).as("hub rows after a halt after commit").isPositive();
        }
        assertThat(site.isAlive()).isTrue();

        hub.start(Map.of()).awaitReady();
        TableChecksum.Result sum = Db.awaitConverged(siteDb, hubDb, "s1", "item", CONVERGE, hub, site);

        assertThat(sum.rows()).isEqualTo(500);
        assertThat(Db.ledger(hubDb, "s1")[1]).as("changes applied by the hub (exactly once)").isEqualTo(changes);
    }

    @ParameterizedTest(name = "site halts mid-batch while sending, {0} mode")
    @ValueSource(strings = {"push", "pull"})
    void siteHaltedMidBatchRecoversExactlyOnce(String mode) throws Exception {
        String hubDb = pg.createDatabase("hub");
        String siteDb = pg.createDatabase("s1");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(siteDb, Db.SITE_ITEM);
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL + pullSites(mode, "s1")).startAndAwait();
        NodeProcess site = cluster.site("s1", siteDb, hub, "").start(Map.of("SYNCLINE_CRASH_AT", "send-mid-batch")).awaitReady();
        Db.awaitLoaded(siteDb, CHANNEL, "item", Duration.ofSeconds(30));

        int changes = writeSomeChanges(siteDb);

        assertThat(site.awaitExit(Duration.ofSeconds(60))).as("site exit code").isEqualTo(137);
        assertThat(site.outputSinceStart()).contains("SYNCLINE_CRASH_AT: halting at send-mid-batch");
        assertThat(hub.isAlive()).isTrue();
        // The hub saw a truncated batch and rolled it back.
        assertThat(Db.queryLong(hubDb, "SELECT count(*) FROM item WHERE site_id = 's1'")).isZero();
        assertThat(Db.ledger(hubDb, "s1")[0]).isZero();

        site.start(Map.of()).awaitReady();
        TableChecksum.Result sum = Db.awaitConverged(siteDb, hubDb, "s1", "item", CONVERGE, hub, site);

        assertThat(sum.rows()).isEqualTo(500);
        assertThat(Db.ledger(hubDb, "s1")[1]).as("changes applied by the hub (exactly once)").isEqualTo(changes);
    }

    /**
     * A push site and a pull site, each with a steady writer, while the hub is SIGKILLed twice and each site once
     * at random moments. The writers keep committing throughout (also while their site is down).
     */
    @Test
    void sigkillOfHubAndSitesUnderSteadyWritesConverges() throws Exception {
        long seed = System.nanoTime();
        System.out.println("sigkill test seed " + seed);
        Random random = new Random(seed);
        String hubDb = pg.createDatabase("hub");
        String pushDb = pg.createDatabase("s1");
        String pullDb = pg.createDatabase("s2");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(pushDb, Db.SITE_ITEM);
        Db.exec(pullDb, Db.SITE_ITEM);
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL + pullSites("pull", "s2")).startAndAwait();
        NodeProcess s1 = cluster.site("s1", pushDb, hub, "").startAndAwait();
        NodeProcess s2 = cluster.site("s2", pullDb, hub, "").startAndAwait();
        Db.awaitLoaded(pushDb, CHANNEL, "item", Duration.ofSeconds(30));
        Db.awaitLoaded(pullDb, CHANNEL, "item", Duration.ofSeconds(30));

        try (SiteWriter w1 = new SiteWriter(pushDb, 3000, Duration.ofMillis(3), seed).start();
             SiteWriter w2 = new SiteWriter(pullDb, 1500, Duration.ofMillis(8), seed + 1).start()) {
            for (int i = 1; i <= 2; i++) {
                Thread.sleep(1000 + random.nextInt(2000));
                System.out.printf("SIGKILL hub #%d at %d / %d writes%n", i, w1.committed(), w2.committed());
                hub.kill();
                Thread.sleep(200 + random.nextInt(1000));
                hub.start(Map.of()).awaitReady();
            }
            // Each site is killed while its writer is still committing; the writer goes on while the site is down.
            Thread.sleep(random.nextInt(1000));
            System.out.printf("SIGKILL site s2 at %d writes%n", w2.committed());
            s2.kill();
            Thread.sleep(500 + random.nextInt(1500));
            s2.start(Map.of()).awaitReady();
            Thread.sleep(random.nextInt(1000));
            System.out.printf("SIGKILL site s1 at %d writes%n", w1.committed());
            s1.kill();
            Thread.sleep(500 + random.nextInt(1500));
            s1.start(Map.of()).awaitReady();

            w1.awaitDone(Duration.ofSeconds(120));
            w2.awaitDone(Duration.ofSeconds(120));
        }
        TableChecksum.Result a = Db.awaitConverged(pushDb, hubDb, "s1", "item", CONVERGE, hub, s1, s2);
        TableChecksum.Result b = Db.awaitConverged(pullDb, hubDb, "s2", "item", CONVERGE, hub, s1, s2);
        assertThat(a.rows()).isGreaterThan(2000);
        assertThat(b.rows()).isGreaterThan(1000);
        assertThat(Db.queryLong(hubDb, "SELECT count(*) FROM item")).isEqualTo(a.rows() + b.rows());
    }

    /**
     * A pull-mode site whose listener port is picked anew at each start (http.port 0, the default) restarts while
     * the hub is down: the hub must learn its new listener URL once it is back, and pull again.
     */
    @Test
    void pullSiteRestartedWhileHubIsDownIsPulledAgain() throws Exception {
        String hubDb = pg.createDatabase("hub");
        String siteDb = pg.createDatabase("s1");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(siteDb, Db.SITE_ITEM);
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL + pullSites("pull", "s1")).startAndAwait();
        NodeProcess site = cluster.site("s1", siteDb, hub, "http: {host: 127.0.0.1, port: 0}\n").startAndAwait();
        Db.awaitLoaded(siteDb, CHANNEL, "item", Duration.ofSeconds(30));
        Db.exec(siteDb, "INSERT INTO item (id, name, qty) SELECT g, 'before', 1 FROM generate_series(1, 100) g");
        Db.awaitConverged(siteDb, hubDb, "s1", "item", CONVERGE, hub, site);

        hub.kill();
        site.kill();
        site.start(Map.of()).awaitReady();
        Db.exec(siteDb, "INSERT INTO item (id, name, qty) SELECT g, 'while the hub was down', 2 FROM generate_series(101, 200) g");
        hub.start(Map.of()).awaitReady();

        TableChecksum.Result sum = Db.awaitConverged(siteDb, hubDb, "s1", "item", Duration.ofSeconds(45), hub, site);
        assertThat(sum.rows()).isEqualTo(200);
    }

    /**
     * The hub applied and acknowledged, but the site halts before it records the acknowledgement: after a restart it
     * sends the same batches again, and the hub's ledger turns them into no-ops.
     */
    @ParameterizedTest(name = "site halts before recording the ack, {0} mode")
    @ValueSource(strings = {"push", "pull"})
    void siteHaltedBeforeRecordingAckResendsAsNoOp(String mode) throws Exception {
        String hubDb = pg.createDatabase("hub");
        String siteDb = pg.createDatabase("s1");
        Db.exec(hubDb, Db.HUB_ITEM);
        Db.exec(siteDb, Db.SITE_ITEM);
        NodeProcess hub = cluster.hub("hub", hubDb, ITEM_CHANNEL + pullSites(mode, "s1")).startAndAwait();
        NodeProcess site = cluster.site("s1", siteDb, hub, "").start(Map.of("SYNCLINE_CRASH_AT", "ack-before-commit")).awaitReady();
        Db.awaitLoaded(siteDb, CHANNEL, "item", Duration.ofSeconds(30));

        int changes = writeSomeChanges(siteDb);

        assertThat(site.awaitExit(Duration.ofSeconds(60))).as("site exit code").isEqualTo(137);
        assertThat(site.outputSinceStart()).contains("SYNCLINE_CRASH_AT: halting at ack-before-commit");
        assertThat(Db.ledger(hubDb, "s1")[0]).as("batches the hub applied").isPositive();
        assertThat(Db.outboxRows(siteDb)).as("outbox rows kept: the ack was not recorded").isPositive();

        site.start(Map.of()).awaitReady();
        Db.awaitConverged(siteDb, hubDb, "s1", "item", CONVERGE, hub, site);
        assertThat(Db.ledger(hubDb, "s1")[1]).as("changes applied by the hub (exactly once)").isEqualTo(changes);
    }
}
