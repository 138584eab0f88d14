package io.syncline.node;

import io.syncline.api.NodeRole;

/**
 * The one control facade of a running node. The CLI, the HTTP admin API and the demo call this and nothing
 * else inside the node. Implementations are thread-safe.
 */
public interface NodeControl extends AutoCloseable {
    /** This node's id. */
    String nodeId();

    /** Hub or site. */
    NodeRole role();

    /** A consistent picture of the node now: per-site state on the hub, own backlog on a site. */
    NodeStatus status();

    /** Starts an exchange now instead of waiting for the schedule (hub: with every site; site: with the hub). */
    void syncNow();

    /** Stops the node's threads and listener and closes its database pool; waits a bounded time. */
    @Override
    void close();
}
