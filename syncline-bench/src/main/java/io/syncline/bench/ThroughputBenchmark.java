package io.syncline.bench;

import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.dialect.postgres.PostgresDialect;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.HubNode;
import io.syncline.node.SiteNode;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/*
 * Throughput benchmark (run it with bench/throughput; options below).
 *
 * 1. Replication: the same writer workload on a source PostgreSQL, timed from the first write until the
 *    target table equals the source table, through
 *      - Syncline: a site node on one embedded PostgreSQL pushing to a hub node on another (HTTP on loopback);
 *      - native logical replication: a publication on one embedded PostgreSQL, a subscription on another.
 *    Rounds alternate the order (S,N then N,S ...) because the machine is noisy; the median is reported.
 *    "Converged" is polled cheaply (count, sums, max timestamp) and then confirmed by TableChecksum.
 * 2. Capture cost: the writer workload alone on one PostgreSQL, with and without Syncline's capture trigger,
 *    alternating, median of each.
 */
public final class ThroughputBenchmark {
    private static final String TOKEN = "bench-token";

    private Workload workload;
    private final int warmupRows;
    private final int catchupRounds;
    private final int rounds;
    private final int captureRuns;
    private final long timeoutMillis;
    private final String only;
    private final String syncInterval;
    private final String captureInterval;
    private final int maxBatches;
    private final boolean pgStats;
    private String pgVersion = "?";

    private ThroughputBenchmark(Map<String, String> o) {
        this.workload = new Workload(Integer.parseInt(o.getOrDefault("rows", "200000")), Integer.parseInt(o.getOrDefault("insert-tx", "1000")),
                Integer.parseInt(o.getOrDefault("update-txs", "10")));
        this.rounds = Integer.parseInt(o.getOrDefault("rounds", "2"));
        // A full-size untimed round by default: the JIT compiles the node code paths as in a long-running server.
        this.warmupRows = Integer.parseInt(o.getOrDefault("warmup-rows", String.valueOf(workload.rows())));
        this.catchupRounds = Integer.parseInt(o.getOrDefault("catchup-rounds", "2"));
        this.captureRuns = Integer.parseInt(o.getOrDefault("capture-runs", "3"));
        this.timeoutMillis = TimeUnit.SECONDS.toMillis(Long.parseLong(o.getOrDefault("timeout", "900")));
        this.only = o.getOrDefault("only", "all");
        this.syncInterval = o.getOrDefault("sync-interval", "50ms");
        this.captureInterval = o.getOrDefault("capture-interval", "50ms");
        this.maxBatches = Integer.parseInt(o.getOrDefault("max-batches", "1000"));
        this.pgStats = Boolean.parseBoolean(o.getOrDefault("pg-stats", "false"));
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new java.util.LinkedHashMap<>();
        for (String a : args) {
            if (a.equals("-h") || a.equals("--help")) {
                System.out.println("""
                        usage: bench/throughput [--rows=200000] [--insert-tx=1000] [--update-txs=10] [--rounds=2] [--capture-runs=3] [--warmup-rows=<rows>]
                                                [--only=all|replication|syncline|native|catchup|capture] [--timeout=900 (s)] [--catchup-rounds=2]
                                                [--sync-interval=50ms] [--capture-interval=50ms] [--max-batches=1000]
                                                [--pg-stats=false (print the top statements of each server, for profiling)]""");
                return;
            }
            if (!a.startsWith("--") || !a.contains("=")) {
                System.err.println("unknown argument '" + a + "' (use --name=value; --help lists them)");
                System.exit(2);
            }
            opts.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
        }
        List<String> known = List.of("rows", "insert-tx", "update-txs", "rounds", "capture-runs", "warmup-rows", "only", "timeout",
                "sync-interval", "capture-interval", "max-batches", "pg-stats", "catchup-rounds");
        for (String k : opts.keySet()) {
            if (!known.contains(k)) {
                System.err.println("unknown option --" + k + " (known: " + String.join(", ", known) + ")");
                System.exit(2);
            }
        }
        new ThroughputBenchmark(opts).run();
        System.exit(0);
    }

