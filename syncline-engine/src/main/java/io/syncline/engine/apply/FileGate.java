package io.syncline.engine.apply;

import java.nio.file.Path;

/**
 * Where this node keeps the files that rows reference (a table's {@code files} columns): the node's part of "rows and
 * files together" (docs/files.md). Thread-safe.
 */
@FunctionalInterface
public interface FileGate {
    /**
     * Where file {@code path} (already checked safe) of file channel {@code fileChannel}, as sent by node {@code source},
     * is at this node once it has arrived; null when this node does not take that file channel from that source, so a
     * row does not wait for it.
     */
    Path locate(String source, String fileChannel, String path);
}
