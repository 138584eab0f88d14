package io.syncline.node.config;

import io.syncline.api.SyncException;

/** A configuration that cannot be used. The message names the offending key. */
public final class ConfigException extends SyncException {
    public ConfigException(String message) {
        super(Stage.CONFIG, message);
    }
}
