package io.syncline.node;

import java.util.concurrent.TimeUnit;

/**
 * Rung whenever something new is there to send (a channel's batch sealed): long polls read {@link #rung()} before they
 * look, and if they found nothing wait for a ring after it. Thread-safe.
 */
final class Bell {
    private long rung;

    synchronized void ring() {
        rung++;
        notifyAll();
    }

    synchronized long rung() {
        return rung;
    }

    /** Waits until rung after {@code seen} or until {@code deadlineNanos} (System.nanoTime), whichever comes first. */
    synchronized void awaitAfter(long seen, long deadlineNanos) throws InterruptedException {
        while (rung == seen) {
            long left = deadlineNanos - System.nanoTime();
            if (left <= 0) {
                return;
            }
            TimeUnit.NANOSECONDS.timedWait(this, left);
        }
    }
}
