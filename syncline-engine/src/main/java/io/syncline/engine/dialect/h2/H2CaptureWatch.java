package io.syncline.engine.dialect.h2;

import io.syncline.engine.capture.CaptureWatch;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.h2.engine.Database;
import org.h2.engine.SessionLocal;
import org.h2.jdbc.JdbcConnection;

/**
 * In-process: the capture trigger ({@link H2CaptureTrigger}) runs in the JVM that opened the database, and calls every
 * watch registered for that database (by identity of H2's {@code Database}). It calls from inside the writing
 * transaction, before it commits, so {@link #callsBeforeCommit()} is true. A database opened in another process (H2
 * server mode) is not seen: its nodes seal every {@code capture.interval}.
 */
final class H2CaptureWatch implements CaptureWatch {
    private static final Map<Database, List<Runnable>> WATCHERS = new ConcurrentHashMap<>();

    private final Database database;
    private final Runnable onChange;

    private H2CaptureWatch(Database database, Runnable onChange) {
        this.database = database;
        this.onChange = onChange;
        WATCHERS.computeIfAbsent(database, d -> new CopyOnWriteArrayList<>()).add(onChange);
    }

    /** A watch of the database {@code c} is connected to, or null when it is not open in this process. */
    static H2CaptureWatch of(Connection c, Runnable onChange) throws SQLException {
        Database db = database(c);
        return db == null ? null : new H2CaptureWatch(db, onChange);
    }

    /** The database of an embedded connection; null for a remote one. */
    static Database database(Connection c) throws SQLException {
        JdbcConnection jdbc = c.unwrap(JdbcConnection.class);
        return jdbc.getSession() instanceof SessionLocal local ? local.getDatabase() : null;
    }

    /** Called by the capture trigger for every row it captures: wakes the watches of that database. */
    static void captured(Database db) {
        List<Runnable> watchers = db == null ? null : WATCHERS.get(db);
        if (watchers != null) {
            for (Runnable r : watchers) {
                r.run();
            }
        }
    }

    @Override
    public boolean callsBeforeCommit() {
        return true;
    }

    @Override
    public void close() {
        WATCHERS.computeIfPresent(database, (d, list) -> {
            list.remove(onChange);
            return list.isEmpty() ? null : list;
        });
    }
}
