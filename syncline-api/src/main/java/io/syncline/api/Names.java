package io.syncline.api;

import java.util.regex.Pattern;

/** Validation of node, channel, table and column identifiers. */
public final class Names {
    private static final Pattern VALID = Pattern.compile("[A-Za-z_][A-Za-z0-9_\\-]{0,62}");

    private Names() {
    }

    /** Returns true when {@code name} is a valid identifier: a letter or underscore, then letters, digits, '_' or '-', at most 63 characters. */
    public static boolean isValid(String name) {
        return name != null && VALID.matcher(name).matches();
    }

    /**
     * Returns {@code name} if it is valid.
     *
     * @throws IllegalArgumentException naming {@code what} and the bad value otherwise
     */
    public static String requireValid(String what, String name) {
        if (!isValid(name)) {
            throw new IllegalArgumentException(what + " '" + name + "' is not a valid name: use letters, digits, '_' or '-', "
                    + "starting with a letter or '_', at most 63 characters");
        }
        return name;
    }
}
