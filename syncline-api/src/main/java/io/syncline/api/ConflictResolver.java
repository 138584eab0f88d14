package io.syncline.api;

import java.util.Map;
import java.util.Optional;

/**
 * A conflict rule of the user's own, for conflict policy {@code custom} (docs/conflicts.md, "Your own resolver").
 *
 * <p>The hub calls it inside the transaction that applies the site's batch, once per conflict, on the thread applying
 * that batch; calls for different sites can run at the same time, so an implementation must be thread-safe. It must be
 * deterministic and must not touch the database: its answer is written at the hub and sent to every site. When it
 * throws, the hub keeps its own version, logs the error and leaves the conflict open for an operator.
 */
@FunctionalInterface
public interface ConflictResolver {
    /**
     * The version of the row every node must hold.
     *
     * @return the row (canonical values, docs/protocol.md, keyed by lower-case column name, with every column of the hub
     *         table), or empty when the row is to be deleted everywhere
     */
    Optional<Map<String, Object>> resolve(Conflict conflict);
}
