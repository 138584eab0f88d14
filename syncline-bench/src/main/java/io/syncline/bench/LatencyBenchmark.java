package io.syncline.bench;

import io.syncline.node.HubNode;
import io.syncline.node.SiteNode;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

/**
 * Real-time latency (issue 4): a hub and N sites (46 by default) in this JVM, on two embedded PostgreSQL servers (one
 * for the hub, one holding every site's database). Every site commits one change per transaction at a fixed rate
 * (20 a second by default) into a site-to-hub channel, and the hub commits at its own rate into a hub-to-sites channel.
 * Statement triggers on the receiving table of each target notify a listener of this benchmark, which PostgreSQL delivers
 * when the apply commits: the latency of a change is from its writer's commit returning to that notification, on the
 * same clock (System.nanoTime), and for the hub's changes until the last of the N sites has it. Prints p50, p95, p99 and
 * max of both, after a warm-up that is not counted.
 */
public final class LatencyBenchmark {
    private static final String TOKEN = "bench-token";

    private final int sites;
    private final double siteRate;
    private final double hubRate;
    private final int seconds;
    private final int warmup;
    /** Prints the statements each PostgreSQL server spent most time on (pg_stat_statements), for profiling. */
    private final boolean statements;
    /** What replicates: syncline, native (PostgreSQL logical replication, the peer) or none (the writers alone). */
    private final String system;

    /** Commit times (nanos) and first notification times by change key. */
    private final Map<String, Long> committed = new ConcurrentHashMap<>();
    private final Map<String, Long> seen = new ConcurrentHashMap<>();
    /** Hub changes: per price id, how many sites have it and when the last one got it. */
    private final Map<Long, long[]> reached = new ConcurrentHashMap<>();
    private final AtomicBoolean running = new AtomicBoolean(true);

