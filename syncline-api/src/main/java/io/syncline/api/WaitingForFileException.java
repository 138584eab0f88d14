package io.syncline.api;

/**
 * A batch holds a row that references a file (a table's {@code files} column) whose content is not at the target yet:
 * nothing of the batch was applied, and it is applied again once the file has arrived (docs/files.md, "Rows and files
 * together"). Only the batch's source and channel wait; other channels and sources go on.
 */
public final class WaitingForFileException extends RetriableSyncException {
    private final String fileChannel;
    private final String path;

    public WaitingForFileException(String message, String fileChannel, String path) {
        super(Stage.APPLY, message);
        this.fileChannel = fileChannel;
        this.path = path;
    }

    /** The file channel of the file waited for. */
    public String fileChannel() {
        return fileChannel;
    }

    /** The file's path in its channel, as the row holds it. */
    public String path() {
        return path;
    }
}
