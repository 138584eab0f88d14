package io.syncline.node;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What a node has told in its log already, so that a walk repeated every few seconds tells each of its warnings once.
 * Bounded: past {@link #MAX} different things, it forgets them all, and tells each once again.
 */
final class Once {
    static final int MAX = 10_000;
    private final Set<String> told = ConcurrentHashMap.newKeySet();

    /** True the first time {@code what} is asked about (since the last forgetting). */
    boolean first(String what) {
        if (told.contains(what)) {
            return false;
        }
        if (told.size() >= MAX) {
            told.clear();
        }
        return told.add(what);
    }
}
