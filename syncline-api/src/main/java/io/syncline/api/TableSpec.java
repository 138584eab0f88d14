package io.syncline.api;

/**
 * One table in a channel.
 *
 * @param name      the table at the site
 * @param target    the table at the hub (defaults to {@code name})
 * @param hubColumn optional column at the hub that the hub fills with the source site's id; it must be
 *                  part of the hub table's primary key, so identical site tables fold into one hub table
 *                  (site-to-hub channels only)
 * @param filter    optional row filter of a hub-to-sites channel: a routing expression over the hub row's columns,
 *                  with the receiving site's attributes as {@code :site.<name>} parameters; a site receives only
 *                  the rows it selects
 * @param conflict  optional conflict policy of a two-way channel's table, instead of the channel's
 */
public record TableSpec(String name, String target, String hubColumn, String filter, ConflictPolicy conflict) {
    public TableSpec {
        Names.requireValid("table", name);
        target = target == null || target.isBlank() ? name : Names.requireValid("target table", target);
        if (hubColumn != null && hubColumn.isBlank()) {
            hubColumn = null;
        }
        if (hubColumn != null) {
            Names.requireValid("hubColumn", hubColumn);
        }
        if (filter != null && filter.isBlank()) {
            filter = null;
        }
    }

    public TableSpec(String name, String target, String hubColumn, String filter) {
        this(name, target, hubColumn, filter, null);
    }

    public TableSpec(String name, String target, String hubColumn) {
        this(name, target, hubColumn, null, null);
    }

    public static TableSpec of(String name) {
        return new TableSpec(name, null, null, null, null);
    }
}
