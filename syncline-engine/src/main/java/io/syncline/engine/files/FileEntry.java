package io.syncline.engine.files;

/**
 * One change of a file channel as it travels (docs/protocol.md, "Files"): the file at {@code path} now has the content
 * and attributes given, or is deleted. {@code from}: a path whose file had this content and is gone, so the receiver
 * can move its copy instead of receiving the content again. {@code seq} orders a source's changes; the receiver keeps
 * the last one it applied.
 */
public record FileEntry(long seq, String path, String from, boolean deleted, long size, long mtime, int mode, String sha256) {
    /** The file's state (not for deletions). */
    public FileMeta meta() {
        return new FileMeta(path, size, mtime, mode, sha256);
    }
}
