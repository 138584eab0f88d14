package io.syncline.api;

/**
 * A batch whose number is not the next one the target expects. The sender resends from the acknowledged number.
 * A type of its own so that receivers can tell it from other bad batches without reading the message.
 */
public class OutOfOrderBatchException extends BadBatchException {
    public OutOfOrderBatchException(Stage stage, String message) {
        super(stage, message);
    }
}