    /** One replication measurement. */
    record Rep(String system, int round, double writerSeconds, double totalSeconds, long changes, Map<String, Double> cpu) {
        double rate() {
            return changes / totalSeconds;
        }

        double lag() {
            return totalSeconds - writerSeconds;
        }
    }

    /** One capture-cost measurement. */
    enum Variant {
        OFF("off"), ON("on (Syncline)");

        final String label;

        Variant(String label) {
            this.label = label;
        }
    }

    record Cap(Variant variant, int run, Workload.Timing t, long changes) {
        double rate() {
            return changes / t.total();
        }
    }

    private void run() throws Exception {
        Locale.setDefault(Locale.ROOT);
        System.out.printf("Workload: %,d inserts in %,d-row transactions, then %,d updates in %d transactions = %,d changes%n",
                workload.rows(), workload.insertTx(), workload.rows(), workload.updateTxs(), workload.changes());
        List<Rep> reps = new ArrayList<>();
        boolean syncline = only.equals("all") || only.equals("replication") || only.equals("syncline");
        boolean nativeRep = only.equals("all") || only.equals("replication") || only.equals("native");
        boolean catchUp = only.equals("all") || only.equals("replication") || only.equals("catchup");
        if (only.equals("catchup")) {
            syncline = true; // for the warm-up only: the live rounds below do not run (rounds = 0)
            nativeRep = true;
        }
        if (warmupRows > 0 && (syncline || nativeRep)) {
            // Syncline's nodes run in this JVM: one untimed small round of each system first, so timed rounds measure
            // JIT-compiled code, as in a long-running server (the native side gets the same treatment).
            Workload timed = workload;
            workload = new Workload(warmupRows, timed.insertTx(), timed.updateTxs());
            if (syncline) {
                System.out.printf("  warm-up (untimed): %s%n", describe(syncline(0)));
            }
            if (nativeRep) {
                System.out.printf("  warm-up (untimed): %s%n", describe(nativeReplication(0)));
            }
            workload = timed;
        }
        for (int r = 1; r <= rounds && (syncline || nativeRep) && !only.equals("catchup"); r++) {
            List<String> systems = new ArrayList<>();
            if (syncline) {
                systems.add("Syncline");
            }
            if (nativeRep) {
                systems.add("native");
            }
            for (int k = 0; k < systems.size(); k++) {
                String system = systems.get((k + r - 1) % systems.size()); // rotate the order from round to round
                Rep rep = switch (system) {
                    case "Syncline" -> syncline(r);
                    default -> nativeReplication(r);
                };
                {
                    reps.add(rep);
                    System.out.printf("  %s%n", describe(rep));
                }
            }
        }
        if (catchUp) {
            // Catch-up: the writer runs with replication stopped, then the clock measures only moving the backlog.
            for (int r = 1; r <= catchupRounds; r++) {
                for (int k = 0; k < 2; k++) {
                    Rep rep = (k + r) % 2 == 0 ? syncline(r, true) : nativeReplication(r, true);
                    reps.add(rep);
                    System.out.printf("  %s%n", describe(rep));
                }
            }
        }
        List<Cap> caps = new ArrayList<>();
        if (only.equals("all") || only.equals("capture")) {
            caps = captureCost();
        }
        report(reps, caps);
    }

    private static String describe(Rep r) {
        if (r.system().endsWith("catch-up")) {
            return String.format("%-21s round %d: %7.2f s to move the backlog after the writer (writer %6.2f s, not counted) = %,9.0f changes/s  [load avg %s]%s",
                    r.system(), r.round(), r.totalSeconds(), r.writerSeconds(), r.rate(), loadAverage(), cpu(r));
        }
        return String.format("%-21s round %d: %7.2f s total (writer %6.2f s, lag after writer %6.2f s) = %,9.0f changes/s  [load avg %s]%s",
                r.system(), r.round(), r.totalSeconds(), r.writerSeconds(), r.lag(), r.rate(), loadAverage(), cpu(r));
    }

