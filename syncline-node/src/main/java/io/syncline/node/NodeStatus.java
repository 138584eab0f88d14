package io.syncline.node;

import java.time.Instant;
import java.util.List;
import java.util.Map;

/**
 * A node's status, as served by {@code GET /v1/status} and printed by {@code syncline status}.
 *
 * @param node    node id
 * @param role    "hub" or "site"
 * @param at      when the status was taken
 * @param sites   on the hub: one entry per registered site; on a site: empty
 * @param backlog on a site: rows and batches not yet acknowledged by the hub, per channel; on the hub: empty
 * @param conflicts     on the hub: conflicts of two-way channels recorded (docs/conflicts.md); on a site: 0
 * @param openConflicts on the hub: of those, how many wait for an operator (policy manual)
 */
public record NodeStatus(String node, String role, Instant at, List<SiteStatus> sites, Map<String, Long> backlog, long conflicts,
                         long openConflicts) {

    /**
     * What the hub knows of one site.
     *
     * @param site          site id
     * @param mode          push or pull
     * @param state         ONLINE (exchanged within three intervals), OFFLINE (no exchange for longer), NEVER (no exchange since hub start)
     * @param lastContact   last successful exchange, null if none since the hub started
     * @param pendingChanges changes captured at the site and not yet applied at the hub, as the site last reported
     * @param lagMillis     while changes are pending after the last exchange: the age of the oldest, growing; otherwise how long
     *                      the oldest change delivered by the last exchange had waited at the site (0 when it had none).
     *                      Measured by the site's clock, so it does not depend on the clocks agreeing
     * @param lastBatches   last batch applied per channel
     * @param rowsApplied   changes applied at the hub from this site, all channels
     * @param lastError     last exchange error, or null
     * @param pendingToSite changes of hub-to-sites channels routed to the site that the hub sealed and the site has not
     *                      acknowledged, counted before the site's row filters
     * @param conflicts     conflicts recorded for changes of this site
     * @param retention     when the site has not fetched a channel for half of retention.maxAge or longer: until when the hub
     *                      keeps that channel's changes for it, or that it no longer does; null otherwise
     * @param fileChanges   per file channel of the site: the last file change the receiving side has (site-to-hub: applied
     *                      at the hub; hub-to-sites: acknowledged by the site)
     * @param filesPendingToSite file changes of hub-to-sites file channels routed to the site that it has not acknowledged
     */
    public record SiteStatus(String site, String mode, String state, Instant lastContact, long pendingChanges, long lagMillis,
                             Map<String, Long> lastBatches, long rowsApplied, String lastError, long pendingToSite, long conflicts,
                             String retention, Map<String, Long> fileChanges, long filesPendingToSite) {
    }
}
