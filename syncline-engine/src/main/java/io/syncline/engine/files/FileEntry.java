package io.syncline.engine.files;

/**
 * One change of a file channel as it travels (docs/protocol.md, "Files"): the file at {@code path} now has the content
 * and attributes given, or is deleted. {@code from}: a path whose file had this content and is gone, so the receiver
 * can move its copy instead of receiving the content again. {@code seq} orders a source's changes; the receiver keeps
 * the last one it applied. {@code base}: in a two-way channel, the content ({@link ContentHash}) the sender last had in common with
 * the hub at this path, which its change replaces (null: none, a new file); the hub takes a change whose base is not
 * what it holds as a conflict (docs/files.md, "Two-way").
 */
public record FileEntry(long seq, String path, String from, boolean deleted, long size, long mtime, int mode, String hash, String base) {
    public FileEntry(long seq, String path, String from, boolean deleted, long size, long mtime, int mode, String hash) {
        this(seq, path, from, deleted, size, mtime, mode, hash, null);
    }

    /** The file's state (not for deletions). */
    public FileMeta meta() {
        return new FileMeta(path, size, mtime, mode, hash);
    }
}
