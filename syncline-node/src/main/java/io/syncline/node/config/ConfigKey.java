package io.syncline.node.config;

import java.util.Set;

/**
 * One configuration key, defined once: its path in the YAML file, type, default, which roles use it and
 * its documentation. {@code docs/configuration.md} is generated from these definitions
 * ({@link ConfigDocs}), so the reference cannot drift from the code.
 *
 * <p>Paths use {@code []} for "every element of a list" and {@code *} for "any map key".
 */
public record ConfigKey(String path, Type type, String defaultValue, boolean required, Set<Role> roles, String doc) {
    /** Value types, each with its own validation. */
    public enum Type { STRING, SECRET, INT, DURATION, HOST, PORT, URL, ENUM_MODE, ENUM_DIRECTION, ENUM_POLICY, NAME, ROUTE, LIST, MAP }

    /** Which node roles read a key. */
    public enum Role { HUB, SITE }
}
