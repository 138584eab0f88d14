package io.syncline.api;

/** What a node is: the central hub, or one of the sites. Every node runs the same engine. */
public enum NodeRole {
    HUB, SITE
}
