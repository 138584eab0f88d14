package io.syncline.engine.capture;

import io.syncline.api.ChannelSpec;
import io.syncline.api.SyncException;
import io.syncline.api.TableSpec;
import io.syncline.engine.dialect.Dialect;
import io.syncline.engine.load.InitialLoadState;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.schema.TableMeta;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Installs and upgrades capture triggers for the tables of the channels a node sends. A trigger is
 * (re)installed when the table's schema signature differs from the one recorded in
 * {@code sync_trigger_hist}, so adding a column upgrades capture at the next start or config refresh.
 * Not thread-safe: one installer per node, called from its lifecycle thread.
 */
public final class CaptureInstaller {
    private static final Logger LOG = LoggerFactory.getLogger(CaptureInstaller.class);
    private final Dialect dialect;
    private final Clock clock;

    public CaptureInstaller(Dialect dialect, Clock clock) {
        this.dialect = dialect;
        this.clock = clock;
    }

    /**
     * Ensures capture on every table of {@code channels}, in one transaction.
     *
     * @return tables whose capture was newly installed; an initial load of each is recorded as pending in the same transaction
     * @throws SyncException (CONFIG) naming every table that is missing or has no primary key
     */
    public List<String> install(Connection c, List<ChannelSpec> channels) throws SQLException {
        SyncSchema.install(c, dialect);
        return reconcile(c, channels);
    }

    /**
     * {@link #install} without creating Syncline's own tables, for the periodic check: when no table changed it runs
     * only reads, and takes no lock that a writer would wait for.
     */
    public List<String> reconcile(Connection c, List<ChannelSpec> channels) throws SQLException {
        List<String> problems = new ArrayList<>();
        List<TableMeta> metas = new ArrayList<>();
        List<String> channelOf = new ArrayList<>();
        for (ChannelSpec ch : channels) {
            for (TableSpec t : ch.tables()) {
                TableMeta meta = SchemaReader.tryRead(c, t.name());
                if (meta == null) {
                    problems.add("table '" + t.name() + "' (channel '" + ch.name() + "') does not exist");
                } else if (meta.primaryKey().isEmpty()) {
                    problems.add("table '" + t.name() + "' (channel '" + ch.name() + "') has no primary key");
                } else {
                    metas.add(meta);
                    channelOf.add(ch.name());
                }
            }
        }
        if (!problems.isEmpty()) {
            c.rollback();
            throw new SyncException(SyncException.Stage.CONFIG, "cannot capture: " + String.join("; ", problems)
                    + ". Syncline needs every synced table to exist and have a primary key.");
        }
        List<String> fresh = new ArrayList<>();
        for (int i = 0; i < metas.size(); i++) {
            TableMeta meta = metas.get(i);
            String channel = channelOf.get(i);
            String signature = channel + "#" + dialect.captureVersion() + "#" + meta.signature();
            String installed = installedSignature(c, meta.name());
            if (signature.equals(installed)) {
                continue;
            }
            // The trigger first: on H2 its DDL commits at once, so the record below must not be committed before it
            // exists (a crash in between then just installs it again at the next start, with its initial load).
            dialect.installCapture(c, channel, meta);
            recordSignature(c, meta.name(), channel, signature, installed != null);
            boolean gained = installed != null && gainedColumns(installed, signature);
            LOG.info("capture {} on table {} (channel {}){}", installed == null ? "installed" : "upgraded", meta.name(), channel,
                    gained ? ": it gained columns, so it is loaded again" : "");
            String table = meta.name().toLowerCase(Locale.ROOT);
            if (installed == null || gained) {
                // A new table, or one whose rows written between the ALTER TABLE and this upgrade lack the new columns.
                SyncSchema.putState(c, InitialLoadState.key(channel, table), InitialLoadState.START);
            }
            if (installed == null) {
                fresh.add(table);
            }
        }
        removeUnconfigured(c, metas);
        c.commit();
        return fresh;
    }

    /*
     * A table taken out of every channel stops being captured at once, and its changes not yet delivered are
     * dropped: the hub no longer accepts them, and keeping them would block the channel behind them.
     */
    private void removeUnconfigured(Connection c, List<TableMeta> configured) throws SQLException {
        java.util.Set<String> keep = new java.util.HashSet<>();
        for (TableMeta m : configured) {
            keep.add(m.name());
        }
        List<String[]> gone = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT table_name, channel FROM sync_trigger_hist");
             ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                if (!keep.contains(rs.getString(1))) {
                    gone.add(new String[] {rs.getString(1), rs.getString(2)});
                }
            }
        }
        for (String[] g : gone) {
            TableMeta meta = SchemaReader.tryRead(c, g[0]);
            if (meta != null) {
                dialect.dropCapture(c, meta);
            }
            String key = g[0].toLowerCase(Locale.ROOT);
            dialect.discardCaptured(c, key);
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_trigger_hist WHERE table_name = ?")) {
                ps.setString(1, g[0]);
                ps.executeUpdate();
            }
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_state WHERE k = ?")) {
                ps.setString(1, InitialLoadState.key(g[1], key));
                ps.executeUpdate();
            }
            LOG.info("capture removed from table {} (no longer in any channel); its undelivered changes were dropped", g[0]);
        }
    }

    /** True when {@code now} lists a column that {@code before} did not (signatures are "...|key:type|...|pk:..."). */
    static boolean gainedColumns(String before, String now) {
        java.util.Set<String> old = columnKeys(before);
        return columnKeys(now).stream().anyMatch(k -> !old.contains(k));
    }

    private static java.util.Set<String> columnKeys(String signature) {
        String columns = signature.contains("|pk") ? signature.substring(0, signature.lastIndexOf("|pk")) : signature;
        java.util.Set<String> keys = new java.util.HashSet<>();
        String[] parts = columns.split("\\|");
        for (int i = 1; i < parts.length; i++) {
            keys.add(parts[i].substring(0, Math.max(0, parts[i].lastIndexOf(':'))));
        }
        return keys;
    }

    private static String installedSignature(Connection c, String table) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT signature FROM sync_trigger_hist WHERE table_name = ?")) {
            ps.setString(1, table);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getString(1) : null;
            }
        }
    }

    private void recordSignature(Connection c, String table, String channel, String signature, boolean exists) throws SQLException {
        String sql = exists
                ? "UPDATE sync_trigger_hist SET channel = ?, signature = ?, installed_at = ? WHERE table_name = ?"
                : "INSERT INTO sync_trigger_hist (channel, signature, installed_at, table_name) VALUES (?, ?, ?, ?)";
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setString(1, channel);
            ps.setString(2, signature);
            ps.setObject(3, OffsetDateTime.ofInstant(clock.instant(), ZoneOffset.UTC));
            ps.setString(4, table);
            ps.executeUpdate();
        }
    }
}
