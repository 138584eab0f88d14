package io.syncline.node;

import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

/**
 * The callback of a capture watch: runs a task on the node's tick thread as soon as the database reports a captured
 * commit, once for any number of reports that come while it waits to run. The task returns whether it found something.
 * Where the database reports from inside the transaction, before it commits (H2), a run that found nothing runs again
 * after 1, 2, 4 … 64 ms, so the commit that follows is sealed within milliseconds. Thread-safe.
 */
final class Waker implements Runnable {
    private static final int RETRIES = 7;
    private final ScheduledExecutorService thread;
    private final BooleanSupplier task;
    private final AtomicBoolean queued = new AtomicBoolean();
    private volatile boolean beforeCommit;
    /** Runs again after a run that found nothing (tick thread only). */
    private int attempt;

    Waker(ScheduledExecutorService thread, BooleanSupplier task) {
        this.thread = thread;
        this.task = task;
    }

    /** Whether the watch reports before the commit (set once the watch is known). */
    void reportsBeforeCommit(boolean value) {
        this.beforeCommit = value;
    }

    @Override
    public void run() {
        if (queued.compareAndSet(false, true)) {
            try {
                thread.execute(this::runTask);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                queued.set(false); // the node is closing
            }
        }
    }

    private void runTask() {
        queued.set(false);
        boolean found = task.getAsBoolean();
        if (found || !beforeCommit || attempt >= RETRIES) {
            attempt = 0;
            return;
        }
        try {
            thread.schedule(this::runTask, 1L << attempt++, TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            attempt = 0;
        }
    }
}
