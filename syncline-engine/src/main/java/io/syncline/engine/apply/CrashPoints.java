package io.syncline.engine.apply;

import java.util.Set;

/**
 * Test hook for crash tests: when the environment variable {@code SYNCLINE_CRASH_AT} names a point, the
 * process halts there at once, like a SIGKILL (no shutdown hooks, no finally blocks, no commit). Unset in
 * production, where {@link #hit} is a single volatile read. Points: {@code apply-before-commit},
 * {@code apply-after-commit}, {@code ack-before-commit}, {@code send-mid-batch}.
 */
public final class CrashPoints {
    private static final Set<String> ARMED = Set.of(System.getenv().getOrDefault("SYNCLINE_CRASH_AT", "").split(","));

    private CrashPoints() {
    }

    /** Halts the JVM with exit code 137 if {@code point} is armed. */
    public static void hit(String point) {
        if (ARMED.contains(point)) {
            System.err.println("SYNCLINE_CRASH_AT: halting at " + point);
            Runtime.getRuntime().halt(137);
        }
    }
}
