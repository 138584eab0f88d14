package io.syncline.node.config;

import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.ConfigKey.Type;
import java.util.List;
import java.util.Set;

/** Every configuration key Syncline reads. The only place keys are defined. */
public final class ConfigDef {
    private static final Set<Role> BOTH = Set.of(Role.HUB, Role.SITE);
    private static final Set<Role> HUB = Set.of(Role.HUB);
    private static final Set<Role> SITE = Set.of(Role.SITE);

    public static final List<ConfigKey> KEYS = List.of(
            new ConfigKey("node.id", Type.NAME, null, true, BOTH,
                    "This node's id: letters, digits, '_' or '-'. Sites are known to the hub by it; it fills the hub column of aggregated tables."),
            new ConfigKey("database.url", Type.STRING, null, true, BOTH,
                    "JDBC URL of this node's database (PostgreSQL or H2). Syncline creates its own tables, all named sync_*, in it."),
            new ConfigKey("database.user", Type.STRING, "", false, BOTH, "Database user."),
            new ConfigKey("database.password", Type.SECRET, "", false, BOTH,
                    "Database password. Write ${ENV_VAR} to take it from the environment."),
            new ConfigKey("database.poolSize", Type.INT, "8", false, BOTH, "Maximum connections in the node's pool (HikariCP)."),
            new ConfigKey("http.host", Type.HOST, "127.0.0.1", false, BOTH,
                    "Address the node's HTTP listener binds to. Every node listens: the hub for sites, a site for the hub's pulls (used in pull mode)."),
            new ConfigKey("http.port", Type.PORT, "0", false, BOTH, "Port of the HTTP listener; 0 picks a free port (it is logged)."),
            new ConfigKey("http.advertisedUrl", Type.URL, null, false, SITE,
                    "URL the hub uses to reach this site's listener, when it differs from http://host:port (NAT, proxy)."),
            new ConfigKey("http.threads", Type.INT, "16", false, HUB, "Threads serving HTTP requests on the hub."),
            new ConfigKey("transport.readTimeout", Type.DURATION, "10m", false, BOTH,
                    "How long a node waits for its peer during one exchange; must exceed the time to apply the largest batch."),
            new ConfigKey("transport.maxBatchesPerExchange", Type.INT, "20", false, BOTH,
                    "Most batches sent in one push request or one pull response."),
            new ConfigKey("enrollment.token", Type.SECRET, null, true, HUB,
                    "Shared secret a site must present to register. Write ${SYNCLINE_ENROLLMENT_TOKEN} to take it from the environment."),
            new ConfigKey("sync.mode", Type.ENUM_MODE, "push", false, HUB,
                    "Default way sites exchange batches: 'push' (the site sends to the hub; works behind NAT) or 'pull' (the hub fetches from the site's listener)."),
            new ConfigKey("sync.interval", Type.DURATION, "1s", false, HUB, "Default time between two exchanges with a site."),
            new ConfigKey("sites", Type.MAP, null, false, HUB, "Per-site overrides, keyed by site id."),
            new ConfigKey("sites.*.mode", Type.ENUM_MODE, null, false, HUB, "'push' or 'pull' for this site."),
            new ConfigKey("sites.*.interval", Type.DURATION, null, false, HUB, "Exchange interval for this site: the hub's schedule for this location."),
            new ConfigKey("sites.*.url", Type.URL, null, false, HUB, "Listener URL of this site for pull mode, overriding what the site advertises."),
            new ConfigKey("sites.*.attributes", Type.MAP, null, false, HUB,
                    "This site's attributes (for example region: north, type: store), used by the routing of hub-to-sites channels."),
            new ConfigKey("sites.*.attributes.*", Type.STRING, null, false, HUB,
                    "One attribute: a name and a text value. The site's id is the attribute 'id' without being written here."),
            new ConfigKey("channels", Type.LIST, null, true, HUB, "The channels: groups of tables that sync together as one ordered stream."),
            new ConfigKey("channels[].name", Type.NAME, null, true, HUB, "Channel name."),
            new ConfigKey("channels[].direction", Type.ENUM_DIRECTION, "site-to-hub", false, HUB,
                    "Which way changes flow: 'site-to-hub' (every site's changes are applied at the hub), 'hub-to-sites' (the hub's "
                            + "changes are applied at every site the channel routes to, each site getting the rows its filters select) or "
                            + "'two-way' (both: the hub applies every site's changes, settling conflicts, and every site the channel routes "
                            + "to applies the hub's; docs/conflicts.md)."),
            new ConfigKey("channels[].schedule", Type.STRING, "realtime", false, HUB,
                    "When the channel's changes travel: 'realtime' (sealed and sent as soon as the database reports the commit), "
                            + "a duration such as 15m (every 15 minutes), or a five-field cron expression such as '0 2 * * *' (at 02:00, "
                            + "in the time zone of the node keeping the schedule: the site for what it sends and fetches, the hub for what "
                            + "it pulls)."),
            new ConfigKey("channels[].sites", Type.ROUTE, null, false, HUB,
                    "Hub-to-sites and two-way channels: which sites take part, as a routing expression over the sites' attributes, "
                            + "e.g. region IN ('north', 'south') AND type = 'store', or id IN ('store-1', 'store-7'). Default: every site."),
            new ConfigKey("channels[].conflict", Type.MAP, null, false, HUB,
                    "Two-way channels: how the hub settles a conflict (docs/conflicts.md). Default: policy last-writer-wins."),
            new ConfigKey("channels[].conflict.policy", Type.ENUM_POLICY, "last-writer-wins", false, HUB,
                    "'hub-wins', 'site-priority', 'last-writer-wins', 'column-merge', 'custom' or 'manual'."),
            new ConfigKey("channels[].conflict.priority", Type.LIST, null, false, HUB,
                    "Policy site-priority: node ids, highest priority first ('hub' names the hub's own edits)."),
            new ConfigKey("channels[].conflict.priority[]", Type.NAME, null, false, HUB, "A node id."),
            new ConfigKey("channels[].conflict.resolver", Type.STRING, null, false, HUB,
                    "Policy custom: class name of an io.syncline.api.ConflictResolver on the hub's class path."),
            new ConfigKey("channels[].tables", Type.LIST, null, true, HUB, "Tables of the channel, applied in source commit order."),
            new ConfigKey("channels[].tables[].name", Type.NAME, null, true, HUB, "Table name at the site."),
            new ConfigKey("channels[].tables[].target", Type.NAME, null, false, HUB, "Table name at the hub, if different."),
            new ConfigKey("channels[].tables[].hubColumn", Type.NAME, null, false, HUB,
                    "Column of the hub table that the hub fills with the source site's id. It must be part of the hub table's "
                            + "primary key; identical site tables then fold into one hub table. Site-to-hub channels only."),
            new ConfigKey("channels[].tables[].filter", Type.ROUTE, null, false, HUB,
                    "Hub-to-sites channels: the rows a site receives, as a routing expression over the hub row's columns with the "
                            + "site's attributes as parameters, e.g. region = :site.region or site_id = :site.id. A row that stops "
                            + "matching (moved to another region) is deleted at that site. Default: every row."),
            new ConfigKey("channels[].tables[].conflict", Type.MAP, null, false, HUB,
                    "Two-way channels: this table's own conflict policy, instead of the channel's; same keys as channels[].conflict."),
            new ConfigKey("channels[].tables[].conflict.policy", Type.ENUM_POLICY, null, false, HUB,
                    "As channels[].conflict.policy; required in a table's conflict block, which replaces the channel's whole."),
            new ConfigKey("channels[].tables[].conflict.priority", Type.LIST, null, false, HUB, "As channels[].conflict.priority."),
            new ConfigKey("channels[].tables[].conflict.priority[]", Type.NAME, null, false, HUB, "A node id."),
            new ConfigKey("channels[].tables[].conflict.resolver", Type.STRING, null, false, HUB, "As channels[].conflict.resolver."),
            new ConfigKey("channels[].tables[].files", Type.MAP, null, false, HUB,
                    "Columns that hold the path of a file in a file channel, keyed by column: files: {image: images}. A row is "
                            + "written at the target only once the file it references is there (docs/files.md, \"Rows and files "
                            + "together\"). The file channel flows the same way as the table's channel (site-to-hub or hub-to-sites)."),
            new ConfigKey("channels[].tables[].files.*", Type.NAME, null, false, HUB, "A file channel's name."),
            new ConfigKey("fileChannels", Type.LIST, null, false, HUB,
                    "File channels: the files of a folder at each node that sync next to the tables (docs/files.md)."),
            new ConfigKey("fileChannels[].name", Type.NAME, null, true, HUB, "File channel name; no table channel may have it too."),
            new ConfigKey("fileChannels[].direction", Type.ENUM_DIRECTION, "site-to-hub", false, HUB,
                    "'site-to-hub' (each site's files arrive at the hub in a sub-folder named after the site), 'hub-to-sites' or "
                            + "'two-way' (one folder shared by the hub and its sites; concurrent edits keep both versions, docs/files.md)."),
            new ConfigKey("fileChannels[].sites", Type.ROUTE, null, false, HUB,
                    "Hub-to-sites and two-way file channels: which sites take part, as for channels[].sites. Default: every site."),
            new ConfigKey("fileChannels[].include", Type.LIST, null, false, HUB,
                    "Globs of the files the channel takes; none: every file. A glob without '/' matches a file name in any folder "
                            + "('*.jpg'), one with '/' the path from the channel's folder ('images/**')."),
            new ConfigKey("fileChannels[].include[]", Type.STRING, null, false, HUB, "A glob."),
            new ConfigKey("fileChannels[].exclude", Type.LIST, null, false, HUB, "Globs of files the channel leaves out, after include."),
            new ConfigKey("fileChannels[].exclude[]", Type.STRING, null, false, HUB, "A glob."),
            new ConfigKey("folders", Type.MAP, null, false, BOTH,
                    "This node's folder for each file channel it takes part in, keyed by channel name: folders: {images: /srv/images}."),
            new ConfigKey("folders.*", Type.STRING, null, false, BOTH,
                    "A folder path. Syncline keeps its partial and temporary files in its sub-folder .syncline-tmp, never synced. "
                            + "The folders of two channels may be neither the same nor one inside the other."),
            new ConfigKey("files.scanInterval", Type.DURATION, "30s", false, BOTH,
                    "How often a node walks its file channels' folders in full. Changes are also seen at once through the file "
                            + "system's notifications, which make it walk only the sub-folders they name; the whole walk is the safety "
                            + "net (notifications can be lost, and nothing is watched while the node is down)."),
            new ConfigKey("files.partialMaxAge", Type.DURATION, "7d", false, BOTH,
                    "How long what a broken file transfer wrote (.syncline-tmp/<content hash>.part, or .new left by a process that "
                            + "died) is kept for the transfer to resume from, counted from the file's last change. Older ones are deleted "
                            + "(a folder is looked at at most once an hour, when a transfer comes); a transfer that comes later is sent "
                            + "whole again. At least an hour."),
            new ConfigKey("files.referenceWait", Type.DURATION, "10m", false, BOTH,
                    "How long a row waits for a file it references (channels[].tables[].files) that has not arrived. After that the "
                            + "row is written without it, with a warning: a file deleted at the source before it was sent never comes, "
                            + "and must not hold its channel for ever."),
            new ConfigKey("hub.url", Type.URL, null, true, SITE, "Base URL of the hub, e.g. http://hq.example.com:8080."),
            new ConfigKey("hub.token", Type.SECRET, null, true, SITE,
                    "The hub's enrollment token. Write ${SYNCLINE_ENROLLMENT_TOKEN} to take it from the environment."),
            new ConfigKey("capture.interval", Type.DURATION, "250ms", false, BOTH,
                    "How often the node seals newly committed changes into batches (a site for its channels, the hub for its "
                            + "hub-to-sites channels); a site also fetches the hub's batches at this interval."),
            new ConfigKey("capture.schemaCheckInterval", Type.DURATION, "10s", false, BOTH,
                    "How often a node compares each captured table's columns with its capture and upgrades the capture "
                            + "when they differ (after ALTER TABLE). At a site, a table that gained columns is then loaded again; at "
                            + "the hub, every site is reloaded with the hub-to-sites tables whose columns changed, and filters are "
                            + "checked against them."),
            new ConfigKey("retention.maxAge", Type.DURATION, "7d", false, HUB,
                    "How long the hub keeps the changes of hub-to-sites and two-way channels for a site that does not fetch them. "
                            + "After that the site no longer holds back their purge; when it returns it gets a copy of the tables "
                            + "instead. From half that time the hub warns (log and status). A site's own changes are never dropped: "
                            + "it keeps them until the hub has them."),
            new ConfigKey("load.chunkSize", Type.INT, "5000", false, BOTH, "Rows per initial-load chunk (one transaction each).")
    );

    private ConfigDef() {
    }
}
