package io.syncline.engine.conflict;

import io.syncline.api.Conflict;
import io.syncline.api.ConflictPolicy;
import io.syncline.api.ConflictResolver;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The built-in conflict rules (docs/conflicts.md). Every rule is a pure function of the conflict, so the hub's answer
 * does not depend on timing; the hub then sends it to every site.
 */
public final class Policies {
    private Policies() {
    }

    /**
     * A conflict's outcome.
     *
     * @param row    the row every node must hold; null when it is to be deleted everywhere
     * @param winner whose version it is: the site's id, the hub version's writer, {@code merge} or {@code custom}
     * @param open   true when an operator must still settle it (policy manual)
     */
    public record Decision(Map<String, Object> row, String winner, boolean open) {
    }

    /**
     * Decides {@code conflict} under {@code policy}; {@code custom} is the channel's resolver for policy custom and
     * {@code hubId} the hub's node id (for site-priority lists that name the hub).
     */
    public static Decision decide(ConflictPolicy policy, Conflict conflict, ConflictResolver custom, String hubId) {
        return switch (policy.kind()) {
            case HUB_WINS -> hub(conflict);
            case LAST_WRITER_WINS -> lastWriter(conflict);
            case MANUAL -> {
                Decision d = lastWriter(conflict);
                yield new Decision(d.row(), d.winner(), true);
            }
            case SITE_PRIORITY -> {
                int site = rank(policy, conflict.site(), hubId);
                int hub = rank(policy, conflict.hubWriter(), hubId);
                yield site < hub ? site(conflict) : hub < site ? hub(conflict) : lastWriter(conflict);
            }
            case COLUMN_MERGE -> merge(conflict);
            case CUSTOM -> {
                Optional<Map<String, Object>> answer = custom.resolve(conflict);
                if (answer == null) {
                    throw new IllegalStateException("conflict resolver " + custom.getClass().getName() + " returned null instead of a row or empty");
                }
                Map<String, Object> row = answer.orElse(null);
                String winner = row == null ? (conflict.siteRow() == null ? conflict.site() : conflict.hubRow() == null ? conflict.hubWriter() : "custom")
                        : equal(row, conflict.siteRow()) ? conflict.site() : equal(row, conflict.hubRow()) ? conflict.hubWriter() : "custom";
                yield new Decision(row, winner, false);
            }
        };
    }

    private static Decision hub(Conflict c) {
        return new Decision(c.hubRow(), c.hubWriter(), false);
    }

    private static Decision site(Conflict c) {
        return new Decision(c.siteRow(), c.site(), false);
    }

    /** The later stamp wins; equal stamps go to the greater node id, so every run decides alike. */
    static boolean siteIsLater(Conflict c) {
        if (c.siteStamp() != c.hubStamp()) {
            return c.siteStamp() > c.hubStamp();
        }
        return c.site().compareTo(c.hubWriter()) > 0;
    }

    private static Decision lastWriter(Conflict c) {
        return siteIsLater(c) ? site(c) : hub(c);
    }

    private static int rank(ConflictPolicy p, String node, String hubId) {
        for (int i = 0; i < p.priority().size(); i++) {
            String listed = p.priority().get(i);
            if (listed.equals(node) || node.equals(hubId) && listed.equals("hub")) {
                return i;
            }
        }
        return Integer.MAX_VALUE;
    }

    /*
     * Both sides updated the row: start from the hub's version and take each column the site changed (its value differs
     * from the base) and the hub did not; a column both changed goes to the last writer. Anything else (a side deleted
     * or inserted the row) is not a column-level question: the last writer wins the whole row.
     */
    private static Decision merge(Conflict c) {
        if (c.kind() != Conflict.Kind.UPDATE_UPDATE || c.base() == null || c.siteRow() == null || c.hubRow() == null) {
            return lastWriter(c);
        }
        boolean siteLater = siteIsLater(c);
        Map<String, Object> merged = new LinkedHashMap<>(c.hubRow());
        for (Map.Entry<String, Object> e : c.siteRow().entrySet()) {
            String col = e.getKey();
            if (!merged.containsKey(col)) {
                continue;
            }
            boolean siteChanged = !Rows.same(e.getValue(), c.base().get(col));
            boolean hubChanged = !Rows.same(merged.get(col), c.base().get(col));
            if (siteChanged && (!hubChanged || siteLater)) {
                merged.put(col, e.getValue());
            }
        }
        return new Decision(merged, "merge", false);
    }

    private static boolean equal(Map<String, Object> a, Map<String, Object> b) {
        return a != null && b != null && Rows.sameWhereBoth(a, b) && Rows.sameWhereBoth(b, a);
    }
}
