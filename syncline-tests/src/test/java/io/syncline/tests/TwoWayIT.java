package io.syncline.tests;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.engine.verify.TableChecksum;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A two-way channel between a hub and three sites, each its own process on real PostgreSQL: a writer on every node
 * inserts, updates and deletes rows of 40 shared keys at the same time, for a bounded number of transactions; then
 * every node holds the same rows, and the hub recorded the conflicts it settled.
 */
class TwoWayIT {
    private static final int KEYS = 40;
    private static final int TRANSACTIONS = 300;
    private static final String STOCK = "CREATE TABLE stock (id INT PRIMARY KEY, qty INT NOT NULL, note TEXT, touched_by TEXT)";

    @RegisterExtension
    static final PgServer pg = new PgServer();

    @RegisterExtension
    final ProcessCluster cluster = new ProcessCluster();

    /** Random writes on one node's database, in a thread of the test JVM; straight to PostgreSQL. */
    private static Thread writer(String url, String node, long seed, AtomicInteger committed, AtomicReference<Throwable> error) {
        Thread t = new Thread(() -> {
            Random random = new Random(seed);
            try (Connection c = PgServer.connect(url)) {
                c.setAutoCommit(false);
                try (PreparedStatement upsert = c.prepareStatement("INSERT INTO stock (id, qty, note, touched_by) VALUES (?, ?, ?, ?) "
                        + "ON CONFLICT (id) DO UPDATE SET qty = stock.qty + 1, touched_by = EXCLUDED.touched_by");
                     PreparedStatement note = c.prepareStatement("UPDATE stock SET note = ? WHERE id = ?");
                     PreparedStatement del = c.prepareStatement("DELETE FROM stock WHERE id = ?")) {
                    int retries = 0;
                    for (int n = 1; n <= TRANSACTIONS; n++) {
                        try {
                            int ops = 1 + random.nextInt(3);
                            for (int i = 0; i < ops; i++) {
                                int id = 1 + random.nextInt(KEYS);
                                int kind = random.nextInt(10);
                                if (kind < 6) {
                                    upsert.setInt(1, id);
                                    upsert.setInt(2, random.nextInt(100));
                                    upsert.setString(3, null);
                                    upsert.setString(4, node);
                                    upsert.executeUpdate();
                                } else if (kind < 9) {
                                    note.setString(1, node + " tx " + n);
                                    note.setInt(2, id);
                                    note.executeUpdate();
                                } else {
                                    del.setInt(1, id);
                                    del.executeUpdate();
                                }
                            }
                            c.commit();
                        } catch (java.sql.SQLException e) {
                            // Two writers of the same rows (this one and the hub's apply, or a site's) can deadlock, as
                            // between any applications: PostgreSQL cancels one, which retries, as an application would.
                            c.rollback();
                            if (!"40P01".equals(e.getSQLState()) && !"40001".equals(e.getSQLState()) || ++retries > 1000) {
                                throw e;
                            }
                            n--;
                            continue;
                        }
                        committed.incrementAndGet();
                        Thread.sleep(random.nextInt(20));
                    }
                }
            } catch (Throwable e) {
                error.compareAndSet(null, e);
            }
        }, "writer-" + node);
        t.setDaemon(true);
        return t;
    }

    @Test
    void concurrentWritersOnEveryNodeConverge() throws Exception {
        String hubDb = pg.createDatabase("hub");
        List<String> siteDbs = new ArrayList<>();
        Db.exec(hubDb, STOCK);
        for (int i = 1; i <= 3; i++) {
            String db = pg.createDatabase("s" + i);
            Db.exec(db, STOCK);
            siteDbs.add(db);
        }
        NodeProcess hub = cluster.hub("hub", hubDb, """
                capture: {interval: 100ms}
                sites:
                  s3: {mode: pull, interval: 200ms}
                channels:
                  - name: stock
                    direction: two-way
                    conflict: {policy: last-writer-wins}
                    tables:
                      - name: stock
                        conflict: {policy: column-merge}
                """).startAndAwait();
        List<NodeProcess> sites = new ArrayList<>();
        for (int i = 1; i <= 3; i++) {
            sites.add(cluster.site("s" + i, siteDbs.get(i - 1), hub, "").startAndAwait());
        }
        // Every site has taken its first copy before the writers start.
        for (String db : siteDbs) {
            await().atMost(Duration.ofSeconds(60)).until(() -> Db.queryLong(db, "SELECT count(*) FROM sync_state WHERE k = 'route.stock'") == 1);
        }

        AtomicInteger committed = new AtomicInteger();
        AtomicReference<Throwable> error = new AtomicReference<>();
        List<Thread> writers = new ArrayList<>();
        writers.add(writer(hubDb, "hub", 1, committed, error));
        for (int i = 1; i <= 3; i++) {
            writers.add(writer(siteDbs.get(i - 1), "s" + i, 1 + i, committed, error));
        }
        writers.forEach(Thread::start);
        for (Thread t : writers) {
            t.join(Duration.ofMinutes(2).toMillis());
            assertThat(t.isAlive()).as(t.getName() + " finished").isFalse();
        }
        assertThat(error.get()).as("writer error").isNull();
        assertThat(committed.get()).isEqualTo(4 * TRANSACTIONS);

        AtomicReference<String> last = new AtomicReference<>();
        try {
            await().atMost(Duration.ofMinutes(2)).pollInterval(Duration.ofMillis(500)).until(() -> {
                assertThat(hub.isAlive() && sites.stream().allMatch(NodeProcess::isAlive)).as("all nodes alive").isTrue();
                TableChecksum.Result h = Db.checksum(hubDb, "stock");
                StringBuilder sb = new StringBuilder("hub " + h);
                boolean same = true;
                for (String db : siteDbs) {
                    TableChecksum.Result s = Db.checksum(db, "stock");
                    sb.append(" | ").append(s);
                    same &= s.equals(h);
                }
                last.set(sb.toString());
                return same;
            });
        } catch (RuntimeException e) {
            throw new AssertionError("no convergence: " + last.get(), e);
        }
        long conflicts = Db.queryLong(hubDb, "SELECT count(*) FROM sync_conflict");
        System.out.printf("two-way: %d transactions on 4 nodes, %d conflicts settled, %s%n", committed.get(), conflicts, last.get());
        assertThat(conflicts).as("concurrent writers on shared keys collided").isPositive();
        assertThat(Db.queryLong(hubDb, "SELECT count(*) FROM sync_conflict WHERE kind IS NULL OR winner IS NULL OR status <> 'resolved'")).isZero();
    }
}
