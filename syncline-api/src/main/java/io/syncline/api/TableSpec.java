package io.syncline.api;

/**
 * One table in a channel.
 *
 * @param name      the table at the source
 * @param target    the table at the target (defaults to {@code name})
 * @param hubColumn optional column at the hub that the hub fills with the source site's id; it must be
 *                  part of the hub table's primary key, so identical site tables fold into one hub table
 */
public record TableSpec(String name, String target, String hubColumn) {
    public TableSpec {
        Names.requireValid("table", name);
        target = target == null || target.isBlank() ? name : Names.requireValid("target table", target);
        if (hubColumn != null && hubColumn.isBlank()) {
            hubColumn = null;
        }
        if (hubColumn != null) {
            Names.requireValid("hubColumn", hubColumn);
        }
    }

    public static TableSpec of(String name) {
        return new TableSpec(name, null, null);
    }
}
