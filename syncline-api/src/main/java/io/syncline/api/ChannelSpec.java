package io.syncline.api;

import java.util.List;

/**
 * A channel: a named group of tables that sync together, in one direction, as one ordered stream
 * of batches per source node.
 *
 * @param name      channel name
 * @param direction which way its changes flow
 * @param sites     for {@link Direction#HUB_TO_SITES} and {@link Direction#TWO_WAY}: which sites take part, as a routing
 *                  expression over the sites' attributes (docs/configuration.md, "Routing"); null means every site
 * @param tables    its tables, in the order the hub configures them
 * @param conflict  for {@link Direction#TWO_WAY}: how the hub settles conflicts unless a table says otherwise
 *                  (docs/conflicts.md); null elsewhere
 * @param schedule  when its changes travel: null for real time, else a duration or a cron expression
 *                  (docs/configuration.md, "Schedules"); checked by the node's configuration
 */
public record ChannelSpec(String name, Direction direction, String sites, List<TableSpec> tables, ConflictPolicy conflict,
                          String schedule) {
    /** Which way a channel's changes flow. */
    public enum Direction {
        /** Every site captures its changes; the hub applies them. */
        SITE_TO_HUB,
        /** The hub captures its changes; every site the channel routes to applies its share. */
        HUB_TO_SITES,
        /**
         * Every site captures its changes and the hub applies them, settling conflicts; the hub captures its tables, and
         * every site the channel routes to applies the hub's changes, its own included (docs/conflicts.md).
         */
        TWO_WAY;

        /** Whether sites capture and send this channel's changes. */
        public boolean fromSites() {
            return this != HUB_TO_SITES;
        }

        /** Whether the hub captures and sends this channel's changes to the sites. */
        public boolean toSites() {
            return this != SITE_TO_HUB;
        }
    }

    public ChannelSpec {
        Names.requireValid("channel", name);
        if (direction == null) {
            direction = Direction.SITE_TO_HUB;
        }
        if (sites != null && sites.isBlank()) {
            sites = null;
        }
        if (schedule != null && (schedule.isBlank() || schedule.trim().equalsIgnoreCase("realtime"))) {
            schedule = null;
        }
        if (sites != null && !direction.toSites()) {
            throw new IllegalArgumentException("channel '" + name + "' selects sites, but only a hub-to-sites or two-way channel can");
        }
        if (direction == Direction.TWO_WAY && conflict == null) {
            conflict = ConflictPolicy.DEFAULT;
        }
        if (direction != Direction.TWO_WAY && conflict != null) {
            throw new IllegalArgumentException("channel '" + name + "' names a conflict policy, but only a two-way channel has conflicts");
        }
        if (tables == null || tables.isEmpty()) {
            throw new IllegalArgumentException("channel '" + name + "' has no tables");
        }
        tables = List.copyOf(tables);
        long distinct = tables.stream().map(t -> t.name().toLowerCase(java.util.Locale.ROOT)).distinct().count();
        if (distinct != tables.size()) {
            throw new IllegalArgumentException("channel '" + name + "' lists a table twice");
        }
        for (TableSpec t : tables) {
            if (direction.toSites() && t.hubColumn() != null) {
                throw new IllegalArgumentException("channel '" + name + "' table '" + t.name() + "': hubColumn belongs to site-to-hub "
                        + "channels; in a hub-to-sites or two-way channel every site holds the hub's rows");
            }
            if (direction != Direction.HUB_TO_SITES && t.filter() != null) {
                throw new IllegalArgumentException("channel '" + name + "' table '" + t.name()
                        + "': a row filter belongs to hub-to-sites channels");
            }
            if (direction != Direction.TWO_WAY && t.conflict() != null) {
                throw new IllegalArgumentException("channel '" + name + "' table '" + t.name()
                        + "': a conflict policy belongs to two-way channels");
            }
        }
    }

    /** A real-time channel. */
    public ChannelSpec(String name, Direction direction, String sites, List<TableSpec> tables, ConflictPolicy conflict) {
        this(name, direction, sites, tables, conflict, null);
    }

    /** A real-time channel without a conflict policy of its own (the default for a two-way channel). */
    public ChannelSpec(String name, Direction direction, String sites, List<TableSpec> tables) {
        this(name, direction, sites, tables, null, null);
    }

    /** This channel with another schedule (null: real time). */
    public ChannelSpec withSchedule(String schedule) {
        return new ChannelSpec(name, direction, sites, tables, conflict, schedule);
    }

    /** A channel that every site takes part in. */
    public ChannelSpec(String name, Direction direction, List<TableSpec> tables) {
        this(name, direction, null, tables, null, null);
    }

    /** The conflict policy of a table of this channel (by source name): its own, or the channel's. */
    public ConflictPolicy conflictFor(String sourceName) {
        TableSpec t = table(sourceName);
        return t != null && t.conflict() != null ? t.conflict() : conflict;
    }

    /** The table spec for a source table name (case-insensitive), or null. */
    public TableSpec table(String sourceName) {
        for (TableSpec t : tables) {
            if (t.name().equalsIgnoreCase(sourceName)) {
                return t;
            }
        }
        return null;
    }

    /**
     * The same channel seen from the hub's side, for changes that flow from the hub to the sites: each table's
     * {@code name} is the hub's table and its {@code target} the site's. The hub captures and the site applies with it.
     */
    public ChannelSpec fromHub() {
        return new ChannelSpec(name, direction, sites, tables.stream()
                .map(t -> new TableSpec(t.target(), t.name(), null, t.filter(), t.conflict(), t.files())).toList(), conflict, schedule);
    }
}
