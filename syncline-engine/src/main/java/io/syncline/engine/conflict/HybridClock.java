package io.syncline.engine.conflict;

import java.time.Clock;

/**
 * A hybrid logical clock (Kulkarni et al., 2014): a stamp is wall-clock milliseconds shifted left 16 bits plus a
 * counter. {@link #tick()} never returns a stamp below or equal to one it returned or {@link #observe observed} before,
 * so a change made after a node saw another node's change is stamped later, whatever the two wall clocks say; between
 * changes nobody saw, the stamps follow the wall clocks. Used to order the changes of two-way channels for
 * last-writer-wins (docs/conflicts.md). Thread-safe.
 */
public final class HybridClock {
    private static final int COUNTER_BITS = 16;
    /** How far ahead of this node's wall clock a stamp from elsewhere may be; a later one is taken as this far. */
    public static final java.time.Duration MAX_DRIFT = java.time.Duration.ofMinutes(5);
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

    /**
     * Takes in a stamp seen from elsewhere (0 = none), so the next {@link #tick()} is above it. A stamp more than
     * {@link #MAX_DRIFT} ahead of this node's wall clock (a node whose clock runs fast, or a forged stamp) is taken as
     * that far ahead: one node cannot drag every clock forward, or wrap it around.
     *
     * @return the stamp as taken in
     */
    public synchronized long observe(long stamp) {
        long taken = Math.min(stamp, ceiling());
        if (taken > last) {
            last = taken;
        }
        return taken;
    }

    /** The highest stamp this node takes from elsewhere now: its wall clock plus {@link #MAX_DRIFT}. */
    public long ceiling() {
        return (clock.millis() + MAX_DRIFT.toMillis()) << COUNTER_BITS;
    }

    /** The last stamp returned or observed (0 before any). */
    public synchronized long current() {
        return last;
    }
}
