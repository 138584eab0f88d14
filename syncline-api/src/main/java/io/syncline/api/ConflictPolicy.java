package io.syncline.api;

import java.util.List;
import java.util.Locale;

/**
 * How the hub settles a conflict on a two-way channel (docs/conflicts.md).
 *
 * @param kind     the rule
 * @param priority for {@link Kind#SITE_PRIORITY}: node ids, highest priority first; the hub's own edits rank as the hub's
 *                 id, or as {@code hub}; a node not listed ranks below every listed one
 * @param resolver for {@link Kind#CUSTOM}: the class name of a {@link ConflictResolver} with a public no-argument
 *                 constructor, on the hub's class path
 */
public record ConflictPolicy(Kind kind, List<String> priority, String resolver) {
    /** The rules a channel or table can choose. */
    public enum Kind {
        /** The hub's version stays. */
        HUB_WINS("hub-wins"),
        /** The version of the node listed first in {@code priority} wins; between two unlisted nodes, the last writer. */
        SITE_PRIORITY("site-priority"),
        /** The version with the later hybrid logical clock stamp wins; equal stamps go to the greater node id. */
        LAST_WRITER_WINS("last-writer-wins"),
        /** Columns changed on one side only keep that side's value; a column changed on both goes to the last writer. */
        COLUMN_MERGE("column-merge"),
        /** A {@link ConflictResolver} of the user's own decides. */
        CUSTOM("custom"),
        /** The last writer wins provisionally; the conflict stays open until an operator settles it. */
        MANUAL("manual");

        private final String label;

        Kind(String label) {
            this.label = label;
        }

        /** The name used in configuration and in the conflict table. */
        public String label() {
            return label;
        }

        /** The kind named {@code label} (as in configuration: {@code hub-wins}, ...). */
        public static Kind of(String label) {
            for (Kind k : values()) {
                if (k.label.equals(label.toLowerCase(Locale.ROOT))) {
                    return k;
                }
            }
            throw new IllegalArgumentException("unknown conflict policy '" + label + "' (known: "
                    + java.util.Arrays.stream(values()).map(Kind::label).toList() + ")");
        }
    }

    /** What a two-way channel uses when it names no policy. */
    public static final ConflictPolicy DEFAULT = new ConflictPolicy(Kind.LAST_WRITER_WINS, List.of(), null);

    public ConflictPolicy {
        if (kind == null) {
            throw new IllegalArgumentException("conflict policy without a kind");
        }
        priority = priority == null ? List.of() : List.copyOf(priority);
        if (resolver != null && resolver.isBlank()) {
            resolver = null;
        }
        if (kind == Kind.SITE_PRIORITY && priority.isEmpty()) {
            throw new IllegalArgumentException("conflict policy site-priority needs a priority list of node ids");
        }
        if (kind == Kind.CUSTOM && resolver == null) {
            throw new IllegalArgumentException("conflict policy custom needs a resolver class name");
        }
        if (kind != Kind.CUSTOM && resolver != null) {
            throw new IllegalArgumentException("a resolver class belongs to conflict policy custom, not " + kind.label());
        }
        if (kind != Kind.SITE_PRIORITY && !priority.isEmpty()) {
            throw new IllegalArgumentException("a priority list belongs to conflict policy site-priority, not " + kind.label());
        }
    }

    public static ConflictPolicy of(Kind kind) {
        return new ConflictPolicy(kind, List.of(), null);
    }
}
