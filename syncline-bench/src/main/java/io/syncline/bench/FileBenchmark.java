package io.syncline.bench;

import io.syncline.node.HubNode;
import io.syncline.node.SiteNode;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import io.syncline.testkit.FaultProxy;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * File sync against rsync (issue 5), in one run on one machine: a site and a hub (H2 databases) in this JVM with
 * site-to-hub file channels (one per round), and an rsync daemon on 127.0.0.1 pushed to by the rsync client, both
 * reached through a counting TCP proxy (FaultProxy, no faults), so "bytes" are what crossed the loopback both ways,
 * HTTP and rsync protocol included. The same source folder feeds both. Scenarios: one large file (first copy, then a given share of
 * it changed in 1,000 scattered places, in place), and a tree of small files (first copy, then a share of them changed).
 * rsync runs twice each time, into two copies: as it comes, and with --fsync (each file flushed to disk, as Syncline
 * always does; bytes are counted for the first run).
 * Syncline's time runs from the change on disk (its site sees it through the file system's notifications) until the
 * hub has recorded the last change; rsync's is the client's run. Each copy is compared with the source byte for byte.
 * Every timed run starts after sync(1) and a quiet disk, with nothing of the steps before it left to write. The JIT
 * compilers are idle before the first round, after a warm-up (--warmup times, 20: a round's scenarios, unmeasured, with
 * a large file of at most 64 MiB; see warmUp). The benchmark deletes nothing before the end (see diskSettled).
 * Each scenario also measures a durable floor: what only putting its new files in place with Syncline's guarantee
 * takes, copied locally, each to a temporary file flushed to disk and renamed, on FLOOR_THREADS threads (no network,
 * no hashing, no database): no receiver that flushes each file can be faster than that on this disk.
 * The scenarios run --rounds times (3), each round on new files; the
 * summary gives medians, and per ratio the median of the rounds' ratios with their range (this machine's disk is noisy).
 */
