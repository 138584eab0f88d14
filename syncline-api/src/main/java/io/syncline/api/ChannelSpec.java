package io.syncline.api;

import java.util.List;

/**
 * A channel: a named group of tables that sync together, in one direction, as one ordered stream
 * of batches per source node.
 */
public record ChannelSpec(String name, Direction direction, List<TableSpec> tables) {
    /** Which way a channel's changes flow. Only SITE_TO_HUB is implemented so far. */
    public enum Direction { SITE_TO_HUB }

    public ChannelSpec {
        Names.requireValid("channel", name);
        if (direction == null) {
            direction = Direction.SITE_TO_HUB;
        }
        if (tables == null || tables.isEmpty()) {
            throw new IllegalArgumentException("channel '" + name + "' has no tables");
        }
        tables = List.copyOf(tables);
        long distinct = tables.stream().map(t -> t.name().toLowerCase(java.util.Locale.ROOT)).distinct().count();
        if (distinct != tables.size()) {
            throw new IllegalArgumentException("channel '" + name + "' lists a table twice");
        }
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
}
