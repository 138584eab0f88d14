package io.syncline.node;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * What a node has told in its log already, so that a walk repeated every few seconds tells each of its warnings once.
 * Bounded: it remembers {@link #MAX} different things; past that, nothing new is told, and {@code full} runs once to
 * say so. Safe for concurrent callers: of those asking about the same new thing at once, one hears true.
 */
final class Once {
    static final int MAX = 10_000;
    private final Set<String> told = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean filled = new AtomicBoolean();
    private final Runnable full;

    /** @param full run once, when more than MAX different things were asked about */
    Once(Runnable full) {
        this.full = full;
    }

    /** True the first time {@code what} is asked about; false after, and for anything new once MAX are remembered. */
    boolean first(String what) {
        if (told.contains(what)) {
            return false;
        }
        if (told.size() >= MAX) {
            if (filled.compareAndSet(false, true)) {
                full.run();
            }
            return false;
        }
        return told.add(what);
    }
}
