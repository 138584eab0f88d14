package io.syncline.api;

/** The one-letter operation codes used in outbox rows and on the wire. */
public enum ChangeOp {
    INSERT('I'), UPDATE('U'), DELETE('D'), RELOAD('R'),
    /** Not a row: a hub's mark, in a two-way channel, of where a site's batch took effect ({@link Change.Mark}). */
    MARK('M'),
    /** Not a row: a site's request, in a two-way channel, that the hub send a row again ({@link Change.Refresh}). */
    REFRESH('K');

    private final char code;

    ChangeOp(char code) {
        this.code = code;
    }

    /** The single-character code stored in the outbox and written on the wire. */
    public char code() {
        return code;
    }

    /**
     * Parses an operation code.
     *
     * @throws IllegalArgumentException naming the code when it is not one of I, U, D, R, M, K
     */
    public static ChangeOp ofCode(String code) {
        if (code != null && code.length() == 1) {
            for (ChangeOp op : values()) {
                if (op.code == code.charAt(0)) {
                    return op;
                }
            }
        }
        throw new IllegalArgumentException("unknown change operation code '" + code + "' (expected I, U, D, R, M or K)");
    }
}