    /** Where the CPU went during a round, and how many of the cores that kept busy on average. */
    private static String cpu(Rep r) {
        if (r.cpu().isEmpty()) {
            return "";
        }
        double total = r.cpu().values().stream().mapToDouble(Double::doubleValue).sum();
        StringBuilder sb = new StringBuilder(String.format("%n%27s CPU s: ", ""));
        r.cpu().forEach((k, v) -> sb.append(String.format("%s %.2f, ", k, v)));
        return sb.append(String.format("total %.2f = %.2f cores busy on average", total, total / r.totalSeconds())).toString();
    }

    // ---- Syncline ---------------------------------------------------------------------------------

    /** Syncline site to hub. */
    private Rep syncline(int round) throws Exception {
        return syncline(round, false);
    }

    /** With {@code catchUp}, the site node is stopped while the writer runs and the clock starts when it is started again. */
    private Rep syncline(int round, boolean catchUp) throws Exception {
        try (Pg site = Pg.start("site", extra(Map.of())); Pg hub = Pg.start("hub", extra(Map.of()))) {
            pgVersion = site.scalar("SHOW server_version");
            site.exec(Workload.TABLE_DDL);
            hub.exec(Workload.TABLE_DDL);
            NodeConfig hubCfg = NodeConfig.parse("""
                    node: {id: hub}
                    database: {url: "%s", user: postgres}
                    enrollment: {token: %s}
                    sync: {mode: push, interval: %s}
                    transport: {maxBatchesPerExchange: %d}
                    channels:
                      - name: bench
                        tables: [{name: item}]
                    """.formatted(hub.url(), TOKEN, syncInterval, maxBatches), Role.HUB, Map.of());
            try (HubNode hubNode = HubNode.start(hubCfg, Clock.systemUTC())) {
                NodeConfig siteCfg = NodeConfig.parse("""
                        node: {id: site1}
                        database: {url: "%s", user: postgres}
                        hub: {url: "%s", token: %s}
                        capture: {interval: %s}
                        transport: {maxBatchesPerExchange: %d}
                        """.formatted(site.url(), hubNode.url(), TOKEN, captureInterval, maxBatches), Role.SITE, Map.of());
                SiteNode[] restarted = new SiteNode[1];
                try (SiteNode siteNode = SiteNode.start(siteCfg, Clock.systemUTC())) {
                    long until = System.currentTimeMillis() + 60_000;
                    while (!siteNode.isDrained()) {
                        if (System.currentTimeMillis() > until) {
                            throw new IllegalStateException("site did not finish its (empty) initial load within 60 s");
                        }
                        Thread.sleep(50);
                    }
                    site.exec("CHECKPOINT");
                    hub.exec("CHECKPOINT");
                    if (!catchUp) {
                        return measure("Syncline", round, site, hub, null);
                    }
                    siteNode.close();
                    return measure("Syncline catch-up", round, site, hub, () -> restarted[0] = SiteNode.start(siteCfg, Clock.systemUTC()));
                } finally {
                    if (restarted[0] != null) {
                        restarted[0].close();
                    }
                }
            }
        }
    }

    // ---- native logical replication ---------------------------------------------------------------

    private Rep nativeReplication(int round) throws Exception {
        return nativeReplication(round, false);
    }

