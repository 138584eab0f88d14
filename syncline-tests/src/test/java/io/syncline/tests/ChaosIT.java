package io.syncline.tests;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.config.NodeConfig;
import io.syncline.testkit.FaultProxy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.LongStream;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Chaos: a hub and five sites as processes on PostgreSQL, writers on every site (site-to-hub channel {@code items}) and at
 * the hub (hub-to-sites channel {@code catalog}). Every link goes through a {@link FaultProxy}: the sites' requests to the
 * hub, and the hub's pulls of the one pull-mode site. For a bounded time the test SIGKILLs and restarts random nodes and
 * injects random network faults (cuts in the middle of a batch, delays, drops, duplicated requests, stalls); then the
 * faults stop, and every site's rows must be at the hub and the hub's catalog at every site, none lost or duplicated
 * (same rows, same checksums, empty outboxes).
 *
 * <p>In CI: two seeds, 30 s of chaos each. Longer, from a command: {@code tools/chaos --seed=42 --duration=10m}
 * (system properties {@code chaos.seeds}, comma-separated, and {@code chaos.duration}).
 */
class ChaosIT {
    private static final int SITES = 5;
    private static final Duration CONVERGE = Duration.ofSeconds(180);
    private static final String CATALOG = Db.SITE_ITEM.replace("CREATE TABLE item", "CREATE TABLE catalog");

    @RegisterExtension
    static final PgServer pg = new PgServer();

    @RegisterExtension
    final ProcessCluster cluster = new ProcessCluster();

