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
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new LinkedHashMap<>();
        for (String a : args) {
            if (a.equals("-h") || a.equals("--help")) {
                System.out.println("usage: bench/latency [--sites=46] [--rate=20 (changes/s per site)] [--hub-rate=20 (changes/s at the hub)]"
                        + " [--seconds=60 (measured)] [--warmup=15 (s, not counted)] [--statements=false (print the top statements per server)]");
                return;
            }
            if (!a.startsWith("--") || !a.contains("=")) {
                System.err.println("unknown argument '" + a + "' (use --name=value; --help lists them)");
                System.exit(2);
            }
            opts.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
        }
        for (String k : opts.keySet()) {
            if (!List.of("sites", "rate", "hub-rate", "seconds", "warmup", "statements").contains(k)) {
                System.err.println("unknown option --" + k + " (known: sites, rate, hub-rate, seconds, warmup, statements)");
                System.exit(2);
            }
        }
        new LatencyBenchmark(opts).run();
        System.exit(0);
    }

    private void run() throws Exception {
        Locale.setDefault(Locale.ROOT);
        System.out.printf("Latency: hub + %d sites on PostgreSQL, %.0f changes/s per site (%.0f/s in all) and %.0f/s at the hub; "
                + "%d s measured after %d s of warm-up%n", sites, siteRate, siteRate * sites, hubRate, seconds, warmup);
        Map<String, String> profile = statements ? Map.of("shared_preload_libraries", "pg_stat_statements") : Map.of();
        try (Pg hubPg = Pg.start("hub", with(profile, "max_connections", "100"));
             Pg sitePg = Pg.start("sites", with(profile, "max_connections", String.valueOf(40 + sites * 8)))) {
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
                    s.execute("CREATE TABLE sale (id BIGINT PRIMARY KEY, qty INT)");
                    s.execute("CREATE TABLE price (id BIGINT PRIMARY KEY, amount INT)");
                    s.execute(notifyTrigger("price", "n.id::text"));
                }
            }
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
            List<SiteNode> nodes = new ArrayList<>();
            ScheduledExecutorService writers = Executors.newScheduledThreadPool(8, r -> {
                Thread t = new Thread(r, "bench-writer");
                t.setDaemon(true);
                return t;
            });
            List<Thread> listeners = new ArrayList<>();
            try (HubNode hub = HubNode.start(hubCfg, Clock.systemUTC())) {
                try {
                    for (String db : dbs) {
                        nodes.add(SiteNode.start(NodeConfig.parse("""
                                node: {id: %s}
                                database: {url: "%s", user: postgres, poolSize: 3}
                                hub: {url: "%s", token: %s}
                                capture: {interval: 1s}
                                """.formatted(db, siteUrl(sitePg, db), hub.url(), TOKEN), Role.SITE, Map.of()), Clock.systemUTC()));
                    }
                    listeners.add(listen(hubPg.url() + "?user=postgres", payload -> seen.putIfAbsent(payload, System.nanoTime())));
                    for (String db : dbs) {
                        listeners.add(listen(siteUrl(sitePg, db), payload -> {
                            long now = System.nanoTime();
                            reached.compute(Long.parseLong(payload), (k, v) -> v == null ? new long[] {1, now} : new long[] {v[0] + 1, now});
                        }));
                    }
                    // Every site registered and holding its copy of the catalog before the clock starts.
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
                    while (System.nanoTime() < stop) {
                        Thread.sleep(200);
                    }
                    writers.shutdown();
                    writers.awaitTermination(30, TimeUnit.SECONDS);
                    // Let the last changes arrive (at most 30 s), then count.
                    long drain = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                    while (System.nanoTime() < drain && !arrived()) {
                        Thread.sleep(100);
                    }
                    report(countFrom, errors.get());
                    if (statements) {
                        topStatements(hubPg);
                        topStatements(sitePg);
                    }
                } finally {
                    for (SiteNode n : nodes) { // before the hub, so no site sees it go
                        n.close();
                    }
                }
            } finally {
                running.set(false);
                for (Thread t : listeners) {
                    t.join(5000);
                }
            }
        }
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
