package io.syncline.engine.dialect.postgres;

import io.syncline.engine.capture.CaptureWatch;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * LISTEN on {@link #CHANNEL}: the capture triggers notify it in every transaction that captured rows, and PostgreSQL
 * delivers the notification when (and only if) that transaction commits. One thread ({@code syncline-<name>-watch})
 * holds a connection of its own, outside the pool; when the connection fails it opens another (waiting 0.1 s, doubling
 * to 10 s), and calls once on every (re)connect, for what was committed while nobody listened.
 */
final class PostgresCaptureWatch implements CaptureWatch {
    private static final Logger LOG = LoggerFactory.getLogger(PostgresCaptureWatch.class);
    /** The notification channel of the capture triggers. */
    static final String CHANNEL = "syncline_capture";

    private final CaptureWatch.ConnectionSource source;
    private final Runnable onChange;
    private final String name;
    private final Thread thread;
    private volatile boolean closed;
    private volatile Connection current;

    PostgresCaptureWatch(CaptureWatch.ConnectionSource source, String name, Runnable onChange) {
        this.source = source;
        this.onChange = onChange;
        this.name = name;
        this.thread = new Thread(this::run, "syncline-" + name + "-watch");
        thread.setDaemon(true);
        thread.start();
    }

    @Override
    public boolean callsBeforeCommit() {
        return false;
    }

    private void run() {
        long waitMillis = 100;
        while (!closed) {
            try (Connection c = source.open()) {
                current = c;
                if (closed) {
                    return;
                }
                c.setAutoCommit(true);
                try (Statement s = c.createStatement()) {
                    s.execute("LISTEN " + CHANNEL);
                }
                waitMillis = 100;
                onChange.run(); // whatever committed while nobody listened
                PGConnection pg = c.unwrap(PGConnection.class);
                long quietSince = System.nanoTime();
                while (!closed) {
                    PGNotification[] got = pg.getNotifications(1000);
                    if (got != null && got.length > 0) {
                        onChange.run();
                        quietSince = System.nanoTime();
                    } else if (System.nanoTime() - quietSince > TimeUnit.SECONDS.toNanos(30)) {
                        // A connection cut without a reset (a partition) would wait for notifications for ever: ask.
                        try (Statement s = c.createStatement()) {
                            s.setQueryTimeout(10);
                            s.execute("SELECT 1");
                        }
                        quietSince = System.nanoTime();
                    }
                }
            } catch (SQLException | RuntimeException e) {
                if (closed) {
                    return;
                }
                LOG.warn("{}: listening for captured changes failed ({}); sealing every capture.interval until it listens again in {} ms",
                        name, e.getMessage(), waitMillis);
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(waitMillis));
                waitMillis = Math.min(10_000, waitMillis * 2);
            } finally {
                current = null;
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        Connection c = current;
        if (c != null) {
            try {
                c.close(); // ends a blocked getNotifications
            } catch (SQLException ignored) {
                // closing anyway
            }
        }
        thread.interrupt();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
