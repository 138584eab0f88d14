package io.syncline.engine.files;

import java.util.Objects;

/**
 * One file as a channel knows it: path ('/'-separated, relative to the channel's folder), length, modification time
 * (milliseconds since the epoch), POSIX permission bits (-1 where the file system has none) and content hash
 * ({@link ContentHash}).
 */
public record FileMeta(String path, long size, long mtimeMillis, int mode, String hash) {
    public FileMeta {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(hash, "hash");
        if (size < 0) {
            throw new IllegalArgumentException("file '" + path + "': negative size " + size);
        }
        if (!ContentHash.isWellFormed(hash)) {
            throw new IllegalArgumentException("file '" + path + "': content hash '" + hash + "' is not " + ContentHash.DIGITS
                    + " lower-case hex digits");
        }
        if (mode < -1 || mode > 07777) {
            throw new IllegalArgumentException("file '" + path + "': permission bits " + mode + " out of range");
        }
    }

    /** The same content at another path. */
    public FileMeta at(String other) {
        return new FileMeta(other, size, mtimeMillis, mode, hash);
    }
}