    private LatencyBenchmark(Map<String, String> o) {
        this.sites = Integer.parseInt(o.getOrDefault("sites", "46"));
        this.siteRate = Double.parseDouble(o.getOrDefault("rate", "20"));
        this.hubRate = Double.parseDouble(o.getOrDefault("hub-rate", "20"));
        this.seconds = Integer.parseInt(o.getOrDefault("seconds", "60"));
        this.warmup = Integer.parseInt(o.getOrDefault("warmup", "15"));
        this.statements = Boolean.parseBoolean(o.getOrDefault("statements", "false"));
        this.system = o.getOrDefault("system", "syncline");
        if (!List.of("syncline", "native", "none").contains(system)) {
            throw new IllegalArgumentException("--system must be syncline, native or none, not '" + system + "'");
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new LinkedHashMap<>();
        for (String a : args) {
            if (a.equals("-h") || a.equals("--help")) {
                System.out.println("usage: bench/latency [--sites=46] [--rate=20 (changes/s per site)] [--hub-rate=20 (changes/s at the hub)]"
                        + " [--seconds=60 (measured)] [--warmup=15 (s, not counted)] [--statements=false (print the top statements per server)]"
                        + " [--system=syncline|native (PostgreSQL logical replication, same topology)|none (writers only)]");
                return;
            }
            if (!a.startsWith("--") || !a.contains("=")) {
                System.err.println("unknown argument '" + a + "' (use --name=value; --help lists them)");
                System.exit(2);
            }
            opts.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
        }
        for (String k : opts.keySet()) {
            if (!List.of("sites", "rate", "hub-rate", "seconds", "warmup", "statements", "system").contains(k)) {
                System.err.println("unknown option --" + k + " (known: sites, rate, hub-rate, seconds, warmup, statements, system)");
                System.exit(2);
            }
        }
        new LatencyBenchmark(opts).run();
        System.exit(0);
    }

    private void run() throws Exception {
        Locale.setDefault(Locale.ROOT);
        System.out.printf("Latency (%s): hub + %d sites on PostgreSQL, %.0f changes/s per site (%.0f/s in all) and %.0f/s at the hub; "
                + "%d s measured after %d s of warm-up%n", system, sites, siteRate, siteRate * sites, hubRate, seconds, warmup);
        Map<String, String> config = new LinkedHashMap<>();
        if (statements) {
            config.put("shared_preload_libraries", "pg_stat_statements");
        }
        if (system.equals("native")) { // both servers publish and subscribe: one WAL sender, slot and apply worker per site
            String n = String.valueOf(sites + 10);
            config.putAll(Map.of("wal_level", "logical", "max_wal_senders", n, "max_replication_slots", n,
                    "max_logical_replication_workers", n, "max_worker_processes", String.valueOf(sites + 20)));
        }
        try (Pg hubPg = Pg.start("hub", with(config, "max_connections", String.valueOf(100 + sites)));
             Pg sitePg = Pg.start("sites", with(config, "max_connections", String.valueOf(40 + sites * 8)))) {
            if (statements) {
                hubPg.exec("CREATE EXTENSION pg_stat_statements");
                sitePg.exec("CREATE EXTENSION pg_stat_statements");
            }
            System.out.println("PostgreSQL " + hubPg.scalar("SHOW server_version") + ", 2 servers (hub; every site's database)");
            hubPg.exec("CREATE TABLE sale (site_id VARCHAR(20) NOT NULL, id BIGINT NOT NULL, qty INT, PRIMARY KEY (site_id, id))",
                    "CREATE TABLE price (id BIGINT PRIMARY KEY, amount INT)",
                    notifyTrigger("sale", "n.site_id || ':' || n.id"));
            List<String> dbs = new ArrayList<>();
            for (int i = 1; i <= sites; i++) {
                String db = String.format("s%02d", i);
                dbs.add(db);
                sitePg.exec("CREATE DATABASE " + db);
                try (Connection c = java.sql.DriverManager.getConnection(siteUrl(sitePg, db)); Statement s = c.createStatement()) {
                    // Syncline adds the site's id at the hub (hubColumn); native replication copies columns as they are,
                    // so there the site's rows carry it, filled in by a default (the writer's statement is the same).
                    s.execute(system.equals("native")
                            ? "CREATE TABLE sale (id BIGINT NOT NULL, qty INT, site_id VARCHAR(20) NOT NULL DEFAULT '" + db
                                    + "', PRIMARY KEY (site_id, id))"
                            : "CREATE TABLE sale (id BIGINT PRIMARY KEY, qty INT)");
                    s.execute("CREATE TABLE price (id BIGINT PRIMARY KEY, amount INT)");
                    s.execute(notifyTrigger("price", "n.id::text"));
                }
            }
            Map<String, Long> servers = new LinkedHashMap<>();
            servers.put("hub PG", CpuMeter.postmaster(hubPg));
            servers.put("sites PG", CpuMeter.postmaster(sitePg));
            ScheduledExecutorService writers = Executors.newScheduledThreadPool(8, r -> {
                Thread t = new Thread(r, "bench-writer");
                t.setDaemon(true);
                return t;
            });
            List<Thread> listeners = new ArrayList<>();
            try (AutoCloseable replication = switch (system) {
                case "syncline" -> syncline(hubPg, sitePg, dbs);
                case "native" -> nativeReplication(hubPg, sitePg, dbs);
                default -> () -> { };
            }) {
                listeners.add(listen(hubPg.url() + "?user=postgres", payload -> seen.putIfAbsent(payload, System.nanoTime())));
                for (String db : dbs) {
                    listeners.add(listen(siteUrl(sitePg, db), payload -> {
                        long now = System.nanoTime();
                        reached.compute(Long.parseLong(payload), (k, v) -> v == null ? new long[] {1, now} : new long[] {v[0] + 1, now});
                    }));
                }
                if (!system.equals("none")) { // every site holding the catalog before the clock starts
                    long ready = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
                    try (Connection c = hubPg.plain(); Statement s = c.createStatement()) {
                        s.execute("INSERT INTO price VALUES (0, 0)");
                    }
                    while (reached.getOrDefault(0L, new long[] {0, 0})[0] < sites) {
                        if (System.nanoTime() > ready) {
                            throw new IllegalStateException("only " + reached.getOrDefault(0L, new long[] {0, 0})[0] + " of " + sites
                                    + " sites took the hub's first change within 120 s");
                        }
                        Thread.sleep(50);
                    }
                    reached.clear();
                }
                long start = System.nanoTime();
                long countFrom = start + TimeUnit.SECONDS.toNanos(warmup);
                long stop = countFrom + TimeUnit.SECONDS.toNanos(seconds);
                AtomicLong errors = new AtomicLong();
                for (String db : dbs) {
                    write(writers, siteUrl(sitePg, db), siteRate, (c, n) -> {
                        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sale VALUES (?, ?)")) {
                            ps.setLong(1, n);
                            ps.setInt(2, (int) n);
                            ps.executeUpdate();
                        }
                        return db + ":" + n;
                    }, stop, errors);
                }
                write(writers, hubPg.url() + "?user=postgres", hubRate, (c, n) -> {
                    try (PreparedStatement ps = c.prepareStatement("INSERT INTO price VALUES (?, ?)")) {
                        ps.setLong(1, n);
                        ps.setInt(2, (int) n);
                        ps.executeUpdate();
                    }
                    return "price:" + n;
                }, stop, errors);
                sleepUntil(countFrom);
                Map<String, Double> cpu0 = CpuMeter.snapshot(servers);
                sleepUntil(stop);
                Map<String, Double> cpu = CpuMeter.between(cpu0, CpuMeter.snapshot(servers));
                writers.shutdown();
                writers.awaitTermination(30, TimeUnit.SECONDS);
                // Let the last changes arrive (at most 30 s, none when nothing replicates), then count.
                long drain = System.nanoTime() + TimeUnit.SECONDS.toNanos(system.equals("none") ? 0 : 30);
                while (System.nanoTime() < drain && !arrived()) {
                    Thread.sleep(100);
                }
                report(countFrom, errors.get());
                printCpu(cpu);
                if (statements) {
                    topStatements(hubPg);
                    topStatements(sitePg);
                }
            } finally {
                running.set(false);
                for (Thread t : listeners) {
                    t.join(5000);
                }
            }
        }
    }

