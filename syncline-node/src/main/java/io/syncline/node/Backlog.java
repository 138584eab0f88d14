package io.syncline.node;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A source's backlog as carried in the {@code Syncline-Backlog} header. The age is measured by the source's
 * own clock, so the hub's lag figure does not depend on the two clocks agreeing.
 */
record Backlog(long rows, long batches, long oldestAgeMs) {
    private static final Pattern FORMAT = Pattern.compile("rows=(\\d+); batches=(\\d+); oldestAgeMs=(\\d+)");
    static final Backlog NONE = new Backlog(0, 0, 0);

    String header() {
        return "rows=" + rows + "; batches=" + batches + "; oldestAgeMs=" + oldestAgeMs;
    }

    /** Parses the header; null or malformed gives null (the backlog is informational). */
    static Backlog parse(String header) {
        if (header == null) {
            return null;
        }
        Matcher m = FORMAT.matcher(header.trim());
        return m.matches() ? new Backlog(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Long.parseLong(m.group(3))) : null;
    }

    Backlog plus(Backlog o) {
        return new Backlog(rows + o.rows, batches + o.batches, Math.max(oldestAgeMs, o.oldestAgeMs));
    }
}
