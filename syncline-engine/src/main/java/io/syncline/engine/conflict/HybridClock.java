package io.syncline.engine.conflict;

import java.time.Clock;
import java.time.Instant;

/**
 * A hybrid logical clock (Kulkarni et al., 2014): a stamp is wall-clock milliseconds shifted left 16 bits plus a
 * counter. {@link #tick()} never returns a stamp below or equal to one it returned or {@link #observe observed} before,
 * so a change made after a node saw another node's change is stamped later, whatever the two wall clocks say; between
 * changes nobody saw, the stamps follow the wall clocks. Used to order the changes of two-way channels for
 * last-writer-wins (docs/conflicts.md). Thread-safe.
 */
public final class HybridClock {
    private static final int COUNTER_BITS = 16;
    private final Clock clock;
    private long last;

    public HybridClock(Clock clock) {
        this.clock = clock;
    }

    /** A new stamp, above every stamp returned or observed so far. */
    public synchronized long tick() {
        last = Math.max(last + 1, clock.millis() << COUNTER_BITS);
        return last;
    }

    /** Takes in a stamp seen from elsewhere (0 = none), so the next {@link #tick()} is above it. */
    public synchronized void observe(long stamp) {
        if (stamp > last) {
            last = stamp;
        }
    }

    /** The last stamp returned or observed (0 before any). */
    public synchronized long current() {
        return last;
    }

    /** The wall-clock instant a stamp carries (for people reading the conflict table). */
    public static Instant instantOf(long stamp) {
        return Instant.ofEpochMilli(stamp >>> COUNTER_BITS);
    }
}
