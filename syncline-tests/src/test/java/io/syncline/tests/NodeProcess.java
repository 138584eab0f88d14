package io.syncline.tests;

import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One hub or site running as its own JVM ({@code io.syncline.cli.Main hub|site --config <file>}) with this
 * JVM's class path. Output (stdout and stderr) is appended to a log file, across restarts. Not thread-safe:
 * one test drives it.
 */
public final class NodeProcess {
    /** How long a node may take to print its ready line. */
    public static final Duration START_TIMEOUT = Duration.ofSeconds(60);
    private static final Pattern HUB_READY = Pattern.compile("hub (\\S+) listening on (\\S+)");

    private final String role;
    private final String id;
    private final Path config;
    private final Path log;
    private final List<String> jvmOptions;
    private Process process;
    private long logOffset;
    private int starts;
    private String url;
    /** The URL a hub will listen on (from its configuration), known before it starts. */
    String hubUrlHint;

    NodeProcess(String role, String id, Path config, Path log, List<String> jvmOptions) {
        this.role = role;
        this.id = id;
        this.config = config;
        this.log = log;
        this.jvmOptions = List.copyOf(jvmOptions);
    }

    public String id() {
        return id;
    }

    public Path log() {
        return log;
    }

    /** The URL the hub printed when it became ready (hub only). */
    public String url() {
        return url;
    }

    /** Starts the process without waiting; {@code env} is added to this JVM's environment (SYNCLINE_CRASH_AT is never inherited). */
    public NodeProcess start(Map<String, String> env) {
        if (process != null && process.isAlive()) {
            throw new IllegalStateException(this + " is already running");
        }
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmOptions);
        cmd.add("-XX:+HeapDumpOnOutOfMemoryError");
        cmd.add("-XX:+ExitOnOutOfMemoryError"); // a heap too small for the work ends the process: the tests' failFast sees it
        cmd.add("-XX:HeapDumpPath=" + log.getParent());
        cmd.add("--enable-native-access=ALL-UNNAMED"); // syncfs for received files, as the jar's manifest allows
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("io.syncline.cli.Main");
        cmd.add(role);
        cmd.add("--config");
        cmd.add(config.toString());
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        pb.environment().remove("SYNCLINE_CRASH_AT");
        pb.environment().putAll(env);
        try {
            logOffset = Files.exists(log) ? Files.size(log) : 0;
            starts++;
            Files.writeString(log, "---- start #" + starts + " of " + role + " " + id + " env " + env + "\n",
                    StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
            process = pb.start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + this, e);
        }
        return this;
    }

    /** Starts with no extra environment and waits until ready. */
    public NodeProcess startAndAwait() {
        return start(Map.of()).awaitReady();
    }

    /** Waits (bounded) for the ready line of the current start; fails at once with the log's tail if the process exits. */
    public NodeProcess awaitReady() {
        AtomicReference<String> found = new AtomicReference<>();
        Pattern ready = role.equals("hub") ? HUB_READY : Pattern.compile("site " + Pattern.quote(id) + " started");
        try {
            await("ready line of " + this).atMost(START_TIMEOUT).pollInterval(Duration.ofMillis(100))
                    .failFast(this + " exited before it was ready", () -> !process.isAlive() && readySince(ready) == null)
                    .until(() -> {
                        Matcher m = readySince(ready);
                        if (m != null && role.equals("hub")) {
                            found.set(m.group(2));
                        }
                        return m != null;
                    });
        } catch (RuntimeException | Error e) {
            throw new AssertionError(e.getMessage() + "\n" + tail(60), e);
        }
        if (found.get() != null) {
            url = found.get();
        }
        return this;
    }

    private Matcher readySince(Pattern p) {
        String out = outputSinceStart();
        Matcher m = p.matcher(out);
        return m.find() ? m : null;
    }

    /** Output written since the latest start. */
    public String outputSinceStart() {
        try (RandomAccessFile f = new RandomAccessFile(log.toFile(), "r")) {
            long len = f.length();
            if (len <= logOffset) {
                return "";
            }
            byte[] b = new byte[(int) Math.min(len - logOffset, 8 << 20)];
            f.seek(logOffset);
            f.readFully(b);
            return new String(b, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    public boolean isAlive() {
        return process != null && process.isAlive();
    }

    /** SIGKILL (destroyForcibly is SIGKILL on Linux) and wait until the process is gone. */
    public void kill() {
        if (process == null) {
            return;
        }
        process.destroyForcibly();
        try {
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                throw new AssertionError(this + " did not die within 30 s of SIGKILL");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Waits (bounded) for the process to exit by itself and returns its exit code. */
    public int awaitExit(Duration atMost) {
        try {
            if (!process.waitFor(atMost.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError(this + " still running after " + atMost + "\n" + tail(60));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
        return process.exitValue();
    }

    /** SIGKILL, then start again with {@code env} and wait until ready. */
    public NodeProcess restart(Map<String, String> env) {
        kill();
        return start(env).awaitReady();
    }

    /** The last {@code lines} lines of the log, with a title. */
    public String tail(int lines) {
        StringBuilder sb = new StringBuilder("==== last " + lines + " lines of " + log + " (" + this + ")\n");
        try {
            if (Files.exists(log)) {
                List<String> all = List.of(new String(Files.readAllBytes(log), StandardCharsets.UTF_8).split("\n"));
                for (String l : all.subList(Math.max(0, all.size() - lines), all.size())) {
                    sb.append(l.length() > 1000 ? l.substring(0, 1000) + " ...(" + l.length() + " chars)" : l).append('\n');
                }
            }
        } catch (IOException | UncheckedIOException e) {
            sb.append("(cannot read: ").append(e).append(")\n");
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return role + " " + id + (process == null ? "" : " (pid " + process.pid() + (process.isAlive() ? "" : ", exited") + ")");
    }
}
