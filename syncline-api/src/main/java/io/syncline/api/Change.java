package io.syncline.api;

import java.util.Map;
import java.util.Objects;

/**
 * One captured row change, as it travels from a source outbox to a target table.
 *
 * <p>Rows are maps from column name to a canonical value (see {@code docs/protocol.md}): {@code null},
 * {@link Long}/{@link Integer}/{@link java.math.BigInteger}, {@link java.math.BigDecimal}, {@link String},
 * {@link Boolean}, or a {@link Map}/{@link java.util.List} for JSON columns. Dates, times, binary and
 * UUIDs are strings in their canonical text form. Instances are immutable and thread-safe as long as
 * the maps handed in are not modified afterwards.
 */
public sealed interface Change {

    /** The source table name, unqualified. */
    String table();

    /** A new row. */
    record Insert(String table, Map<String, Object> newRow) implements Change {
        public Insert {
            Objects.requireNonNull(table, "table");
            Objects.requireNonNull(newRow, "newRow");
        }
    }

    /**
     * A changed row; {@code oldRow} carries at least the old primary key and the previous value of every column that
     * changed (a column it lacks kept its value, which {@code newRow} carries).
     */
    record Update(String table, Map<String, Object> oldRow, Map<String, Object> newRow) implements Change {
        public Update {
            Objects.requireNonNull(table, "table");
            Objects.requireNonNull(oldRow, "oldRow");
            Objects.requireNonNull(newRow, "newRow");
        }
    }

    /** A removed row; {@code oldRow} carries its last values. */
    record Delete(String table, Map<String, Object> oldRow) implements Change {
        public Delete {
            Objects.requireNonNull(table, "table");
            Objects.requireNonNull(oldRow, "oldRow");
        }
    }

    /** A row sent by an initial load or re-sync: applied as an upsert. */
    record Reload(String table, Map<String, Object> newRow) implements Change {
        public Reload {
            Objects.requireNonNull(table, "table");
            Objects.requireNonNull(newRow, "newRow");
        }
    }

    /**
     * Not a row change: in a hub's batch of a two-way channel, sent only to the site concerned, the point in the hub's order
     * where that site's batch {@code batch} took effect (docs/conflicts.md, "A change never comes back"). The hub does not
     * send a site its own changes; the mark tells the site that every change of its own up to that batch is now behind the
     * hub's stream, so the hub's later changes to the same rows apply. {@link #table()} is empty.
     */
    record Mark(long batch) implements Change {
        public Mark {
            if (batch < 0) {
                throw new IllegalArgumentException("mark of batch " + batch + ": batch numbers are not negative");
            }
        }

        @Override
        public String table() {
            return "";
        }
    }

    /**
     * Not a row change: in a site's batch of a two-way channel, a request that the hub send its row at {@code key} (a
     * primary key) to every site again. A site sends it when it had to remove a row of its own that the hub has not taken
     * in yet, to make room for the hub's rows (docs/conflicts.md, "A change never comes back").
     */
    record Refresh(String table, Map<String, Object> key) implements Change {
        public Refresh {
            Objects.requireNonNull(table, "table");
            Objects.requireNonNull(key, "key");
        }
    }
}
