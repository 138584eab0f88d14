package io.syncline.node.config;

import java.time.Duration;

/**
 * How the hub exchanges batches with one site.
 *
 * @param mode     push (site sends) or pull (hub fetches)
 * @param interval time between exchanges
 * @param url      pull-mode listener URL configured at the hub, overriding what the site advertises (may be null)
 */
public record SiteSchedule(Mode mode, Duration interval, String url) {
    /** Who starts an exchange. */
    public enum Mode { PUSH, PULL }
}
