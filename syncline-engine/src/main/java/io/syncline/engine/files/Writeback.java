package io.syncline.engine.files;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/*
 * Writes a file being received and has the disk write it back while more arrives: after every STEP bytes, the file's
 * data is flushed (fdatasync) on the shared thread syncline-file-writeback while the receiver goes on writing, so the
 * flush the file needs before its rename (FileFolder.receive) finds little left to do instead of the whole file. Each
 * file has at most one such flush under way; a receiver that writes faster than the disk simply skips steps. This
 * only moves work earlier: the final flush is what makes the file durable. An early flush that fails fails the file
 * (check()): Linux reports a failed write-back once, so the final flush might not see it again.
 */
final class Writeback extends FilterOutputStream {
    /** Bytes between early flushes: small files never start one. */
    static final long STEP = 32L << 20;
    private static final ExecutorService FLUSHER = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "syncline-file-writeback");
        t.setDaemon(true);
        return t;
    });
    private final Flush flush;
    private long unflushed;
    private Future<?> pending;
    private int started;
    private IOException failed;

    /** Flushes the file's data written so far to disk (for a file channel: {@code () -> ch.force(false)}). */
    @FunctionalInterface
    interface Flush {
        void force() throws IOException;
    }

    Writeback(OutputStream out, Flush flush) {
        super(out);
        this.flush = flush;
    }

    @Override
    public void write(int b) throws IOException {
        out.write(b);
        wrote(1);
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        out.write(b, off, len);
        wrote(len);
    }

    private void wrote(long n) throws IOException {
        unflushed += n;
        if (unflushed >= STEP && (pending == null || pending.isDone())) {
            settle();
            out.flush(); // what is buffered reaches the file first
            unflushed = 0;
            started++;
            pending = FLUSHER.submit(() -> {
                flush.force();
                return null;
            });
        }
    }

    /** How many early flushes this file has had started. */
    int started() {
        return started;
    }

    /** Waits for the early flush under way, if any (before the file's channel is closed or flushed for good). */
    void settle() {
        Future<?> f = pending;
        if (f == null) {
            return;
        }
        pending = null;
        try {
            f.get();
        } catch (ExecutionException e) {
            if (failed == null) {
                failed = e.getCause() instanceof IOException io ? io : new IOException("flushing the file to disk failed", e.getCause());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Throws when an early flush failed: what was written may not be on disk, whatever the final flush says. */
    void check() throws IOException {
        settle();
        if (failed != null) {
            throw failed;
        }
    }
}
