package io.syncline.transport.http;

/** HTTP header names of the Syncline protocol (docs/protocol.md). */
public final class Headers {
    /** The sending node's id. */
    public static final String NODE = "Syncline-Node";
    /** A source's backlog: {@code rows=N; batches=N; oldestAgeMs=N}. */
    public static final String BACKLOG = "Syncline-Backlog";
    /** Hash of the hub's configuration for this site; a site re-registers when it changes. */
    public static final String CONFIG = "Syncline-Config";
    /**
     * On a pull: the incarnation (database) of the site the hub believes it pulls from. A site that started over since
     * refuses the request, which was sent before the hub knew (docs/protocol.md, "Pull").
     */
    public static final String INCARNATION = "Syncline-Incarnation";

    private Headers() {
    }
}
