package io.syncline.node;

import java.time.Duration;
import java.util.random.RandomGenerator;

/**
 * Exponential back-off with jitter, for retrying an exchange with a peer that failed: the n-th wait in a row is drawn
 * uniformly between half and all of {@code base * 2^(n-1)}, capped at {@code max}. The jitter spreads the retries of
 * many sites after a hub restart. Not thread-safe: one per retrying loop.
 */
final class Backoff {
    private final Duration base;
    private final Duration max;
    private final RandomGenerator random;
    private int failures;

    Backoff(Duration base, Duration max, RandomGenerator random) {
        if (base.isZero() || base.isNegative() || max.compareTo(base) < 0) {
            throw new IllegalArgumentException("back-off needs 0 < base <= max, got " + base + " and " + max);
        }
        this.base = base;
        this.max = max;
        this.random = random;
    }

    /** The wait before the next attempt, after one more failure. */
    Duration next() {
        failures++;
        long ceiling = base.toMillis() << Math.min(failures - 1, 30);
        if (ceiling <= 0 || ceiling > max.toMillis()) {
            ceiling = max.toMillis();
        }
        long floor = ceiling / 2;
        return Duration.ofMillis(floor + (ceiling > floor ? random.nextLong(ceiling - floor + 1) : 0));
    }

    /** After a success: the next failure waits {@code base} again. */
    void reset() {
        failures = 0;
    }

    /** Failures in a row since the last success. */
    int failures() {
        return failures;
    }
}