public final class FileBenchmark {
    private final long sizeMib;
    private final int files;
    private final double changePct;
    private final int rounds;
    /** Warm-up passes before the measured rounds (see warmUp). */
    private final int warmups;
    /** Threads of the durable floor: more than Syncline's flush threads (8); on this disk 32 were the fastest of 2 to 64. */
    private static final int FLOOR_THREADS = 32;
    /** Bytes between the durable floor's early flushes of a large file (as Syncline's Writeback.STEP). */
    private static final long FLOOR_STEP = 32L << 20;
    /** The largest file of a warm-up pass, MiB (a larger --size-mib is warmed up with this size). */
    private static final long WARM_UP_MIB = 64;
    /**
     * Per scenario, in order, each round's figures: Syncline bytes, rsync bytes, Syncline s, rsync s, rsync --fsync s,
     * durable floor s, Syncline processor s, plain rsync processor s.
     */
    private final Map<String, List<double[]>> results = new LinkedHashMap<>();
    /** This process's processor time when Syncline's part of the scenario under way began (ns). */
    private long cpu0;
    /** The rsync daemon's process id. */
    private long rsyncdPid;
    /** --profile: async-profiler's jar; null: no profile. */
    private final Path profile;
    private Profiler profiler;
    /**
     * --profile-event: cpu (samples every millisecond), alloc (a sample every 256 KiB allocated, by allocating stack), or
     * jfr (cpu samples with their thread and time, as a JFR recording: a timeline of which threads were busy when).
     */
    private final String profileEvent;
    private Path dir;
    private String siteUrl;
    private String hubUrl;
    private FaultProxy hubProxy;
    private FaultProxy rsyncProxy;
    /** The site's folders, one per file channel: {@code site/<channel>}. */
    private Path site;
    /** The hub's, {@code hub/<channel>}; the site's files land in {@code hub/<channel>/s1}. */
    private Path hubFolder;
    /** The file channel of the run under way (see run). */
    private String channel;
    private Path rsyncCopy;
    /** The target of rsync --fsync, which flushes each file to disk as Syncline does. */
    private Path rsyncFsyncCopy;
    /** The target of the durable floor's copies (see durableFloor). */
    private Path floorCopy;
    private java.util.concurrent.ExecutorService floorThreads;
    private final java.util.concurrent.ExecutorService floorWriteback = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "bench-floor-writeback");
        t.setDaemon(true);
        return t;
    });

    private FileBenchmark(Map<String, String> o) {
        this.sizeMib = Long.parseLong(o.getOrDefault("size-mib", "1024"));
        this.files = Integer.parseInt(o.getOrDefault("files", "10000"));
        this.changePct = Double.parseDouble(o.getOrDefault("change", "1"));
        this.rounds = Integer.parseInt(o.getOrDefault("rounds", "3"));
        this.warmups = Integer.parseInt(o.getOrDefault("warmup", "20"));
        this.profile = o.containsKey("profile") ? Path.of(o.get("profile")) : null;
        this.profileEvent = o.getOrDefault("profile-event", "cpu");
        if (!List.of("cpu", "alloc", "jfr").contains(profileEvent)) {
            throw new IllegalArgumentException("--profile-event is cpu, alloc or jfr, not '" + profileEvent + "'");
        }
    }

    /**
     * Right before Syncline's part of a timed scenario: notes the process's processor time, and starts the profiler
     * (--profile; measured stops it).
     */
    private void profileFrom(boolean timed) throws Exception {
        cpu0 = processCpuNanos();
        if (timed && profile != null) {
            if (profiler == null) {
                profiler = new Profiler(profile, profileEvent, Files.createTempDirectory("syncline-files-profiles-")); // (kept: read after the run)
            }
            profiler.start();
        }
    }

    /**
     * async-profiler, loaded from its jar (Maven Central's tools.profiler:async-profiler, which holds the native
     * library too): cpu samples every millisecond, all threads (or allocations: a sample every 256 KiB, weighted by
     * bytes), written as collapsed stacks, one file per scenario and round. Only Syncline's part of a scenario is sampled
     * (until the hub has recorded its last change).
     */
    private static final class Profiler {
        private final Object instance;
        private final java.lang.reflect.Method execute;
        private final Path out;
        private final String event;

        Profiler(Path jar, String event, Path out) throws Exception {
            ClassLoader loader = new java.net.URLClassLoader(new java.net.URL[] {jar.toUri().toURL()}, FileBenchmark.class.getClassLoader());
            Class<?> c = Class.forName("one.profiler.AsyncProfiler", true, loader);
            this.instance = c.getMethod("getInstance").invoke(null);
            this.execute = c.getMethod("execute", String.class);
            this.out = out;
            this.event = event;
        }

        void start() throws Exception {
            execute.invoke(instance, switch (event) {
                case "alloc" -> "start,event=alloc,alloc=256k,total";
                case "jfr" -> "start,event=cpu,interval=1ms,threads,jfr,file=" + out.resolve("current.jfr"); // (named at stop)
                default -> "start,event=cpu,interval=1ms";
            });
        }

        void stop(String name) throws Exception {
            Path f = out.resolve(name + (event.equals("jfr") ? ".jfr" : ".collapsed"));
            if (event.equals("jfr")) {
                execute.invoke(instance, "stop");
                Files.move(out.resolve("current.jfr"), f);
            } else {
                execute.invoke(instance, "stop,file=" + f);
            }
            System.out.println("  profile: " + f);
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new LinkedHashMap<>();
        for (String a : args) {
            if (a.equals("-h") || a.equals("--help")) {
                System.out.println("usage: bench/files [--size-mib=1024 (the large file)] [--files=10000 (the tree)] [--change=1 (% changed)] "
                        + "[--rounds=3 (each scenario again, on new files; medians reported)] [--warmup=20 (passes before the rounds)] "
                        + "[--profile=<async-profiler jar> (cpu samples of Syncline's part of each timed scenario, as collapsed stacks)] "
                        + "[--profile-event=cpu|alloc|jfr (alloc: allocated bytes by stack instead; jfr: cpu samples with thread and time, as JFR)]");
                return;
            }
            if (!a.startsWith("--") || !a.contains("=") || !List.of("size-mib", "files", "change", "rounds", "warmup", "profile", "profile-event").contains(a.substring(2, a.indexOf('=')))) {
                System.err.println("unknown argument '" + a + "' (known: --size-mib=N, --files=N, --change=P, --rounds=N, --warmup=N, --profile=JAR, --profile-event=cpu|alloc|jfr; --help)");
                System.exit(2);
            }
            opts.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
        }
        new FileBenchmark(opts).run();
        System.exit(0);
    }

    private void run() throws Exception {
        Locale.setDefault(Locale.ROOT);
        dir = Files.createTempDirectory("syncline-files-bench-");
        site = Files.createDirectories(dir.resolve("site"));
        hubFolder = dir.resolve("hub");
        // A file channel per warm-up pass and per round, each with a folder of its own (see run's loop).
        List<String> channels = new ArrayList<>();
        for (int w = 1; w <= warmups; w++) {
            channels.add("w" + w);
        }
        for (int r = 1; r <= rounds; r++) {
            channels.add("r" + r);
        }
        StringBuilder fileChannels = new StringBuilder();
        StringBuilder hubFolders = new StringBuilder();
        StringBuilder siteFolders = new StringBuilder();
        for (String ch : channels) {
            fileChannels.append("  - {name: ").append(ch).append("}\n");
            hubFolders.append(hubFolders.isEmpty() ? "" : ", ").append(ch).append(": \"").append(hubFolder.resolve(ch)).append('"');
            siteFolders.append(siteFolders.isEmpty() ? "" : ", ").append(ch).append(": \"")
                    .append(Files.createDirectories(site.resolve(ch))).append('"');
        }
        rsyncCopy = Files.createDirectories(dir.resolve("rsync"));
        rsyncFsyncCopy = Files.createDirectories(dir.resolve("rsync-fsync"));
        floorCopy = Files.createDirectories(dir.resolve("floor"));
        java.util.concurrent.atomic.AtomicInteger floorThread = new java.util.concurrent.atomic.AtomicInteger();
        floorThreads = java.util.concurrent.Executors.newFixedThreadPool(FLOOR_THREADS, r -> {
            Thread t = new Thread(r, "bench-floor-" + floorThread.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        Process rsyncd = startRsyncDaemon();
        rsyncdPid = rsyncd.pid();
        siteUrl = "jdbc:h2:" + dir.resolve("site-db").toAbsolutePath();
        hubUrl = "jdbc:h2:" + dir.resolve("hub-db").toAbsolutePath();
        for (String url : List.of(siteUrl, hubUrl)) {
            try (Connection c = DriverManager.getConnection(url); Statement s = c.createStatement()) {
                s.execute("CREATE TABLE t (id INT PRIMARY KEY)");
            }
        }
        System.out.printf("Files: Syncline (site -> hub file channel, HTTP) vs rsync %s (daemon), both on 127.0.0.1 through a counting proxy%n",
                rsyncVersion());
        try (HubNode hub = HubNode.start(NodeConfig.parse("""
                node: {id: hub}
                database: {url: "%s"}
                enrollment: {token: bench-token}
                channels:
                  - {name: t, tables: [{name: t}]}
                fileChannels:
                %sfolders: {%s}
                """.formatted(hubUrl, fileChannels, hubFolders), Role.HUB, Map.of()), Clock.systemUTC());
             FaultProxy hp = new FaultProxy("hub", "127.0.0.1", hub.port())) {
            hubProxy = hp;
            try (SiteNode s1 = SiteNode.start(NodeConfig.parse("""
                    node: {id: s1}
                    database: {url: "%s"}
                    hub: {url: "%s", token: bench-token}
                    folders: {%s}
                    files: {scanInterval: 1h}
                    """.formatted(siteUrl, hp.url(), siteFolders), Role.SITE, Map.of()), Clock.systemUTC())) {
                warmUp();
                for (int r = 1; r <= rounds; r++) {
                    System.out.printf("round %d of %d%n", r, rounds);
                    // A channel of its own: it holds only this round's files, as one channel did when each round's
                    // files were deleted after it, and nothing is deleted before the end (see diskSettled).
                    channel = "r" + r;
                    bigFile(channel + "/big.bin", true, 42);
                    tree(channel + "/tree", true, 11);
                }
            }
        } finally {
            rsyncd.destroy();
            rsyncd.waitFor(10, TimeUnit.SECONDS);
            if (rsyncProxy != null) {
                rsyncProxy.close();
            }
            floorThreads.shutdownNow();
            floorWriteback.shutdownNow();
            deleteTree(dir);
        }
        System.out.println();
        System.out.printf("Medians of %d round(s); a ratio is the median of the rounds' ratios (Syncline / rsync), with their range%n", rounds);
        System.out.printf("%-44s %14s %14s %6s %10s %8s %17s %13s %17s %8s %17s %12s %9s %17s%n", "scenario", "Syncline bytes", "rsync bytes", "ratio",
                "Syncline s", "rsync s", "ratio (range)", "rsync fsync s", "ratio (range)", "floor s", "rsync/floor",
                "Syncline cpu", "rsync cpu", "ratio (range)");
        for (Map.Entry<String, List<double[]>> e : results.entrySet()) {
            List<double[]> rs = e.getValue();
            double[] floorRatios = rs.stream().mapToDouble(r -> r[3] / r[5]).sorted().toArray();
            double[] cpuRatios = rs.stream().mapToDouble(r -> r[6] / r[7]).sorted().toArray();
            System.out.printf("%-44s %,14.0f %,14.0f %6.2f %10.2f %8.2f %17s %13.2f %17s %8.2f %17s %12.2f %9.2f %17s%n", e.getKey(), median(rs, r -> r[0]),
                    median(rs, r -> r[1]), median(rs, r -> r[0] / r[1]), median(rs, r -> r[2]), median(rs, r -> r[3]), ratio(rs, 3),
                    median(rs, r -> r[4]), ratio(rs, 4), median(rs, r -> r[5]), String.format("%.2f (%.2f-%.2f)", median(rs, r -> r[3] / r[5]),
                            floorRatios[0], floorRatios[floorRatios.length - 1]),
                    median(rs, r -> r[6]), median(rs, r -> r[7]), String.format("%.2f (%.2f-%.2f)", median(rs, r -> r[6] / r[7]),
                            cpuRatios[0], cpuRatios[cpuRatios.length - 1]));
        }
    }

    private static double median(List<double[]> rounds, java.util.function.ToDoubleFunction<double[]> f) {
        double[] v = rounds.stream().mapToDouble(f).sorted().toArray();
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    /** The median of the rounds' Syncline time over the time in column {@code col}, and their range. */
    private static String ratio(List<double[]> rounds, int col) {
        double[] v = rounds.stream().mapToDouble(r -> r[2] / r[col]).sorted().toArray();
        return String.format("%.2f (%.2f-%.2f)", median(rounds, r -> r[2] / r[col]), v[0], v[v.length - 1]);
    }

    /**
     * Not measured, {@link #warmups} times: a round's scenarios, on the paths a round uses (its large file at the top of
     * the channel's folder, of at most WARM_UP_MIB, its tree in tree/), on content of their own; then this waits until
     * the JIT compilers are idle. The measured runs then find the JVM's code compiled, as in a server that has been
     * running (rsync is native code). Each pass prints the JIT compilers' time during it.
     * <ul>
     * <li>Until 2026-12-01 (twelfth session) a pass put its large file and its tree together in one sub-folder: code
     * compiled having seen only paths with a slash hit an uncommon trap at the round's top-level big.bin (OpenDirs.read,
     * check and rename; -Xlog:deoptimization), and the small files' copy ran them at C1's profiling tier until C2
     * compiled them again during it.</li>
     * <li>Methods called once or a few times per exchange but with long loops or bodies (FileOutbox.pending, H2's
     * SessionLocal.commit and MVMap.flushAppendBuffer) reach C2's thresholds only after many passes: with 6, C2
     * compiled them during the second round's copy (jdk.Compilation events: 0.54 s for pending's loop alone, 1.5 s of
     * C2 time within a copy of 2.3 s). A pass's small files took 9 s of JIT time in the first pass, about 3 s up to
     * the 7th, 2 s up to the 11th, and 0.2 to 0.8 s from the 13th to the 24th (this machine, 10,000 files).</li>
     * </ul>
     */
    private void warmUp() throws Exception {
        java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        for (int pass = 1; pass <= warmups; pass++) {
            channel = "w" + pass;
            long t0 = System.nanoTime();
            long j0 = jit.getTotalCompilationTime();
            bigFile(channel + "/big.bin", false, 1000 + pass);
            long j1 = jit.getTotalCompilationTime();
            tree(channel + "/tree", false, 2000 + pass);
            System.out.printf("warm-up pass %d: %.2f s, JIT %d ms (large file), %d ms (small files)%n", pass,
                    (System.nanoTime() - t0) / 1e9, j1 - j0, jit.getTotalCompilationTime() - j1);
        }
        jitIdle(); // (the files stay until the end: see diskSettled)
    }

    /** Waits until the JIT compilers have compiled nothing for 2 s (at most 2 minutes). */
    private static void jitIdle() throws InterruptedException {
        java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        if (jit == null || !jit.isCompilationTimeMonitoringSupported()) {
            return;
        }
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        long last = jit.getTotalCompilationTime();
        int quiet = 0;
        while (quiet < 8 && System.nanoTime() < deadline) {
            Thread.sleep(250);
            long now = jit.getTotalCompilationTime();
            quiet = now == last ? quiet + 1 : 0;
            last = now;
        }
    }

    /**
     * The large file's scenarios on the file {@code name} (a channel's folder, then the file's name), its content and
     * changes drawn from {@code seed}; {@code timed} false: a warm-up pass, unmeasured, with a file of at most
     * WARM_UP_MIB.
     */
    private void bigFile(String name, boolean timed, long seed) throws Exception {
        long size = (timed ? sizeMib : Math.min(sizeMib, WARM_UP_MIB)) << 20;
        Path staged = dir.resolve("stage").resolve(name);
        Files.createDirectories(staged.getParent());
        writeUnique(staged, size, seed);
        if (timed) {
            settled(size);
        }
        profileFrom(timed);
        long base = siteSeq();
        long t0 = System.nanoTime();
        long b0 = hubProxy.bytesForwarded();
        Files.move(staged, site.resolve(name));
        awaitHub(base + 1);
        if (timed) {
            measured("large file " + sizeMib + " MiB, first copy", t0, b0, name, List.of(site.resolve(name)));
            check(site.resolve(name), hubCopy(name), rsyncCopy.resolve(name), rsyncFsyncCopy.resolve(name));
        }

        int places = 1000;
        int each = (int) Math.max(1, size * changePct / 100 / places);
        Random rnd = new Random(seed + 1);
        byte[] junk = new byte[each];
        if (timed) {
            settled(size);
        }
        profileFrom(timed);
        base = siteSeq();
        t0 = System.nanoTime();
        b0 = hubProxy.bytesForwarded();
        try (FileChannel ch = FileChannel.open(site.resolve(name), StandardOpenOption.WRITE)) {
            for (int i = 0; i < places; i++) {
                rnd.nextBytes(junk);
                ch.write(ByteBuffer.wrap(junk), (long) (rnd.nextDouble() * (size - each)));
            }
        }
        if (timed) {
            apartFromTheCopy(site.resolve(name));
        }
        awaitHub(base + 1);
        if (timed) {
            measured(String.format("large file, %.1f%% changed in %d places", changePct, places), t0, b0, name, List.of(site.resolve(name)));
            check(site.resolve(name), hubCopy(name), rsyncCopy.resolve(name), rsyncFsyncCopy.resolve(name));
        }
    }

    /**
     * The {@code i}th of {@code changed} small files to change: spread over the tree and over its 100 folders (file
     * {@code k} is in folder {@code k % 100}; every 100th file alone would all be in one folder, which a walk of the
     * folders heard of covers in 100 looks, while rsync looks at every file).
     */
    private int picked(int i, int changed) {
        return (int) (((long) i * files / changed + i) % files);
    }

    /**
     * Writes the small files (1 to 16 KiB of random bytes, in 100 folders) into {@code staged}, and returns the paths
     * they will have at the site once {@code staged} is moved to its {@code name}.
     */
    private List<Path> writeTree(Path staged, String name, Random rnd) throws IOException {
        List<Path> out = new ArrayList<>();
        for (int i = 0; i < files; i++) {
            Path f = staged.resolve(String.format("d%03d/f%05d.bin", i % 100, i));
            Files.createDirectories(f.getParent());
            byte[] b = new byte[1024 + rnd.nextInt(15 * 1024)];
            rnd.nextBytes(b);
            Files.write(f, b);
            out.add(site.resolve(name).resolve(staged.relativize(f)));
        }
        return out;
    }

    /** Overwrites 100 bytes in the middle of a small file, in place. */
    private static void overwriteMiddle(Path f, Random rnd) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            byte[] b = new byte[100];
            rnd.nextBytes(b);
            ch.write(ByteBuffer.wrap(b), ch.size() / 2);
        }
    }

    /**
     * The small files' scenarios in the folder {@code name} (a channel's folder, then tree), their content and changes
     * drawn from {@code seed}; {@code timed} false: a warm-up pass, unmeasured.
     */
    private void tree(String name, boolean timed, long seed) throws Exception {
        Path staged = Files.createDirectories(dir.resolve("stage").resolve(name));
        Random rnd = new Random(seed);
        List<Path> all = writeTree(staged, name, rnd);
        if (timed) {
            try (var staging = Files.walk(staged)) {
                settled(bytesOf(staging.filter(Files::isRegularFile).toList()));
            }
        }
        profileFrom(timed);
        long base = siteSeq();
        long t0 = System.nanoTime();
        long b0 = hubProxy.bytesForwarded();
        Files.move(staged, site.resolve(name));
        awaitHub(base + files);
        if (timed) {
            measured(String.format("%,d small files, first copy", files), t0, b0, name, all);
            checkTrees(site.resolve(name), hubCopy(name), rsyncCopy.resolve(name), rsyncFsyncCopy.resolve(name));
        }

        int changed = (int) Math.max(1, Math.round(files * changePct / 100));
        if (timed) {
            settled(0);
        }
        profileFrom(timed);
        base = siteSeq();
        t0 = System.nanoTime();
        b0 = hubProxy.bytesForwarded();
        List<Path> edited = new ArrayList<>();
        for (int i = 0; i < changed; i++) {
            Path f = all.get(picked(i, changed));
            overwriteMiddle(f, rnd);
            if (timed) {
                apartFromTheCopy(f);
            }
            edited.add(f);
        }
        awaitHub(base + changed);
        if (timed) {
            measured(String.format("%,d small files, %d changed", files, changed), t0, b0, name, edited);
            checkTrees(site.resolve(name), hubCopy(name), rsyncCopy.resolve(name), rsyncFsyncCopy.resolve(name));
        }
    }

    /**
     * Records Syncline's figures (from t0 and the proxy's count b0 until now), then runs and measures rsync, and rsync
     * --fsync into its own copy (the same guarantee as Syncline's: each file on disk before it is in place), then the
     * durable floor of the site's files {@code written} (those the scenario made new).
     */
    private void measured(String scenario, long t0, long b0, String name, List<Path> written) throws Exception {
        double sSec = (System.nanoTime() - t0) / 1e9;
        double sCpu = (processCpuNanos() - cpu0) / 1e9;
        long sBytes = hubProxy.bytesForwarded() - b0;
        if (profiler != null) {
            profiler.stop(name.substring(0, name.indexOf('/')) + "-" + scenario.replaceAll("[^A-Za-z0-9.%]+", "-"));
        }
        awaitSynclineIdle();
        long bytes = bytesOf(written);
        settled(bytes);
        long r0 = rsyncProxy.bytesForwarded();
        long self = ProcessHandle.current().pid();
        long daemon0 = cpuTicks(rsyncdPid, true, true);
        long client0 = cpuTicks(self, false, true);
        long jvm0 = processCpuNanos();
        long t1 = System.nanoTime();
        rsync(false, name);
        double rSec = (System.nanoTime() - t1) / 1e9;
        long rBytes = rsyncProxy.bytesForwarded() - r0;
        // rsync's processor time: the client's (a child of this process, reaped: its time and its own children's are in
        // this process's children's time), the daemon's with the child it forked for the connection (once reaped), and
        // this process's meanwhile (the proxy rsync's bytes went through).
        awaitNoChildren(rsyncdPid);
        double rCpu = (cpuTicks(self, false, true) - client0 + cpuTicks(rsyncdPid, true, true) - daemon0) / (double) CLOCK_TICKS
                + (processCpuNanos() - jvm0) / 1e9;
        settled(bytes);
        long t2 = System.nanoTime();
        rsync(true, name);
        double fSec = (System.nanoTime() - t2) / 1e9;
        settled(bytes);
        double floor = durableFloor(written);
        results.computeIfAbsent(scenario, k -> new ArrayList<>()).add(new double[] {sBytes, rBytes, sSec, rSec, fSec, floor, sCpu, rCpu});
        System.out.printf("  %s: Syncline %,d bytes in %.2f s (cpu %.2f s); rsync %,d bytes in %.2f s (cpu %.2f s; with --fsync %.2f s); durable floor %.2f s%n",
                scenario, sBytes, sSec, sCpu, rBytes, rSec, rCpu, fSec, floor);
    }

    /**
     * The durable floor of putting {@code written} (files of the site's folder) in place: each copied (in the kernel) to
     * a temporary file next to its target in the floor's folder (a large file written back every FLOOR_STEP bytes while
 * the copy goes on, as Syncline's receiver does), flushed to disk, and renamed over the target; then
     * the folders renamed into are flushed, once each, as Syncline does at the end of an exchange. FLOOR_THREADS files
     * at a time. Nothing else: no network, no hashing, no database, no delta (a change scenario writes the whole file,
     * as Syncline and rsync build a whole new one). Seconds.
     */
    private double durableFloor(List<Path> written) throws Exception {
        long t0 = System.nanoTime();
        List<java.util.concurrent.Future<Path>> done = new ArrayList<>();
        for (Path src : written) {
            Path target = floorCopy.resolve(site.relativize(src));
            done.add(floorThreads.submit(() -> {
                Files.createDirectories(target.getParent());
                Path tmp = target.resolveSibling("." + target.getFileName() + ".floor");
                try (FileChannel in = FileChannel.open(src, StandardOpenOption.READ);
                     FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                             StandardOpenOption.TRUNCATE_EXISTING)) {
                    java.util.concurrent.Future<?> early = null;
                    for (long at = 0, size = in.size(); at < size; ) {
                        at += in.transferTo(at, Math.min(FLOOR_STEP, size - at), out);
                        if (at < size && (early == null || early.isDone())) {
                            // A large file is written back while the copy goes on, as Syncline's receiver does
                            // (Writeback): its last flush then has little left to write.
                            early = floorWriteback.submit(() -> {
                                out.force(false);
                                return null;
                            });
                        }
                    }
                    if (early != null) {
                        early.get();
                    }
                    out.force(true);
                }
                Files.move(tmp, target, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                return target.getParent();
            }));
        }
        java.util.Set<Path> folders = new java.util.HashSet<>();
        for (java.util.concurrent.Future<Path> f : done) {
            folders.add(f.get());
        }
        for (Path folder : folders) {
            try (FileChannel ch = FileChannel.open(folder, StandardOpenOption.READ)) {
                ch.force(true);
            }
        }
        return (System.nanoTime() - t0) / 1e9;
    }

    /**
     * Waits (at most a minute) until no Syncline thread still works after the measured run (the receiver indexes a
     * large file it received in the background, syncline-file-index, and frees the old version of a file it replaced,
     * syncline-file-reaper), so that rsync's run has the processors and the disk to itself.
     */
    private static void awaitSynclineIdle() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
        int quiet = 0;
        while (quiet < 5 && System.nanoTime() < deadline) {
            boolean busy = Thread.getAllStackTraces().keySet().stream()
                    .anyMatch(t -> (t.getName().equals("syncline-file-index") || t.getName().equals("syncline-file-reaper"))
                            && t.getState() == Thread.State.RUNNABLE);
            quiet = busy ? 0 : quiet + 1;
            Thread.sleep(20);
        }
    }

    /**
     * The last change number the site recorded for the channel: one row read by its key (polled every 20 ms; the
     * largest number in sync_file, read before, cost a tenth of a core while the site was recording 10,000 files).
     */
    private long siteSeq() throws Exception {
        try (Connection c = DriverManager.getConnection(siteUrl)) {
            return io.syncline.engine.files.FileOutbox.next(c, channel) - 1;
        }
    }

    /** The hub's copy of the site's {@code <channel>/<path>}. */
    private Path hubCopy(String name) {
        int slash = name.indexOf('/');
        return hubFolder.resolve(name.substring(0, slash)).resolve("s1").resolve(name.substring(slash + 1));
    }

    /**
     * Waits until the site has recorded changes of the channel under way up to at least {@code seq} and the hub has
     * applied every change recorded.
     */
    private void awaitHub(long seq) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(30);
        while (System.nanoTime() < deadline) {
            long recorded = siteSeq();
            if (recorded >= seq) {
                try (Connection c = DriverManager.getConnection(hubUrl);
                     java.sql.PreparedStatement ps = c.prepareStatement("SELECT COALESCE(MAX(last_seq), 0) FROM sync_file_in WHERE channel = ?")) {
                    ps.setString(1, channel);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        if (rs.getLong(1) >= recorded) {
                            return;
                        }
                    }
                }
            }
            Thread.sleep(20);
        }
        throw new IllegalStateException("the hub did not catch up within 30 minutes");
    }

    /**
     * Has the operating system write every file's pending data to disk (sync(1)), then waits until the disks are quiet
     * (a second with at most a few writes, by /proc/diskstats; at most 30 s), so that each timed run starts with nothing
     * left to write by the step before: the files just made for the scenario, the previous run's copy.
     * <p>
     * The benchmark deletes nothing before the end (the change scenarios replace files, which frees the old versions'
     * inodes, a hundred or one, on both sides): ext4 without a journal (this machine's root file system)
     * does not hand out an inode freed in the last 60 s, or 360 s once its inode table block is written to again, and
     * looks at each such inode in turn, from the start of the group, every time it creates a file. Rounds that
     * started after the last round's 40,000 files were deleted spent most of their time there: perf showed 60 % of
     * rsync --fsync's samples and of Syncline's flush threads' in {@code recently_deleted} under {@code openat}, with
     * the share paid by each depending on when it ran. Both sides create every file; neither should pay for the
     * benchmark's own clean-up. (Run the benchmark 6 minutes or more after anything deleted many files.)
     */
    private void settled(long bytes) throws Exception {
        diskSettled();
        memoryReady(bytes);
    }

    /** The files' lengths, all together. */
    private static long bytesOf(List<Path> files) throws IOException {
        long n = 0;
        for (Path f : files) {
            n += Files.size(f);
        }
        return n;
    }

    /** Least memory made ready before a timed run (memoryReady), whatever the run writes. */
    private static final long MEMORY_READY_MIN = 64L << 20;

    /**
     * Makes ready the memory the next timed run will write files into: writes {@code bytes} and 64 MiB more (at least
     * {@link #MEMORY_READY_MIN}) into a scratch file, not flushed, and truncates it at once (its pages are freed before
     * any is written back, so the disk stays quiet). This machine is a virtual machine whose free memory the host takes
     * back (virtio-balloon free page reporting): writing into pages not used for a while costs about ten times what
     * writing into pages freed a moment ago does (dd of 2 GiB: 0.5 to 0.9 GB/s against 7.2 to 7.5 GB/s), and which
     * writer gets which depended on the order of the runs: Syncline's change of the large file, run first, wrote its new
     * version into such pages, and freed the old version's, which the rsync runs after it then wrote into. Each timed
     * run now starts with the same: recently freed pages enough for what it writes.
     */
    private void memoryReady(long bytes) throws IOException {
        long total = Math.max(MEMORY_READY_MIN, bytes + MEMORY_READY_MIN);
        ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
        try (FileChannel ch = FileChannel.open(dir.resolve("memory-ready"), StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            for (long n = 0; n < total; n += buf.capacity()) {
                buf.clear();
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
            }
            ch.truncate(0);
        }
    }

    private static void diskSettled() throws Exception {
        Process p = new ProcessBuilder("sync").redirectErrorStream(true).start();
        if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new IllegalStateException("sync(1) failed or took more than 5 minutes");
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        long last = diskWrites();
        int quiet = 0;
        while (last >= 0 && quiet < 4 && System.nanoTime() < deadline) {
            Thread.sleep(250);
            long now = diskWrites();
            quiet = now - last <= 2 ? quiet + 1 : 0;
            last = now;
        }
    }

    /** Writes completed by every block device so far (/proc/diskstats, Linux); -1 where there is no such file. */
    private static long diskWrites() {
        try {
            long sum = 0;
            for (String line : Files.readAllLines(Path.of("/proc/diskstats"))) {
                String[] f = line.trim().split("\\s+");
                if (f.length > 7) {
                    sum += Long.parseLong(f[7]);
                }
            }
            return sum;
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
    }

    /** Runs the rsync client on the site's {@code name} (file or folder), to the same path in its copy (--relative). */
    private void rsync(boolean fsync, String name) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("rsync", "-a", "--relative", "--stats"));
        if (fsync) {
            cmd.add("--fsync");
        }
        cmd.add(site + "/./" + name);
        cmd.add("rsync://127.0.0.1:" + rsyncProxy.port() + (fsync ? "/fsync/" : "/bench/"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (p.waitFor() != 0) {
            throw new IllegalStateException("rsync failed: " + out);
        }
    }

    /** Linux's clock ticks per second, the unit of /proc's processor times (USER_HZ: 100 on every common platform). */
    private static final int CLOCK_TICKS = 100;

    /** This process's processor time (user and system, every thread), ns. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    /**
     * A process's processor time (user and system), with {@code children} its reaped children's too, from /proc, in
     * clock ticks.
     */
    private static long cpuTicks(long pid, boolean own, boolean children) throws IOException {
        String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" "); // f[0] is the state, field 3 of proc(5)
        return (own ? Long.parseLong(f[11]) + Long.parseLong(f[12]) : 0) // utime stime
                + (children ? Long.parseLong(f[13]) + Long.parseLong(f[14]) : 0); // cutime cstime
    }

    /** Waits (at most 5 s) until the process has no child left (the rsync daemon has reaped its connection's). */
    private static void awaitNoChildren(long pid) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (ProcessHandle.of(pid).map(h -> h.children().findAny().isPresent()).orElse(false) && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
    }

    private Process startRsyncDaemon() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        Path conf = dir.resolve("rsyncd.conf");
        boolean root = "root".equals(System.getProperty("user.name"));
        Files.writeString(conf, "use chroot = no\npid file = " + dir.resolve("rsyncd.pid") + "\nlog file = " + dir.resolve("rsyncd.log")
                + "\n[bench]\n  path = " + rsyncCopy + "\n  read only = false\n" + (root ? "  uid = root\n  gid = root\n" : "")
                + "[fsync]\n  path = " + rsyncFsyncCopy + "\n  read only = false\n" + (root ? "  uid = root\n  gid = root\n" : ""));
        Process p = new ProcessBuilder("rsync", "--daemon", "--no-detach", "--config=" + conf, "--port=" + port, "--address=127.0.0.1")
                .redirectErrorStream(true).redirectOutput(dir.resolve("rsyncd.out").toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 200);
                break;
            } catch (IOException e) {
                if (System.nanoTime() > deadline || !p.isAlive()) {
                    throw new IllegalStateException("rsync daemon did not start: " + Files.readString(dir.resolve("rsyncd.out")));
                }
                Thread.sleep(50);
            }
        }
        rsyncProxy = new FaultProxy("rsync", "127.0.0.1", port);
        return p;
    }

    private static String rsyncVersion() throws Exception {
        Process p = new ProcessBuilder("rsync", "--version").redirectErrorStream(true).start();
        String first = new String(p.getInputStream().readAllBytes()).lines().findFirst().orElse("?");
        p.waitFor();
        return first.replaceAll(".*version\\s+(\\S+).*", "$1");
    }

    /**
     * Gives a file just changed in place (same length) a modification time at least two seconds after the copies'
     * (the first copy can be less than a second earlier with small sizes, and rsync's quick check, which compares length
     * and time in whole seconds, would then take the file as unchanged).
     */
    private void apartFromTheCopy(Path f) throws IOException {
        long copied = Files.getLastModifiedTime(rsyncCopy.resolve(site.relativize(f))).toMillis();
        if (Files.getLastModifiedTime(f).toMillis() < copied + 2000) {
            Files.setLastModifiedTime(f, java.nio.file.attribute.FileTime.fromMillis(copied + 2000));
        }
    }

    /** Writes {@code size} bytes no chunk of which repeats (a random block, each 4 KiB stamped with its offset). */
    private static void writeUnique(Path f, long size, long seed) throws IOException {
        byte[] block = new byte[1 << 20];
        new Random(seed).nextBytes(block);
        ByteBuffer buf = ByteBuffer.wrap(block);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (long off = 0; off < size; off += block.length) {
                for (int i = 0; i < block.length; i += 4096) {
                    buf.putLong(i, off + i);
                }
                buf.clear();
                buf.limit((int) Math.min(block.length, size - off));
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
            }
        }
    }

    /** Each copy has the source's bytes (compared byte for byte, not with Syncline's own hashing). */
    private static void check(Path source, Path... copies) throws Exception {
        for (Path c : copies) {
            if (Files.mismatch(source, c) != -1) {
                throw new IllegalStateException(c + " differs from " + source);
            }
        }
    }

    private static void checkTrees(Path source, Path... copies) throws Exception {
        List<Path> files;
        try (Stream<Path> s = Files.walk(source)) {
            files = s.filter(Files::isRegularFile).toList();
        }
        for (Path c : copies) {
            long n;
            try (Stream<Path> s = Files.walk(c)) {
                n = s.filter(Files::isRegularFile).count();
            }
            if (n != files.size()) {
                throw new IllegalStateException(c + " has " + n + " files, " + source + " " + files.size());
            }
            for (Path f : files) {
                if (Files.mismatch(f, c.resolve(source.relativize(f))) != -1) {
                    throw new IllegalStateException(c.resolve(source.relativize(f)) + " differs from " + f);
                }
            }
        }
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