    /** The hub and the sites as Syncline nodes in this JVM; closing stops the sites, then the hub (so no site sees it go). */
    private AutoCloseable syncline(Pg hubPg, Pg sitePg, List<String> dbs) throws Exception {
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hub}
                database: {url: "%s", user: postgres, poolSize: 16}
                enrollment: {token: %s}
                http: {threads: 16}
                sync: {interval: 1s}
                capture: {interval: 1s}
                channels:
                  - {name: sales, tables: [{name: sale, hubColumn: site_id}]}
                  - {name: catalog, direction: hub-to-sites, tables: [{name: price}]}
                """.formatted(hubPg.url(), TOKEN), Role.HUB, Map.of());
        HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
        List<SiteNode> nodes = new ArrayList<>();
        AutoCloseable all = () -> {
            for (SiteNode n : nodes) {
                n.close();
            }
            hub.close();
        };
        try {
            for (String db : dbs) {
                nodes.add(SiteNode.start(NodeConfig.parse("""
                        node: {id: %s}
                        database: {url: "%s", user: postgres, poolSize: 3}
                        hub: {url: "%s", token: %s}
                        capture: {interval: 1s}
                        """.formatted(db, siteUrl(sitePg, db), hub.url(), TOKEN), Role.SITE, Map.of()), Clock.systemUTC()));
            }
            return all;
        } catch (Exception e) {
            all.close();
            throw e;
        }
    }

    /**
     * PostgreSQL's own logical replication in the same topology, as the peer: every site database publishes {@code sale}
     * to a subscription of its own at the hub, and the hub publishes {@code price} to a subscription in every site
     * database (no initial copy). Apply workers fire only row triggers, and only those enabled ALWAYS, so the receiving
     * tables get a row trigger that sends the same keys. Closing drops the subscriptions (and with them the slots).
     */
    private AutoCloseable nativeReplication(Pg hubPg, Pg sitePg, List<String> dbs) throws Exception {
        hubPg.exec(rowNotifyTrigger("sale", "n.site_id || ':' || n.id"), "CREATE PUBLICATION price_pub FOR TABLE price");
        List<String[]> subs = new ArrayList<>(); // {url, subscription}
        AutoCloseable all = () -> {
            for (String[] s : subs) {
                try (Connection c = java.sql.DriverManager.getConnection(s[0]); Statement st = c.createStatement()) {
                    st.execute("DROP SUBSCRIPTION " + s[1]);
                }
            }
        };
        try {
            for (String db : dbs) {
                String url = siteUrl(sitePg, db);
                try (Connection c = java.sql.DriverManager.getConnection(url); Statement s = c.createStatement()) {
                    s.execute(rowNotifyTrigger("price", "n.id::text"));
                    s.execute("CREATE PUBLICATION sale_pub FOR TABLE sale");
                    s.execute("CREATE SUBSCRIPTION price_" + db + " CONNECTION 'host=127.0.0.1 port=" + hubPg.port()
                            + " dbname=postgres user=postgres' PUBLICATION price_pub WITH (copy_data = false)");
                }
                subs.add(new String[] {url, "price_" + db});
                hubPg.exec("CREATE SUBSCRIPTION sale_" + db + " CONNECTION 'host=127.0.0.1 port=" + sitePg.port() + " dbname=" + db
                        + " user=postgres' PUBLICATION sale_pub WITH (copy_data = false)");
                subs.add(new String[] {hubPg.url() + "?user=postgres", "sale_" + db});
            }
            long ready = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (Long.parseLong(hubPg.scalar("SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL")) < dbs.size()) {
                if (System.nanoTime() > ready) {
                    throw new IllegalStateException("the hub's " + dbs.size() + " apply workers did not all start within 120 s");
                }
                Thread.sleep(50);
            }
            return all;
        } catch (Exception e) {
            all.close();
            throw e;
        }
    }

    private static void sleepUntil(long nanos) throws InterruptedException {
        long left;
        while ((left = nanos - System.nanoTime()) > 0) {
            Thread.sleep(Math.min(200, TimeUnit.NANOSECONDS.toMillis(left) + 1));
        }
    }

    /** CPU the machine spent during the measured seconds, in cores (CPU seconds per second), by part. */
    private void printCpu(Map<String, Double> cpu) {
        if (cpu.isEmpty()) {
            return;
        }
        double total = cpu.values().stream().mapToDouble(Double::doubleValue).sum();
        StringBuilder line = new StringBuilder(String.format("CPU in the measured %d s: %.2f cores in all (", seconds, total / seconds));
        String sep = "";
        for (Map.Entry<String, Double> e : cpu.entrySet()) {
            if (e.getValue() / seconds >= 0.005) {
                line.append(sep).append(e.getKey()).append(' ').append(String.format("%.2f", e.getValue() / seconds));
                sep = ", ";
            }
        }
        System.out.println(line.append(')'));
    }

    private static Map<String, String> with(Map<String, String> base, String key, String value) {
        Map<String, String> m = new LinkedHashMap<>(base);
        m.put(key, value);
        return m;
    }

    /** The 30 statements the server ran most often since it started (summed over its databases), with time and mean time. */
    private static void topStatements(Pg pg) throws SQLException {
        System.out.printf("%nTop statements on server '%s' (pg_stat_statements, whole run, all databases):%n%10s %10s %8s  %s%n", pg.name, "total ms",
                "calls", "mean ms", "query");
        try (Connection c = pg.plain(); Statement s = c.createStatement();
             java.sql.ResultSet rs = s.executeQuery("SELECT sum(total_exec_time) t, sum(calls) n, sum(total_exec_time) / sum(calls),"
                     + " regexp_replace(query, '\\s+', ' ', 'g') q FROM pg_stat_statements WHERE query NOT LIKE 'CREATE%'"
                     + " GROUP BY q ORDER BY n DESC LIMIT 30")) {
            while (rs.next()) {
                String q = rs.getString(4);
                System.out.printf("%,10.0f %,10d %8.3f  %s%n", rs.getDouble(1), rs.getLong(2), rs.getDouble(3),
                        q.length() > 150 ? q.substring(0, 150) + "..." : q);
            }
        }
    }

    private static String siteUrl(Pg pg, String db) {
        return "jdbc:postgresql://localhost:" + pg.port() + "/" + db + "?user=postgres";
    }

    /**
     * Statement triggers (after INSERT, after UPDATE; an upsert fires both) that send the keys the statement wrote, comma
     * separated, 400 to a notification: one notification per applied statement rather than per row, so measuring costs
     * the machine little. PostgreSQL delivers them when the transaction commits.
     */
    private static String notifyTrigger(String table, String payload) {
        StringBuilder sql = new StringBuilder("CREATE FUNCTION bench_seen_" + table + "() RETURNS trigger LANGUAGE plpgsql AS $$"
                + "DECLARE k text; BEGIN FOR k IN SELECT string_agg(p, ',') FROM (SELECT " + payload
                + " AS p, (row_number() OVER () - 1) / 400 AS chunk FROM n) x GROUP BY chunk LOOP PERFORM pg_notify('bench_seen', k);"
                + " END LOOP; RETURN NULL; END$$");
        for (String op : new String[] {"INSERT", "UPDATE"}) {
            sql.append("; CREATE TRIGGER bench_seen_").append(op.toLowerCase(Locale.ROOT)).append(" AFTER ").append(op).append(" ON ")
                    .append(table).append(" REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION bench_seen_")
                    .append(table).append("()");
        }
        return sql.toString();
    }

    /** A row trigger sending each row's key (for apply workers of logical replication, which fire row triggers only). */
    private static String rowNotifyTrigger(String table, String payload) {
        return "CREATE FUNCTION bench_seen_row_" + table + "() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('bench_seen', "
                + payload.replace("n.", "NEW.") + "); RETURN NULL; END$$; CREATE TRIGGER bench_seen_row AFTER INSERT OR UPDATE ON " + table
                + " FOR EACH ROW EXECUTE FUNCTION bench_seen_row_" + table + "(); ALTER TABLE " + table
                + " ENABLE ALWAYS TRIGGER bench_seen_row";
    }

    @FunctionalInterface
    private interface Change {
        String commit(Connection c, long n) throws SQLException;
    }

    /** Commits one change per transaction at {@code rate} a second on a connection of its own, until {@code stop}. */
    private void write(ScheduledExecutorService writers, String url, double rate, Change change, long stop, AtomicLong errors)
            throws SQLException {
        Connection c = java.sql.DriverManager.getConnection(url);
        c.setAutoCommit(false);
        AtomicLong n = new AtomicLong();
        long period = (long) (1_000_000_000 / rate);
        writers.scheduleAtFixedRate(() -> {
            if (System.nanoTime() >= stop) {
                try {
                    c.close();
                } catch (SQLException ignored) {
                    // closing
                }
                throw new IllegalStateException("done"); // ends this writer's schedule
            }
            try {
                String key = change.commit(c, n.incrementAndGet());
                c.commit();
                committed.put(key, System.nanoTime());
            } catch (SQLException e) {
                errors.incrementAndGet();
            }
        }, ThreadLocalRandom.current().nextLong(period), period, TimeUnit.NANOSECONDS);
    }

    /** A thread listening on channel bench_seen of one database until the benchmark ends. */
    private Thread listen(String url, java.util.function.Consumer<String> onPayload) throws SQLException {
        Connection c = java.sql.DriverManager.getConnection(url);
        try (Statement s = c.createStatement()) {
            s.execute("LISTEN bench_seen");
        }
        Thread t = new Thread(() -> {
            try (c) {
                PGConnection pg = c.unwrap(PGConnection.class);
                while (running.get()) {
                    PGNotification[] got = pg.getNotifications(500);
                    if (got != null) {
                        for (PGNotification g : got) {
                            for (String key : g.getParameter().split(",")) {
                                onPayload.accept(key);
                            }
                        }
                    }
                }
            } catch (SQLException e) {
                if (running.get()) {
                    System.err.println("listener failed: " + e.getMessage());
                }
            }
        }, "bench-listener");
        t.setDaemon(true);
        t.start();
        return t;
    }

    private boolean arrived() {
        for (Map.Entry<String, Long> e : committed.entrySet()) {
            if (e.getKey().startsWith("price:")) {
                long[] r = reached.get(Long.parseLong(e.getKey().substring(6)));
                if (r == null || r[0] < sites) {
                    return false;
                }
            } else if (!seen.containsKey(e.getKey())) {
                return false;
            }
        }
        return true;
    }

    private void report(long countFrom, long errors) {
        List<Long> up = new ArrayList<>();
        List<Long> down = new ArrayList<>();
        long upLost = 0;
        long downLost = 0;
        for (Map.Entry<String, Long> e : committed.entrySet()) {
            if (e.getValue() < countFrom) {
                continue;
            }
            if (e.getKey().startsWith("price:")) {
                long[] r = reached.get(Long.parseLong(e.getKey().substring(6)));
                if (r == null || r[0] < sites) {
                    downLost++;
                } else {
                    down.add(r[1] - e.getValue());
                }
            } else {
                Long at = seen.get(e.getKey());
                if (at == null) {
                    upLost++;
                } else {
                    up.add(at - e.getValue());
                }
            }
        }
        System.out.println();
        System.out.printf("%-34s %9s %8s %8s %8s %8s %s%n", "commit to visible", "changes", "p50 ms", "p95 ms", "p99 ms", "max ms", "missing");
        line("site -> hub", up, upLost);
        line("hub -> all " + sites + " sites", down, downLost);
        System.out.printf("writer errors: %d; achieved: %.1f changes/s per site, %.1f/s at the hub%n", errors,
                up.size() / (double) seconds / sites + upLost / (double) seconds / sites, (down.size() + downLost) / (double) seconds);
    }

    private static void line(String name, List<Long> nanos, long missing) {
        long[] v = nanos.stream().mapToLong(Long::longValue).sorted().toArray();
        if (v.length == 0) {
            System.out.printf("%-34s %9d %s%n", name, 0, "(none arrived)");
            return;
        }
        System.out.printf("%-34s %,9d %8.1f %8.1f %8.1f %8.1f %d%n", name, v.length, ms(pct(v, 50)), ms(pct(v, 95)), ms(pct(v, 99)),
                ms(v[v.length - 1]), missing);
    }

    private static long pct(long[] sorted, double p) {
        int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
    }

    private static double ms(long nanos) {
        return nanos / 1e6;
    }
}
