package io.syncline.tests;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A steady writer on a site's database, in a thread of the test JVM: a bounded number of transactions, each
 * inserting a new {@code item}, and some also updating, deleting or re-keying an earlier one. It writes
 * straight to PostgreSQL, so it keeps committing while the site process is down (capture is a trigger).
 */
public final class SiteWriter implements AutoCloseable {
    private final String url;
    private final String table;
    private final int transactions;
    private final long pauseMicros;
    private final Random random;
    private final AtomicInteger committed = new AtomicInteger();
    private final AtomicReference<Throwable> error = new AtomicReference<>();
    private volatile boolean stop;
    private final Thread thread;

    /** {@code transactions} transactions with {@code pause} between two; {@code seed} makes the mix repeatable. */
    public SiteWriter(String url, int transactions, Duration pause, long seed) {
        this(url, "item", transactions, pause, seed);
    }

    /** The same on another table with the columns of {@link Db#SITE_ITEM} (for a writer at the hub, say). */
    public SiteWriter(String url, String table, int transactions, Duration pause, long seed) {
        this.url = url;
        this.table = table;
        this.transactions = transactions;
        this.pauseMicros = pause.toNanos() / 1000;
        this.random = new Random(seed);
        this.thread = new Thread(this::run, "site-writer");
        thread.setDaemon(true);
    }

    public SiteWriter start() {
        thread.start();
        return this;
    }

    public int committed() {
        return committed.get();
    }

    private void run() {
        try (Connection c = PgServer.connect(url)) {
            c.setAutoCommit(false);
            try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + table + " (id, name, qty, price) VALUES (?, ?, ?, ?)");
                 PreparedStatement upd = c.prepareStatement("UPDATE " + table + " SET qty = qty + 1, name = ?, updated_at = now() WHERE id = ?");
                 PreparedStatement del = c.prepareStatement("DELETE FROM " + table + " WHERE id = ?");
                 PreparedStatement rekey = c.prepareStatement("UPDATE " + table + " SET id = id + 10000000 WHERE id = ?")) {
                for (int n = 1; n <= transactions && !stop; n++) {
                    ins.setLong(1, n);
                    ins.setString(2, "item " + n);
                    ins.setInt(3, random.nextInt(100));
                    ins.setBigDecimal(4, java.math.BigDecimal.valueOf(random.nextInt(100_000), 2));
                    ins.executeUpdate();
                    if (n > 10 && n % 3 == 0) {
                        upd.setString(1, "updated in tx " + n);
                        upd.setLong(2, 1 + random.nextInt(n - 1));
                        upd.executeUpdate();
                    }
                    if (n > 10 && n % 10 == 0) {
                        del.setLong(1, 1 + random.nextInt(n - 1));
                        del.executeUpdate();
                    }
                    if (n > 10 && n % 50 == 0) {
                        rekey.setLong(1, 1 + random.nextInt(n - 1));
                        rekey.executeUpdate();
                    }
                    c.commit();
                    committed.incrementAndGet();
                    if (pauseMicros > 0) {
                        Thread.sleep(pauseMicros / 1000, (int) (pauseMicros % 1000) * 1000);
                    }
                }
            }
        } catch (SQLException | RuntimeException e) {
            error.set(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Waits (bounded) for the writer to finish all its transactions; rethrows its failure. */
    public void awaitDone(Duration atMost) throws InterruptedException {
        thread.join(atMost.toMillis());
        if (thread.isAlive()) {
            throw new AssertionError("writer still running after " + atMost + " (" + committed() + " of " + transactions + " committed)");
        }
        if (error.get() != null) {
            throw new AssertionError("writer failed after " + committed() + " transactions", error.get());
        }
        if (committed() != transactions) {
            throw new AssertionError("writer committed " + committed() + " of " + transactions);
        }
    }

    @Override
    public void close() throws InterruptedException {
        stop = true;
        thread.join(10_000);
    }
}
