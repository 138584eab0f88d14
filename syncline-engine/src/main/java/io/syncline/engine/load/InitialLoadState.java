package io.syncline.engine.load;

/** Keys and values of initial-load progress in {@code sync_state}. */
public final class InitialLoadState {
    /** Prefix of every load key: {@code load.<channel>.<table>}. */
    public static final String PREFIX = "load.";
    /** Value of a load that has not sent any chunk yet. */
    public static final String START = "{}";
    /** Value of a finished load. */
    public static final String DONE = "done";

    private InitialLoadState() {
    }

    public static String key(String channel, String table) {
        return PREFIX + channel + "." + table;
    }
}
