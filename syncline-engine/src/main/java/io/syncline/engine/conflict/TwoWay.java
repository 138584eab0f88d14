package io.syncline.engine.conflict;

import io.syncline.api.ConflictPolicy;
import io.syncline.api.ConflictResolver;
import io.syncline.api.SyncException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What the hub needs to apply two-way batches: its id, its hybrid logical clock and the custom resolvers, each loaded
 * once (a class that cannot be loaded is a configuration error at start). Thread-safe.
 */
public final class TwoWay {
    private final String hubId;
    private final HybridClock clock;
    private final Map<String, ConflictResolver> resolvers = new ConcurrentHashMap<>();

    public TwoWay(String hubId, HybridClock clock) {
        this.hubId = hubId;
        this.clock = clock;
    }

    public String hubId() {
        return hubId;
    }

    public HybridClock clock() {
        return clock;
    }

    /** The resolver of a custom policy, loaded and instantiated on first use (call at start to fail early); null otherwise. */
    public ConflictResolver resolver(ConflictPolicy policy) {
        if (policy.kind() != ConflictPolicy.Kind.CUSTOM) {
            return null;
        }
        return resolvers.computeIfAbsent(policy.resolver(), name -> {
            try {
                Class<?> type = Class.forName(name, true, Thread.currentThread().getContextClassLoader() != null
                        ? Thread.currentThread().getContextClassLoader() : TwoWay.class.getClassLoader());
                if (!ConflictResolver.class.isAssignableFrom(type)) {
                    throw new SyncException(SyncException.Stage.CONFIG, "conflict resolver '" + name + "' does not implement "
                            + ConflictResolver.class.getName());
                }
                return (ConflictResolver) type.getConstructor().newInstance();
            } catch (ReflectiveOperationException | LinkageError e) {
                throw new SyncException(SyncException.Stage.CONFIG, "conflict resolver '" + name + "' cannot be loaded: " + e, e);
            }
        });
    }
}
