package io.syncline.api;

import java.util.List;

/**
 * A channel: a named group of tables that sync together, in one direction, as one ordered stream
 * of batches per source node.
 *
 * @param name      channel name
 * @param direction which way its changes flow
 * @param sites     for {@link Direction#HUB_TO_SITES}: which sites receive it, as a routing expression over the sites'
 *                  attributes (docs/configuration.md, "Routing"); null means every site
 * @param tables    its tables, in the order the hub configures them
 */
public record ChannelSpec(String name, Direction direction, String sites, List<TableSpec> tables) {
    /** Which way a channel's changes flow. */
    public enum Direction {
        /** Every site captures its changes; the hub applies them. */
        SITE_TO_HUB,
        /** The hub captures its changes; every site the channel routes to applies its share. */
        HUB_TO_SITES
    }

    public ChannelSpec {
        Names.requireValid("channel", name);
        if (direction == null) {
            direction = Direction.SITE_TO_HUB;
        }
        if (sites != null && sites.isBlank()) {
            sites = null;
        }
        if (sites != null && direction != Direction.HUB_TO_SITES) {
            throw new IllegalArgumentException("channel '" + name + "' selects sites, but only a hub-to-sites channel can");
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
            if (direction == Direction.HUB_TO_SITES && t.hubColumn() != null) {
                throw new IllegalArgumentException("channel '" + name + "' table '" + t.name()
                        + "': hubColumn belongs to site-to-hub channels; a hub-to-sites channel selects a site's rows with a filter");
            }
            if (direction == Direction.SITE_TO_HUB && t.filter() != null) {
                throw new IllegalArgumentException("channel '" + name + "' table '" + t.name()
                        + "': a row filter belongs to hub-to-sites channels");
            }
        }
    }

    /** A site-to-hub channel. */
    public ChannelSpec(String name, Direction direction, List<TableSpec> tables) {
        this(name, direction, null, tables);
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
     * The same channel seen from the hub's side of a hub-to-sites channel: each table's {@code name} is the hub's table
     * and its {@code target} the site's. The hub captures and the site applies with it.
     */
    public ChannelSpec fromHub() {
        return new ChannelSpec(name, direction, sites, tables.stream()
                .map(t -> new TableSpec(t.target(), t.name(), null, t.filter())).toList());
    }
}
