package io.syncline.api;

import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

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
 * @param files     columns that hold the path of a file in a file channel, by column (lower case) to file channel: a row
 *                  is written at the target only once the files it references are there (docs/files.md, "Rows and files
 *                  together"); empty when none
 */
public record TableSpec(String name, String target, String hubColumn, String filter, ConflictPolicy conflict, Map<String, String> files) {
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
        Map<String, String> refs = new TreeMap<>();
        if (files != null) {
            for (Map.Entry<String, String> e : files.entrySet()) {
                refs.put(Names.requireValid("file column", e.getKey()).toLowerCase(Locale.ROOT), Names.requireValid("file channel", e.getValue()));
            }
        }
        files = Map.copyOf(refs);
    }

    public TableSpec(String name, String target, String hubColumn, String filter, ConflictPolicy conflict) {
        this(name, target, hubColumn, filter, conflict, null);
    }

    public TableSpec(String name, String target, String hubColumn, String filter) {
        this(name, target, hubColumn, filter, null);
    }

    public TableSpec(String name, String target, String hubColumn) {
        this(name, target, hubColumn, null, null);
    }

    public static TableSpec of(String name) {
        return new TableSpec(name, null, null, null, null, null);
    }
}