    /** With {@code catchUp}, the subscription is disabled while the writer runs and the clock starts when it is enabled. */
    private Rep nativeReplication(int round, boolean catchUp) throws Exception {
        try (Pg pub = Pg.start("publisher", extra(Map.of("wal_level", "logical"))); Pg sub = Pg.start("subscriber", extra(Map.of()))) {
            pgVersion = pub.scalar("SHOW server_version");
            pub.exec(Workload.TABLE_DDL, "CREATE PUBLICATION bench_pub FOR TABLE item");
            sub.exec(Workload.TABLE_DDL, "CREATE SUBSCRIPTION bench_sub CONNECTION 'host=127.0.0.1 port=" + pub.port()
                    + " user=postgres dbname=postgres' PUBLICATION bench_pub WITH (copy_data = false)");
            long until = System.currentTimeMillis() + 60_000;
            while (!"t".equals(pub.scalar("SELECT bool_or(active) FROM pg_replication_slots WHERE slot_name = 'bench_sub'"))
                    || sub.scalar("SELECT pid FROM pg_stat_subscription WHERE subname = 'bench_sub' AND relid IS NULL") == null) {
                if (System.currentTimeMillis() > until) {
                    throw new IllegalStateException("the subscription's apply worker did not start within 60 s");
                }
                Thread.sleep(50);
            }
            pub.exec("CHECKPOINT");
            sub.exec("CHECKPOINT");
            try {
                if (!catchUp) {
                    return measure("native", round, pub, sub, null);
                }
                sub.exec("ALTER SUBSCRIPTION bench_sub DISABLE");
                long stop = System.currentTimeMillis() + 60_000;
                while (sub.scalar("SELECT pid FROM pg_stat_subscription WHERE subname = 'bench_sub' AND pid IS NOT NULL") != null) {
                    if (System.currentTimeMillis() > stop) {
                        throw new IllegalStateException("the subscription's apply worker did not stop within 60 s");
                    }
                    Thread.sleep(50);
                }
                return measure("native catch-up", round, pub, sub, () -> sub.exec("ALTER SUBSCRIPTION bench_sub ENABLE"));
            } finally {
                sub.exec("DROP SUBSCRIPTION bench_sub");
            }
        }
    }

    private Map<String, String> extra(Map<String, String> config) {
        if (!pgStats) {
            return config;
        }
        Map<String, String> m = new java.util.HashMap<>(config);
        m.put("shared_preload_libraries", "pg_stat_statements");
        m.put("pg_stat_statements.track", "all");
        return m;
    }

    private void printStats(Pg pg) throws SQLException {
        if (!pgStats) {
            return;
        }
        System.out.println("    top statements on " + pg.name + " (ms total, calls, rows):");
        try (Connection c = pg.plain(); java.sql.Statement st = c.createStatement();
             java.sql.ResultSet rs = st.executeQuery("SELECT round(total_exec_time), calls, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 170) "
                     + "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12")) {
            while (rs.next()) {
                System.out.printf("    %8d %7d %8d  %s%n", rs.getLong(1), rs.getLong(2), rs.getLong(3), rs.getString(4));
            }
        }
    }

