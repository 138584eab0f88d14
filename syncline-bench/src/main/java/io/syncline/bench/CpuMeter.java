package io.syncline.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/*
 * CPU time spent by each part of a measurement, read from Linux's /proc, so a round can say where the cores went:
 *  - each PostgreSQL server: its postmaster, every live child (backends, WAL sender, apply worker, checkpointer ...)
 *    and the children that already exited (the postmaster's cutime/cstime);
 *  - this JVM: the Syncline node threads by role (thread names start with syncline-site / syncline-hub), the main
 *    thread (the benchmark's writer and its polling), the JIT compiler, the garbage collector, and the rest of the
 *    process (other threads, and threads that exited).
 * Where /proc is missing (not Linux), every figure is absent and nothing is printed.
 */
final class CpuMeter {
    private static final Path PROC = Path.of("/proc");
    private static final double TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture we run on

    private CpuMeter() {
    }

    static boolean available() {
        return Files.isReadable(PROC.resolve("self/stat"));
    }

    /** Cumulative CPU seconds by part: one entry per named server, then the JVM's parts (see {@link #part}). */
    static Map<String, Double> snapshot(Map<String, Long> postmasters) throws IOException {
        Map<String, Double> out = new LinkedHashMap<>();
        if (!available()) {
            return out;
        }
        Map<Long, long[]> procs = processes(); // pid -> {ppid, own ticks, reaped children's ticks}
        postmasters.forEach((name, pm) -> {
            long[] p = procs.get(pm);
            long ticks = p == null ? 0 : p[1] + p[2];
            for (long[] child : procs.values()) {
                if (child[0] == pm) {
                    ticks += child[1];
                }
            }
            out.put(name, ticks / TICKS_PER_SECOND);
        });
        Map<String, Long> threads = new LinkedHashMap<>();
        for (String part : List.of("site JVM", "hub JVM", "writer", "JIT", "GC")) {
            threads.put(part, 0L);
        }
        long named = 0;
        try (Stream<Path> tasks = Files.list(PROC.resolve("self/task"))) {
            for (Path t : (Iterable<Path>) tasks::iterator) {
                String[] f = stat(t.resolve("stat"));
                if (f == null) {
                    continue;
                }
                String part = part(f[1]);
                if (part != null) {
                    long ticks = Long.parseLong(f[13]) + Long.parseLong(f[14]);
                    threads.merge(part, ticks, Long::sum);
                    named += ticks;
                }
            }
        }
        String[] self = stat(PROC.resolve("self/stat"));
        long all = self == null ? 0 : Long.parseLong(self[13]) + Long.parseLong(self[14]);
        threads.forEach((k, v) -> out.put(k, v / TICKS_PER_SECOND));
        out.put("other JVM", (all - named) / TICKS_PER_SECOND);
        return out;
    }

    /**
     * The part a JVM thread belongs to, by the name Linux keeps for it (at most 15 characters); null for the rest. The
     * launcher's thread, which runs main(), keeps the process name "java".
     */
    private static String part(String thread) {
        if (thread.startsWith("syncline-site")) {
            return "site JVM";
        }
        if (thread.startsWith("syncline-hub")) {
            return "hub JVM";
        }
        if (thread.equals("java") || thread.equals("main") || thread.equals("bench-writer")) {
            return "writer";
        }
        if (thread.startsWith("C1 Compiler") || thread.startsWith("C2 Compiler")) {
            return "JIT";
        }
        if (thread.startsWith("GC Thread") || thread.startsWith("G1 ")) {
            return "GC";
        }
        return null;
    }

    /** The postmaster of {@code pg}: the parent process of one of its backends, read while that backend runs. */
    static long postmaster(Pg pg) throws java.sql.SQLException {
        try (java.sql.Connection c = pg.plain(); java.sql.Statement st = c.createStatement();
             java.sql.ResultSet rs = st.executeQuery("SELECT pg_backend_pid()")) {
            rs.next();
            String[] f = available() ? stat(PROC.resolve(rs.getString(1)).resolve("stat")) : null;
            return f == null ? -1 : Long.parseLong(f[3]);
        }
    }

    /** What was spent between two snapshots, part by part. */
    static Map<String, Double> between(Map<String, Double> before, Map<String, Double> after) {
        Map<String, Double> out = new LinkedHashMap<>();
        after.forEach((k, v) -> out.put(k, Math.max(0, v - before.getOrDefault(k, 0.0))));
        return out;
    }

    private static Map<Long, long[]> processes() throws IOException {
        Map<Long, long[]> out = new LinkedHashMap<>();
        try (Stream<Path> dirs = Files.list(PROC)) {
            for (Path d : (Iterable<Path>) dirs::iterator) {
                String pid = d.getFileName().toString();
                if (!pid.chars().allMatch(Character::isDigit)) {
                    continue;
                }
                String[] f = stat(d.resolve("stat"));
                if (f != null) {
                    out.put(Long.parseLong(pid), new long[] {Long.parseLong(f[3]),
                            Long.parseLong(f[13]) + Long.parseLong(f[14]), Long.parseLong(f[15]) + Long.parseLong(f[16])});
                }
            }
        }
        return out;
    }

    /**
     * The fields of a /proc stat file, numbered as in proc(5) from 0 (pid, comm, state, ppid, ... utime at 13,
     * stime 14, cutime 15, cstime 16); null when the process or thread is gone. The name may hold spaces and
     * parentheses, so it is cut at the last ')'.
     */
    private static String[] stat(Path file) {
        String s;
        try {
            s = Files.readString(file);
        } catch (IOException e) {
            return null;
        }
        int open = s.indexOf('(');
        int close = s.lastIndexOf(')');
        String[] rest = s.substring(close + 2).trim().split(" ");
        String[] f = new String[rest.length + 2];
        f[0] = s.substring(0, open).trim();
        f[1] = s.substring(open + 1, close);
        System.arraycopy(rest, 0, f, 2, rest.length);
        return f;
    }
}
