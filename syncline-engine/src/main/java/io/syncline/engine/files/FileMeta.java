package io.syncline.engine.files;

import java.util.Objects;

/**
 * One file as a channel knows it: path ('/'-separated, relative to the channel's folder), length, modification time
 * (milliseconds since the epoch), POSIX permission bits (-1 where the file system has none) and content hash
 * (SHA-256, lower-case hex).
 */
public record FileMeta(String path, long size, long mtimeMillis, int mode, String sha256) {
    public FileMeta {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(sha256, "sha256");
        if (size < 0) {
            throw new IllegalArgumentException("file '" + path + "': negative size " + size);
        }
        if (!sha256.matches("[0-9a-f]{64}")) {
            throw new IllegalArgumentException("file '" + path + "': content hash '" + sha256 + "' is not 64 lower-case hex digits");
        }
        if (mode < -1 || mode > 07777) {
            throw new IllegalArgumentException("file '" + path + "': permission bits " + mode + " out of range");
        }
    }

    /** The same content at another path. */
    public FileMeta at(String other) {
        return new FileMeta(other, size, mtimeMillis, mode, sha256);
    }
}