    private void resetStats(Pg... pgs) throws SQLException {
        for (Pg pg : pgs) {
            if (pgStats) {
                pg.exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "SELECT pg_stat_statements_reset()");
            }
        }
    }

    /** Starts replication again after the writer finished (catch-up mode). */
    interface Resume {
        void run() throws Exception;
    }

    /**
     * Runs the workload on {@code source}, then polls {@code target} until it equals the source; verifies with checksums.
     * The clock runs from the first write, or, when {@code resume} is given, from calling it after the writer finished.
     */
    private Rep measure(String system, int round, Pg source, Pg target, Resume resume) throws Exception {
        resetStats(source, target);
        Map<String, Long> servers = new java.util.LinkedHashMap<>();
        servers.put("source PG", CpuMeter.postmaster(source));
        servers.put("target PG", CpuMeter.postmaster(target));
        Map<String, Double> cpu0 = CpuMeter.snapshot(servers);
        long t0 = System.nanoTime();
        Workload.Timing w;
        try (Connection c = source.writer()) {
            w = workload.run(c);
        }
        long writerDone = System.nanoTime();
        String expected;
        String expectedLast;
        try (Connection c = source.plain()) {
            expected = Workload.fingerprint(c);
            expectedLast = Workload.lastRow(c, workload.rows());
        }
        long start = t0;
        if (resume != null) {
            cpu0 = CpuMeter.snapshot(servers);
            start = System.nanoTime();
            resume.run();
        }
        // Both systems apply in source commit order, so the last row the workload wrote arrives last: poll it by
        // primary key (cheap: the poll must not load the target server), then compare the whole-table fingerprint.
        long deadline = System.currentTimeMillis() + timeoutMillis;
        try (Connection c = target.plain()) {
            while (true) {
                if (expectedLast.equals(Workload.lastRow(c, workload.rows()))) {
                    String got = Workload.fingerprint(c);
                    if (got.equals(expected)) {
                        break;
                    }
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException(system + ": target did not converge within " + timeoutMillis / 1000 + " s: source "
                            + expected + ", target " + Workload.fingerprint(c));
                }
                Thread.sleep(20);
            }
        }
        long t1 = System.nanoTime();
        Map<String, Double> cpu = CpuMeter.between(cpu0, CpuMeter.snapshot(servers));
        printStats(source);
        printStats(target);
        PostgresDialect d = new PostgresDialect();
        try (Connection a = source.plain(); Connection b = target.plain()) {
            TableChecksum.Result x = TableChecksum.of(a, d, "item");
            TableChecksum.Result y = TableChecksum.of(b, d, "item");
            if (!x.equals(y)) {
                throw new IllegalStateException(system + ": fingerprints matched but checksums differ: source " + x + ", target " + y);
            }
        }
        return new Rep(system, round, (writerDone - t0) / 1e9, resume == null ? (t1 - t0) / 1e9 : (t1 - start) / 1e9, workload.changes(), cpu);
    }

    // ---- capture cost -----------------------------------------------------------------------------

    private List<Cap> captureCost() throws Exception {
        List<Cap> out = new ArrayList<>();
        PostgresDialect d = new PostgresDialect();
        List<ChannelSpec> channels = List.of(new ChannelSpec("bench", ChannelSpec.Direction.SITE_TO_HUB, List.of(TableSpec.of("item"))));
        List<Variant> variants = new ArrayList<>(List.of(Variant.OFF, Variant.ON));
        try (Pg pg = Pg.start("capture", extra(Map.of()))) {
            pgVersion = pg.scalar("SHOW server_version");
            try (Connection c = pg.writer()) {
                SyncSchema.install(c, d);
                c.commit();
            }
            if (warmupRows > 0) {
                pg.exec("DROP TABLE IF EXISTS item", Workload.TABLE_DDL);
                try (Connection c = pg.writer()) {
                    new Workload(warmupRows, workload.insertTx(), workload.updateTxs()).run(c); // untimed: JIT-compiles the writer
                }
            }
            for (int r = 1; r <= captureRuns; r++) {
                for (int k = 0; k < variants.size(); k++) {
                    Variant v = variants.get((k + r - 1) % variants.size());
                    pg.exec("DROP TABLE IF EXISTS item", Workload.TABLE_DDL, "TRUNCATE sync_outbox", "DELETE FROM sync_trigger_hist");
                    if (v == Variant.ON) {
                        try (Connection c = pg.writer()) {
                            new CaptureInstaller(d, Clock.systemUTC()).install(c, channels);
                        }
                    }
                    pg.exec("VACUUM ANALYZE", "CHECKPOINT");
                    Workload.Timing t;
                    try (Connection c = pg.writer()) {
                        t = workload.run(c);
                    }
                    long captured = Long.parseLong(pg.scalar("SELECT COALESCE(sum(row_count), 0) FROM sync_outbox"));
                    long expected = v == Variant.OFF ? 0 : workload.changes();
                    if (captured != expected) {
                        throw new IllegalStateException("capture " + v.label + ": " + captured + " outbox rows, expected " + expected);
                    }
                    // Column 1 of item is id: c1 is the new row's, o1 the old row's (PostgresCapture's row table).
                    String rows = v == Variant.OFF ? null : "sync_rows_" + pg.scalar("SELECT capture_id FROM sync_capture WHERE active");
                    String mispaired = rows == null ? "0" : pg.scalar("SELECT count(*) FROM " + rows + " WHERE c1 <> o1");
                    if (!"0".equals(mispaired)) {
                        throw new IllegalStateException("capture " + v.label + ": " + mispaired + " updates pair an old row with another row's new row");
                    }
                    Cap cap = new Cap(v, r, t, workload.changes());
                    out.add(cap);
                    System.out.printf("  capture %-42s run %d: inserts %6.2f s, updates %6.2f s, total %6.2f s = %,9.0f changes/s  [load avg %s]%n",
                            v.label, r, t.insertSeconds(), t.updateSeconds(), t.total(), cap.rate(), loadAverage());
                }
            }
        }
        return out;
    }

    // ---- report -----------------------------------------------------------------------------------

    private static double median(List<Double> xs) {
        double[] a = xs.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        if (a.length == 0) {
            return Double.NaN;
        }
        return a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
    }

    private void report(List<Rep> reps, List<Cap> caps) {
        System.out.println();
        System.out.println("## Results");
        System.out.println();
        System.out.printf("Machine: %d cores (%s), %s; Java %s (%s); PostgreSQL %s (embedded, zonky binaries)%n",
                Runtime.getRuntime().availableProcessors(), cpuModel(), System.getProperty("os.name") + " " + System.getProperty("os.version"),
                System.getProperty("java.runtime.version"), System.getProperty("java.vm.vendor"), pgVersion);
        System.out.printf("Load average at the end: %s (1 min); above %d means other processes competed for the cores%n",
                loadAverage(), Runtime.getRuntime().availableProcessors());
        System.out.printf("Workload: %,d inserts in %,d-row transactions, then %,d updates in %d transactions = %,d changes%n",
                workload.rows(), workload.insertTx(), workload.rows(), workload.updateTxs(), workload.changes());
        if (!reps.isEmpty()) {
            if (reps.stream().anyMatch(r -> !r.system().endsWith("catch-up"))) {
                System.out.println();
                System.out.println("Replication, first write to target converged (median of " + rounds + " rounds):");
                System.out.println();
                System.out.println("| system | round | writer s | lag after writer s | total s | changes/s |");
                System.out.println("|---|---:|---:|---:|---:|---:|");
            }
            for (Rep r : reps) {
                if (!r.system().endsWith("catch-up")) {
                    System.out.printf("| %s | %d | %.2f | %.2f | %.2f | %,.0f |%n", r.system(), r.round(), r.writerSeconds(), r.lag(),
                            r.totalSeconds(), r.rate());
                }
            }
            double s = median(reps.stream().filter(r -> r.system().equals("Syncline")).map(Rep::rate).toList());
            double n = median(reps.stream().filter(r -> r.system().equals("native")).map(Rep::rate).toList());
            System.out.println();
            if (!Double.isNaN(s)) {
                System.out.printf("Syncline (site PG -> hub PG over HTTP), median: %,.0f changes/s%n", s);
            }
            if (!Double.isNaN(n)) {
                System.out.printf("Native logical replication, median:            %,.0f changes/s%n", n);
            }
            if (!Double.isNaN(s) && !Double.isNaN(n)) {
                System.out.printf("Ratio Syncline / native: %.2f  (goal >= 1.00: %s)%n", s / n, s >= n ? "MET" : "NOT MET");
            }
            double sc = median(reps.stream().filter(r -> r.system().equals("Syncline catch-up")).map(Rep::rate).toList());
            double nc = median(reps.stream().filter(r -> r.system().equals("native catch-up")).map(Rep::rate).toList());
            if (!Double.isNaN(sc) || !Double.isNaN(nc)) {
                System.out.println();
                System.out.println("Catch-up: backlog written with replication stopped, timed from restarting it to converged (median of "
                        + catchupRounds + " rounds):");
                System.out.println();
                System.out.println("| system | round | writer s (not counted) | catch-up s | changes/s |");
                System.out.println("|---|---:|---:|---:|---:|");
                for (Rep r : reps) {
                    if (r.system().endsWith("catch-up")) {
                        System.out.printf("| %s | %d | %.2f | %.2f | %,.0f |%n", r.system(), r.round(), r.writerSeconds(), r.totalSeconds(), r.rate());
                    }
                }
                System.out.println();
                System.out.printf("Catch-up medians: Syncline %,.0f changes/s, native %,.0f changes/s, ratio %.2f%n", sc, nc, sc / nc);
            }
        }
        if (reps.stream().anyMatch(r -> !r.cpu().isEmpty())) {
            System.out.println();
            System.out.println("CPU seconds per round, from /proc (source PG: site or publisher; target PG: hub or subscriber; site and hub JVM:");
            System.out.println("the Syncline node threads; writer: the benchmark's main thread, which also polls; other JVM: other and exited threads):");
            System.out.println();
            List<String> parts = reps.stream().filter(r -> !r.cpu().isEmpty()).findFirst().orElseThrow().cpu().keySet().stream().toList();
            System.out.println("| system | round | " + String.join(" | ", parts) + " | total | cores busy |");
            System.out.println("|---|---:|" + "---:|".repeat(parts.size() + 2));
            for (Rep r : reps) {
                double total = r.cpu().values().stream().mapToDouble(Double::doubleValue).sum();
                StringBuilder row = new StringBuilder("| " + r.system() + " | " + r.round() + " | ");
                parts.forEach(k -> row.append(String.format("%.2f | ", r.cpu().getOrDefault(k, 0.0))));
                System.out.println(row.append(String.format("%.2f | %.2f |", total, total / r.totalSeconds())));
            }
        }
        if (!caps.isEmpty()) {
            System.out.println();
            System.out.println("Site writer throughput by capture variant (same instance, alternating order, median of " + captureRuns
                    + " runs each):");
            System.out.println();
            System.out.println("| capture | inserts/s | updates/s | all changes/s | writer cost vs off |");
            System.out.println("|---|---:|---:|---:|---:|");
            double off = median(rates(caps, Variant.OFF, c -> c.rate()));
            double offIns = median(rates(caps, Variant.OFF, c -> workload.rows() / c.t().insertSeconds()));
            double offUpd = median(rates(caps, Variant.OFF, c -> workload.rows() / c.t().updateSeconds()));
            for (Variant v : Variant.values()) {
                List<Double> all = rates(caps, v, c -> c.rate());
                if (all.isEmpty()) {
                    continue;
                }
                double rate = median(all);
                System.out.printf("| %s | %,.0f | %,.0f | %,.0f | %s |%n", v.label, median(rates(caps, v, c -> workload.rows() / c.t().insertSeconds())),
                        median(rates(caps, v, c -> workload.rows() / c.t().updateSeconds())), rate,
                        v == Variant.OFF ? "-" : String.format("%+.1f%% throughput (%.2fx time)", 100 * (rate / off - 1), off / rate));
            }
            double on = median(rates(caps, Variant.ON, c -> c.rate()));
            double onIns = median(rates(caps, Variant.ON, c -> workload.rows() / c.t().insertSeconds()));
            double onUpd = median(rates(caps, Variant.ON, c -> workload.rows() / c.t().updateSeconds()));
            System.out.println();
            System.out.printf("Syncline capture cost to the writer: throughput -%.1f%% (inserts -%.1f%%, updates -%.1f%%); "
                    + "the writer takes %.2fx as long. Goal <= 30%%: %s%n",
                    100 * (1 - on / off), 100 * (1 - onIns / offIns), 100 * (1 - onUpd / offUpd), off / on,
                    1 - on / off <= 0.30 ? "MET" : "NOT MET");
        }
    }

    private static List<Double> rates(List<Cap> caps, Variant v, java.util.function.ToDoubleFunction<Cap> f) {
        return caps.stream().filter(c -> c.variant() == v).map(c -> f.applyAsDouble(c)).toList();
    }

    /** The 1-minute load average: other work on this machine shows here. */
    static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    private static String cpuModel() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                    .map(l -> l.substring(l.indexOf(':') + 1).trim()).findFirst().orElse("unknown CPU");
        } catch (IOException e) {
            return "unknown CPU";
        }
    }
}