    static LongStream seeds() {
        String seeds = System.getProperty("chaos.seeds", "");
        if (!seeds.isBlank()) {
            return Arrays.stream(seeds.split(",")).mapToLong(s -> Long.parseLong(s.trim()));
        }
        return LongStream.of(new Random().nextLong(), new Random().nextLong());
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void everyNodeConvergesAfterCrashesAndNetworkFaults(long seed) throws Exception {
        Duration duration = NodeConfig.parseDuration(System.getProperty("chaos.duration", "30s"));
        System.out.printf("chaos: seed %d, %s of faults (replay: tools/chaos --seed=%d --duration=%s)%n", seed, duration, seed,
                System.getProperty("chaos.duration", "30s"));
        Random random = new Random(seed);
        String hubDb = pg.createDatabase("hub");
        Db.exec(hubDb, Db.HUB_ITEM, CATALOG);
        List<String> siteDbs = new ArrayList<>();
        for (int i = 1; i <= SITES; i++) {
            String db = pg.createDatabase("s" + i);
            Db.exec(db, Db.SITE_ITEM, CATALOG);
            siteDbs.add(db);
        }
        String pullSite = "s" + SITES;
        int pullPort = PgServer.freePort();
        NodeProcess hub = cluster.hub("hub", hubDb, ProcessCluster.ITEM_CHANNEL + """
                  - name: catalog
                    direction: hub-to-sites
                    tables: [{name: catalog}]
                sites:
                  %s: {mode: pull, interval: 200ms}
                """.formatted(pullSite));
        List<FaultProxy> proxies = new ArrayList<>();
        List<NodeProcess> nodes = new ArrayList<>();
        try {
            // Proxies first: they forward to fixed ports, whether the node behind is up or not.
            for (int i = 1; i <= SITES; i++) {
                proxies.add(new FaultProxy("s" + i + "-to-hub", "127.0.0.1", ProcessCluster.hubPort(hub)));
            }
            FaultProxy pullLink = new FaultProxy("hub-to-" + pullSite, "127.0.0.1", pullPort);
            proxies.add(pullLink);
            hub.startAndAwait();
            nodes.add(hub);
            for (int i = 1; i <= SITES; i++) {
                String http = i == SITES
                        ? "http: {host: 127.0.0.1, port: " + pullPort + ", advertisedUrl: \"" + pullLink.url() + "\"}\n" : "";
                NodeProcess site = cluster.site("s" + i, siteDbs.get(i - 1), proxies.get(i - 1).url(), http).startAndAwait();
                nodes.add(site);
            }
            for (int i = 1; i <= SITES; i++) {
                Db.awaitLoaded(siteDbs.get(i - 1), "items", "item", Duration.ofSeconds(60));
            }

            // Writers: paced to keep writing for about the chaos's length, bounded in count.
            long paceMillis = 20;
            int transactions = (int) Math.max(200, duration.toMillis() / paceMillis);
            List<SiteWriter> writers = new ArrayList<>();
            for (int i = 1; i <= SITES; i++) {
                writers.add(new SiteWriter(siteDbs.get(i - 1), transactions, Duration.ofMillis(paceMillis), seed + i).start());
            }
            writers.add(new SiteWriter(hubDb, "catalog", transactions / 2, Duration.ofMillis(paceMillis * 2), seed).start());

            long deadline = System.nanoTime() + duration.toNanos();
            int kills = 0;
            int faults = 0;
            while (System.nanoTime() < deadline) {
                Thread.sleep(100 + random.nextInt(500));
                int dice = random.nextInt(100);
                if (dice < 10) {
                    NodeProcess victim = nodes.get(random.nextInt(nodes.size()));
                    System.out.printf("chaos: SIGKILL %s%n", victim.id());
                    victim.kill();
                    kills++;
                    Thread.sleep(200 + random.nextInt(1500));
                    victim.start(Map.of()).awaitReady();
                } else if (dice < 75) {
                    FaultProxy link = proxies.get(random.nextInt(proxies.size()));
                    faults++;
                    switch (random.nextInt(6)) {
                        case 0 -> link.cutAfterProbability(0.5, 1 + random.nextInt(64 * 1024), new Random(random.nextLong()));
                        case 1 -> link.delay(Duration.ofMillis(random.nextInt(300)));
                        case 2 -> {
                            link.drop(true);
                            Thread.sleep(300 + random.nextInt(2000));
                            link.drop(false);
                        }
                        case 3 -> link.duplicate(true);
                        case 4 -> {
                            link.stall(true);
                            Thread.sleep(300 + random.nextInt(2000));
                            link.stall(false);
                        }
                        default -> link.cutAll();
                    }
                } else {
                    clear(proxies.get(random.nextInt(proxies.size())));
                }
            }
            proxies.forEach(ChaosIT::clear);
            for (NodeProcess n : nodes) {
                if (!n.isAlive()) {
                    n.start(Map.of()).awaitReady();
                }
            }
            System.out.printf("chaos: %d kills and %d network faults; now converging%n", kills, faults);
            for (SiteWriter w : writers) {
                w.awaitDone(Duration.ofSeconds(120));
            }

            NodeProcess[] all = nodes.toArray(NodeProcess[]::new);
            long siteRows = 0;
            for (int i = 1; i <= SITES; i++) {
                siteRows += Db.awaitConverged(siteDbs.get(i - 1), hubDb, "s" + i, "item", CONVERGE, all).rows();
            }
            assertThat(Db.queryLong(hubDb, "SELECT count(*) FROM item")).as("hub rows: every site's, once").isEqualTo(siteRows);
            TableChecksum.Result catalog = Db.checksum(hubDb, "catalog");
            assertThat(catalog.rows()).isPositive();
            for (int i = 1; i <= SITES; i++) {
                awaitSame(siteDbs.get(i - 1), hubDb, "catalog", "s" + i, all);
            }
            for (NodeProcess n : nodes) {
                // No database is restored here: a start-over (every table loaded again) would be taken on a fault that
                // only looked like one, such as a pull the network held up and delivered late.
                try (java.util.stream.Stream<String> lines = java.nio.file.Files.lines(n.log())) {
                    assertThat(lines.filter(l -> l.contains("Starting over")).findFirst())
                            .as("%s started over, yet no database was restored", n.id()).isEmpty();
                }
            }
            for (FaultProxy p : proxies) {
                System.out.printf("chaos: link %s: %d connections, %d cut%n", p, p.connections(), p.cuts());
            }
        } finally {
            proxies.forEach(FaultProxy::close);
        }
    }

    private static void clear(FaultProxy link) {
        link.cutAfter(-1);
        link.delay(Duration.ZERO);
        link.drop(false);
        link.duplicate(false);
        link.stall(false);
    }

    /** Waits (bounded) until a site's table equals the hub's (the hub-to-sites channel). */
    private static void awaitSame(String siteDb, String hubDb, String table, String site, NodeProcess... mustLive) {
        AtomicReference<String> last = new AtomicReference<>("never compared");
        try {
            await("site " + site + " holds the hub's " + table).atMost(CONVERGE).pollInterval(Duration.ofMillis(500))
                    .failFast("a node process died", () -> Arrays.stream(mustLive).anyMatch(p -> !p.isAlive()))
                    .ignoreExceptions()
                    .until(() -> {
                        TableChecksum.Result s = Db.checksum(siteDb, table);
                        TableChecksum.Result h = Db.checksum(hubDb, table);
                        last.set("site " + s + ", hub " + h);
                        return s.equals(h);
                    });
        } catch (RuntimeException | Error e) {
            throw new AssertionError(e.getMessage() + "; last comparison: " + last.get(), e);
        }
    }
}
