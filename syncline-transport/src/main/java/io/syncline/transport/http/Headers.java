package io.syncline.transport.http;

/** HTTP header names of the Syncline protocol (docs/protocol.md). */
public final class Headers {
    /** The sending node's id. */
    public static final String NODE = "Syncline-Node";
    /** A source's backlog: {@code rows=N; batches=N; oldestAgeMs=N}. */
    public static final String BACKLOG = "Syncline-Backlog";
    /** Hash of the hub's configuration for this site; a site re-registers when it changes. */
    public static final String CONFIG = "Syncline-Config";

    private Headers() {
    }
}
