package io.syncline.api;

/**
 * A file path from another node that would reach outside the channel's folder, or that is not a plain relative path:
 * absolute, with a {@code ..} or {@code .} segment, empty segments, a backslash, a control character, Syncline's own
 * working folder, or a way through a symbolic link. Nothing is written for it.
 */
public class UnsafePathException extends BadBatchException {
    public UnsafePathException(String message) {
        super(Stage.APPLY, message);
    }
}
