package io.syncline.api;

import java.util.Map;

/**
 * Two versions of one row that were changed independently: a site's change reached the hub after the hub's row had
 * changed since the version the site's change was based on. Rows are canonical values (docs/protocol.md) keyed by
 * lower-case column name, in the hub table's columns; null where that side has no row.
 *
 * @param channel  the two-way channel
 * @param table    the hub table
 * @param kind     what collided
 * @param site     the site whose change arrived
 * @param base     the row as the site last had it before its change (its old row); null for an insert
 * @param siteRow  the row as the site changed it; null when the site deleted it
 * @param hubRow   the row as the hub holds it now; null when the hub has none
 * @param siteStamp the site change's hybrid logical clock stamp
 * @param hubStamp  the stamp of the hub's version
 * @param hubWriter the node whose change the hub's version is (the hub's id for the hub's own edits)
 */
public record Conflict(String channel, String table, Kind kind, String site, Map<String, Object> base, Map<String, Object> siteRow,
                       Map<String, Object> hubRow, long siteStamp, long hubStamp, String hubWriter) {
    /** What collided. */
    public enum Kind {
        /** The site inserted a key the hub already holds with other values. */
        INSERT_EXISTS,
        /** The site updated a row whose values at the hub changed since. */
        UPDATE_UPDATE,
        /** The site updated a row the hub has deleted since. */
        UPDATE_DELETED,
        /** The site deleted a row whose values at the hub changed since. */
        DELETE_UPDATED,
        /** The site's row would take a unique value (a primary key it moved to, or another unique key) another row holds. */
        UNIQUE_TAKEN,
        /**
         * The site's change would break a foreign key at the hub: the row it references is gone there, or rows there still
         * reference the row it deletes.
         */
        REFERENCE
    }
}
