package io.syncline.engine.files;

import io.syncline.engine.schema.SyncSchema;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/*
 * The sending side of a file channel, in the node's database (table sync_file): one row per path with the file's state
 * as last recorded and the number (seq) of its last change. What the receiver has not acknowledged are the rows with a
 * higher seq than its acknowledgement, so a file changed five times before it is sent travels once, as it is now. A
 * deleted file stays as a tombstone until the receiver acknowledges it. A move records the new path first and the
 * tombstone of the old one after it, so the receiver still has the old file to move when it reads the move. Numbers
 * come from a counter in sync_state that never goes back, even when the rows with the highest numbers are purged.
 * The caller runs each method in its transaction and serializes writers of one channel; only recordWalk with
 * {@code committed} commits on the caller's connection itself (portions of new files, as it finds them).
 */
public final class FileOutbox {
    private static final String NEXT = "files.seq.";
    private static final String ACKED = "files.acked.";
    private static final String OFFERED = "files.offered.";

    private FileOutbox() {
    }

    /** Every file recorded and not deleted, by path. */
    public static Map<String, FileMeta> known(Connection c, String channel) throws SQLException {
        return known(c, channel, null);
    }

    /**
     * As {@link #known(Connection, String)}, with at least the files in the folders {@code under} (relative paths, at any
     * depth, at least one; null: all). The database narrows by prefix; it may give more (a case-blind LIKE), which the
     * scanner leaves out.
     */
    private static Map<String, FileMeta> known(Connection c, String channel, List<String> under) throws SQLException {
        Map<String, FileMeta> out = new HashMap<>();
        StringBuilder sql = new StringBuilder("SELECT path, size, mtime, mode, content_hash FROM sync_file WHERE channel = ? AND deleted = FALSE");
        if (under != null) {
            sql.append(" AND (").append(String.join(" OR ", java.util.Collections.nCopies(under.size(), "path LIKE ? ESCAPE '!'"))).append(')');
        }
        try (PreparedStatement ps = c.prepareStatement(sql.toString())) {
            ps.setString(1, channel);
            for (int i = 0; under != null && i < under.size(); i++) {
                ps.setString(i + 2, under.get(i).replace("!", "!!").replace("%", "!%").replace("_", "!_") + "/%");
            }
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.put(rs.getString(1), new FileMeta(rs.getString(1), rs.getLong(2), rs.getLong(3), rs.getInt(4), rs.getString(5)));
                }
            }
        }
        return out;
    }

    /** Walks a folder with {@code scanner} against what is recorded and records the changes; returns how many. */
    public static int recordWalk(Connection c, String channel, FileScanner scanner, long nowMillis,
                                 java.util.function.Consumer<String> unsyncable) throws SQLException, java.io.IOException {
        return recordWalk(c, channel, scanner, nowMillis, unsyncable, false);
    }

    /**
     * As {@link #recordWalk(Connection, String, FileScanner, long, java.util.function.Consumer)}; with
     * {@code forgetUnmatched} (two-way channels), a recorded file that is still there but that the channel's patterns no
     * longer take is forgotten rather than recorded as deleted: narrowing the patterns must not delete it everywhere.
     */
    public static int recordWalk(Connection c, String channel, FileScanner scanner, long nowMillis,
                                 java.util.function.Consumer<String> unsyncable, boolean forgetUnmatched)
            throws SQLException, java.io.IOException {
        return recordWalk(c, channel, scanner, nowMillis, unsyncable, forgetUnmatched, null);
    }

    /**
     * As above, walking only the folders {@code under} (relative paths, each with everything below it; null: the whole
     * folder; empty: nothing), the only ones the caller changed (FileScanner.scan).
     */
    public static int recordWalk(Connection c, String channel, FileScanner scanner, long nowMillis,
                                 java.util.function.Consumer<String> unsyncable, boolean forgetUnmatched, List<String> under)
            throws SQLException, java.io.IOException {
        return recordWalk(c, channel, scanner, nowMillis, unsyncable, forgetUnmatched, under, null);
    }

    /** A walk of heard folders that finds this many bytes gone (and not elsewhere in them) walks the whole folder. */
    static final long WIDEN_FOR_BYTES = 1L << 20;

    /**
     * As above. With {@code held} (not null), {@code under} are the folders the file system said something changed in,
     * and a file gone from them may have moved to a folder it has not named yet: a move's two ends heard in different
     * bursts. A move is only found (and its content not sent again) when both its ends are in one walk, so a file found
     * gone and not elsewhere under them is not recorded as deleted at once:
     * <ul>
     * <li>gone files of {@link #WIDEN_FOR_BYTES} or more together: the whole folder is walked instead (the files just
     * hashed are not read again);</li>
     * <li>fewer: their paths are put in {@code held} and left as they were recorded. The caller walks their folders
     * again, with the folders heard of meanwhile, passing the same set: a path that is in it as the walk starts and is
     * still gone (and not moved) is recorded as deleted then.</li>
     * </ul>
     * On return, {@code held} has the paths this walk held back, and those it did not look at (none after a whole
     * walk); after an exception, it is undefined, and the next walk must be a whole one. Null: {@code under} are the
     * folders the caller changed itself, looked at exactly.
     */
    public static int recordWalk(Connection c, String channel, FileScanner scanner, long nowMillis,
                                 java.util.function.Consumer<String> unsyncable, boolean forgetUnmatched, List<String> under,
                                 java.util.Set<String> held) throws SQLException, java.io.IOException {
        return recordWalk(c, channel, scanner, nowMillis, unsyncable, forgetUnmatched, under, held, null);
    }

    /** The new files a walk records and commits before it ends, at a time (see recordWalk's {@code committed}). */
    static final int EARLY_PORTION = 512;

    /**
     * As above. With {@code committed} (not null), a whole walk ({@code under} null) that is not forgetting unmatched
     * files records new files as it finds them, {@link #EARLY_PORTION} at a time, each portion committed on {@code c}
     * and then told to {@code committed} (the caller can send them while the walk goes on), rather than all at its
     * end. Only files that cannot be part of another change are recorded so: no recorded file has their content (it
     * could be a move's new end), their path or a folder of it (ignoring case) is no recorded file's, and no recorded
     * file is below their path (the deletion that makes room for them comes at the end, and must be applied first).
     * Each such portion is true whatever the rest of the walk finds: after an exception, it stays recorded. Not while a
     * record predates content hashes (its walk marks what was sent as hashed by number, which early numbers would
     * upset).
     */
    public static int recordWalk(Connection c, String channel, FileScanner scanner, long nowMillis,
                                 java.util.function.Consumer<String> unsyncable, boolean forgetUnmatched, List<String> under,
                                 java.util.Set<String> held, Runnable committed) throws SQLException, java.io.IOException {
        return recordWalk(c, channel, scanner, nowMillis, unsyncable, forgetUnmatched, under, held, committed, null);
    }

    /**
     * As above; {@code content} (or null): where the content of the small new files recorded early is kept, as the walk
     * read it to hash it, for the sender (see FreshContent).
     */
    public static int recordWalk(Connection c, String channel, FileScanner scanner, long nowMillis,
                                 java.util.function.Consumer<String> unsyncable, boolean forgetUnmatched, List<String> under,
                                 java.util.Set<String> held, Runnable committed, FreshContent content) throws SQLException, java.io.IOException {
        if (under != null && under.isEmpty()) {
            return 0;
        }
        Map<String, FileMeta> known = known(c, channel, under);
        List<String> warnings = new ArrayList<>(); // told once the walk whose result is kept is known
        Early early = committed != null && under == null && !forgetUnmatched ? new Early(c, channel, known, committed, content) : null;
        List<FileScanner.Change> changes;
        try {
            changes = new ArrayList<>(scanner.scan(known, nowMillis, warnings::add, under, Map.of(), early));
        } catch (Early.Failed e) {
            throw e.getCause();
        }
        if (early != null && !early.recorded.isEmpty()) {
            changes.removeIf(ch -> ch instanceof FileScanner.Put p && early.recorded.contains(p.path()));
        }
        boolean heard = held != null && under != null; // a walk of folders the file system named
        java.util.Set<String> heldBefore = held == null ? java.util.Set.of() : java.util.Set.copyOf(held);
        if (held != null) {
            held.clear();
        }
        if (heard && goneBytes(changes, known) >= WIDEN_FOR_BYTES) {
            Map<String, FileMeta> hashed = new java.util.HashMap<>();
            for (FileScanner.Change ch : changes) {
                FileMeta m = ch instanceof FileScanner.Put p ? p.meta() : ch instanceof FileScanner.Move mv ? mv.to() : null;
                if (m != null) {
                    hashed.put(m.path(), m);
                }
            }
            known = known(c, channel, null);
            changes = new ArrayList<>(scanner.scan(known, nowMillis, unsyncable, null, hashed));
        } else {
            warnings.forEach(unsyncable);
            if (heard) {
                for (java.util.Iterator<FileScanner.Change> it = changes.iterator(); it.hasNext(); ) {
                    if (it.next() instanceof FileScanner.Delete d && !heldBefore.contains(d.path())) {
                        held.add(d.path());
                        it.remove();
                    }
                }
                for (String path : heldBefore) {
                    if (!FileScanner.within(path, under)) {
                        held.add(path); // not looked at by this walk
                    }
                }
            }
        }
        boolean unknown = false;
        long sentBeyond = -1;
        for (java.util.Iterator<FileScanner.Change> it = changes.iterator(); it.hasNext(); ) {
            if (it.next() instanceof FileScanner.Put p && known.get(p.path()) instanceof FileMeta k && k.hash().equals(ContentHash.UNKNOWN)) {
                unknown = true;
                if (k.size() == p.meta().size() && k.mtimeMillis() == p.meta().mtimeMillis() && k.mode() == p.meta().mode()) {
                    if (sentBeyond < 0) {
                        sentBeyond = lastHashed(c, channel);
                    }
                    hashed(c, channel, p.meta(), sentBeyond); // as recorded before content hashes: no change to send
                    it.remove();
                }
            }
        }
        if (forgetUnmatched) {
            for (java.util.Iterator<FileScanner.Change> it = changes.iterator(); it.hasNext(); ) {
                if (it.next() instanceof FileScanner.Delete d && scanner.present(d.path())) {
                    forget(c, channel, d.path());
                    it.remove();
                }
            }
        }
        // Paths with no row at all (not recorded, not even as a tombstone): inserted in one batch, with no update first.
        java.util.Set<String> rowless = new java.util.HashSet<>();
        for (FileScanner.Change ch : changes) {
            if (ch instanceof FileScanner.Put p && !known.containsKey(p.path())) {
                rowless.add(p.path());
            }
        }
        if (!rowless.isEmpty()) {
            rowless.removeAll(early != null ? early.tombstones() : tombstones(c, channel)); // (read once per walk)
        }
        record(c, channel, changes, rowless);
        if (unknown) {
            // A file recorded before content hashes that changed or went since: the content its marked base stood for
            // cannot be named any more (docs/files.md, "Upgrading").
            try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET base_hash = NULL WHERE channel = ? AND base_hash = ? "
                    + "AND (deleted = TRUE OR content_hash <> ?)")) {
                ps.setString(1, channel);
                ps.setString(2, ContentHash.UNKNOWN);
                ps.setString(3, ContentHash.UNKNOWN);
                ps.executeUpdate();
            }
        }
        return changes.size() + (early == null ? 0 : early.recorded.size());
    }

    /** Records a whole walk's new files as it finds them (see recordWalk). */
    private static final class Early implements FileScanner.Fresh {
        /** A failure to record, carried through the scanner. */
        static final class Failed extends java.io.IOException {
            Failed(SQLException cause) {
                super(cause);
            }

            @Override
            public synchronized SQLException getCause() {
                return (SQLException) super.getCause();
            }
        }

        private final Connection c;
        private final String channel;
        private final Map<String, FileMeta> known;
        private final Runnable committed;
        private final FreshContent content;
        /** Content hash and length of every recorded file (null until a new file is found: most walks find none). */
        private java.util.Set<String> contents;
        /** Every recorded file's path, and every folder of one, in lower case. */
        private final java.util.Set<String> files = new java.util.HashSet<>();
        private final java.util.Set<String> folders = new java.util.HashSet<>();
        /** Whether a record predates content hashes: then the walk's end renumbers what it sent (hashed), not early. */
        private boolean off;
        private final List<FileScanner.Change> portion = new ArrayList<>();
        /** The paths recorded and committed. */
        final java.util.Set<String> recorded = new java.util.HashSet<>();
        private java.util.Set<String> tombstones;

        Early(Connection c, String channel, Map<String, FileMeta> known, Runnable committed, FreshContent content) {
            this.c = c;
            this.channel = channel;
            this.known = known;
            this.committed = committed;
            this.content = content;
        }

        @Override
        public FreshContent content() {
            if (contents == null) {
                index(); // (so that off is known before the first new file is read into the ring)
            }
            return off ? null : content;
        }

        private void index() {
            contents = new java.util.HashSet<>();
            for (FileMeta k : known.values()) {
                off |= k.hash().equals(ContentHash.UNKNOWN);
                contents.add(k.hash() + ":" + k.size());
                String path = k.path().toLowerCase(java.util.Locale.ROOT);
                files.add(path);
                for (int i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
                    folders.add(path.substring(0, i));
                }
            }
        }

        @Override
        public void found(FileMeta f, boolean whole) throws Failed {
            if (contents == null) {
                index();
            }
            if (off) {
                return;
            }
            String path = f.path().toLowerCase(java.util.Locale.ROOT);
            if (contents.contains(f.hash() + ":" + f.size()) || files.contains(path) || folders.contains(path)) {
                return;
            }
            for (int i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
                if (files.contains(path.substring(0, i))) {
                    return;
                }
            }
            portion.add(new FileScanner.Put(f));
            if (whole && content != null) {
                content.keep(channel, f); // (taken once the portion is committed and sent)
            }
            if (portion.size() >= EARLY_PORTION) {
                commitPortion();
            }
        }

        private void commitPortion() throws Failed {
            try {
                java.util.Set<String> rowless = new java.util.HashSet<>();
                for (FileScanner.Change ch : portion) {
                    if (!tombstones().contains(ch.path())) {
                        rowless.add(ch.path());
                    }
                }
                record(c, channel, portion, rowless);
                c.commit();
            } catch (SQLException e) {
                throw new Failed(e);
            }
            portion.forEach(ch -> recorded.add(ch.path()));
            portion.clear();
            committed.run();
        }

        /**
         * The channel's tombstones, read once per walk (one the receiver acknowledges meanwhile is gone: its path is then
         * updated, else inserted, as any path with a row).
         */
        java.util.Set<String> tombstones() throws SQLException {
            if (tombstones == null) {
                tombstones = FileOutbox.tombstones(c, channel);
            }
            return tombstones;
        }
    }

    /**
     * Records the changes of files the file system reported modified (content, time or permissions) while nothing was
     * made, moved or deleted around them (FolderWatch): each is looked at alone against its record, rather than walking
     * the folders it is in, so the cost is that of the files changed, not of their folders. A file the patterns leave
     * out and that is not recorded is passed over. Returns how many changes were recorded; -1, having recorded nothing,
     * when one of them is no longer a plain file of the channel (gone, a folder, a link, one with other names: see
     * FileScanner.lookAt), cannot be read, or has a record that predates content hashes: the caller walks their folders.
     */
    public static int recordEdited(Connection c, String channel, FileScanner scanner, long nowMillis, List<String> paths)
            throws SQLException, java.io.IOException {
        List<FileScanner.Change> changes = new ArrayList<>();
        for (String path : paths) {
            Recorded r = recorded(c, channel, path);
            FileMeta known = r == null ? null : r.meta();
            if (known != null && known.hash().equals(ContentHash.UNKNOWN)) {
                return -1;
            }
            if (known == null && !scanner.matches(path)) {
                continue; // left out by the patterns, and not recorded: nothing to record (a swap file, say)
            }
            FileMeta now;
            try {
                now = scanner.lookAt(path, known, nowMillis);
            } catch (java.nio.file.FileSystemException e) {
                return -1; // (not readable, say: the folder walk warns once and keeps the record)
            }
            if (now == null) {
                return -1;
            }
            if (!now.equals(known)) {
                changes.add(new FileScanner.Put(now));
            }
        }
        record(c, channel, changes);
        return changes.size();
    }

    /** The length of the recorded files {@code changes} finds gone (deletions, not moves), all together. */
    private static long goneBytes(List<FileScanner.Change> changes, Map<String, FileMeta> known) {
        long bytes = 0;
        for (FileScanner.Change ch : changes) {
            if (ch instanceof FileScanner.Delete d && known.get(d.path()) instanceof FileMeta k) {
                bytes += k.size();
            }
        }
        return bytes;
    }

    /** The number of the channel's last change whose file has its hash (0: none), as a walk starts. */
    private static long lastHashed(Connection c, String channel) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT MAX(seq) FROM sync_file WHERE channel = ? AND content_hash <> ?")) {
            ps.setString(1, channel);
            ps.setString(2, ContentHash.UNKNOWN);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        }
    }

    /**
     * A file recorded before content hashes (its hash {@link ContentHash#UNKNOWN}) is as it was: its hash is put in
     * place, and in its base when that was the same content, without a new change. Unless changes numbered after it had
     * their hash already ({@code sentBeyond}): then they may have been sent while it was left out (a file that could not
     * be read at the first walk), and it gets a new number, so that its receivers take it after all.
     */
    private static void hashed(Connection c, String channel, FileMeta m, long sentBeyond) throws SQLException {
        Recorded r = recorded(c, channel, m.path());
        if (r != null && r.seq() < sentBeyond) {
            long seq = next(c, channel);
            try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET seq = ? WHERE channel = ? AND path_id = ?")) {
                ps.setLong(1, seq);
                ps.setString(2, channel);
                ps.setString(3, pathId(m.path()));
                ps.executeUpdate();
            }
            SyncSchema.putState(c, NEXT + channel, Long.toString(seq + 1));
        }
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET base_hash = ? WHERE channel = ? AND path_id = ? AND base_hash = ?")) {
            ps.setString(1, m.hash());
            ps.setString(2, channel);
            ps.setString(3, pathId(m.path()));
            ps.setString(4, ContentHash.UNKNOWN);
            ps.executeUpdate();
        }
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET content_hash = ? WHERE channel = ? AND path_id = ?")) {
            ps.setString(1, m.hash());
            ps.setString(2, channel);
            ps.setString(3, pathId(m.path()));
            ps.executeUpdate();
        }
    }

    /** Records what a scan found, each change with the next number. */
    public static void record(Connection c, String channel, List<FileScanner.Change> changes) throws SQLException {
        record(c, channel, changes, java.util.Set.of());
    }

    /** As {@link #record(Connection, String, List)}; {@code rowless}: paths that have no row (inserted in a batch). */
    private static void record(Connection c, String channel, List<FileScanner.Change> changes, java.util.Set<String> rowless)
            throws SQLException {
        if (changes.isEmpty()) {
            return;
        }
        long seq = next(c, channel);
        try (PreparedStatement insert = c.prepareStatement(INSERT)) {
            int batched = 0;
            for (FileScanner.Change ch : changes) {
                if (ch instanceof FileScanner.Put p && rowless.contains(p.path())) {
                    insert(insert, channel, p.meta(), null, seq++, null);
                    insert.addBatch();
                    if (++batched % 1000 == 0) {
                        insert.executeBatch();
                    }
                } else {
                    seq = record(c, channel, ch, seq);
                }
            }
            if (batched % 1000 != 0) {
                insert.executeBatch();
            }
        }
        SyncSchema.putState(c, NEXT + channel, Long.toString(seq));
    }

    /** Records one change from number {@code seq} on; returns the next number. */
    private static long record(Connection c, String channel, FileScanner.Change change, long seq) throws SQLException {
        switch (change) {
            case FileScanner.Put p -> put(c, channel, p.meta(), null, seq++);
            case FileScanner.Move m -> {
                put(c, channel, m.to(), m.from(), seq++);
                tombstone(c, channel, m.from(), seq++);
            }
            case FileScanner.Delete d -> tombstone(c, channel, d.path(), seq++);
        }
        return seq;
    }

    /** The paths of the channel's tombstones (deletions not acknowledged yet). */
    private static java.util.Set<String> tombstones(Connection c, String channel) throws SQLException {
        java.util.Set<String> out = new java.util.HashSet<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT path FROM sync_file WHERE channel = ? AND deleted = TRUE")) {
            ps.setString(1, channel);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(rs.getString(1));
                }
            }
        }
        return out;
    }

    private static void put(Connection c, String channel, FileMeta m, String from, long seq) throws SQLException {
        write(c, channel, m, from, seq, null);
    }

    /** Writes a path's row (updated, else inserted); {@code base}: its new base, or null to keep it (NULL for a new row). */
    private static void write(Connection c, String channel, FileMeta m, String from, long seq, String base) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET path = ?, size = ?, mtime = ?, mode = ?, content_hash = ?, seq = ?, "
                + "deleted = FALSE, moved_from = ?" + (base != null ? ", base_hash = ?" : "") + " WHERE channel = ? AND path_id = ?")) {
            int i = 1;
            ps.setString(i++, m.path());
            ps.setLong(i++, m.size());
            ps.setLong(i++, m.mtimeMillis());
            ps.setInt(i++, m.mode());
            ps.setString(i++, m.hash());
            ps.setLong(i++, seq);
            ps.setString(i++, from);
            if (base != null) {
                ps.setString(i++, base);
            }
            ps.setString(i++, channel);
            ps.setString(i, pathId(m.path()));
            if (ps.executeUpdate() > 0) {
                return;
            }
        }
        try (PreparedStatement ps = c.prepareStatement(INSERT)) {
            insert(ps, channel, m, from, seq, base);
            ps.executeUpdate();
        }
    }

    private static final String INSERT = "INSERT INTO sync_file (channel, path_id, path, size, mtime, mode, content_hash, seq, deleted, "
            + "moved_from, base_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?, ?)";

    private static void insert(PreparedStatement ps, String channel, FileMeta m, String from, long seq, String base) throws SQLException {
        ps.setString(1, channel);
        ps.setString(2, pathId(m.path()));
        ps.setString(3, m.path());
        ps.setLong(4, m.size());
        ps.setLong(5, m.mtimeMillis());
        ps.setInt(6, m.mode());
        ps.setString(7, m.hash());
        ps.setLong(8, seq);
        ps.setString(9, from);
        ps.setString(10, base);
    }


    private static void tombstone(Connection c, String channel, String path, long seq) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET seq = ?, deleted = TRUE, moved_from = NULL WHERE channel = ? AND path_id = ?")) {
            ps.setLong(1, seq);
            ps.setString(2, channel);
            ps.setString(3, pathId(path));
            ps.executeUpdate();
        }
    }

    /** The receiver's acknowledgement: the last change it has (0: none). */
    public static long acknowledged(Connection c, String channel) throws SQLException {
        String v = SyncSchema.getState(c, ACKED + channel);
        return v == null ? 0 : Long.parseLong(v);
    }

    /**
     * Changes after {@code after}, oldest first, at most {@code limit}; without the files recorded before content hashes
     * that no walk has hashed yet (never offered with a hash that names nothing; see {@link #hashed}).
     */
    public static List<FileEntry> pending(Connection c, String channel, long after, int limit) throws SQLException {
        List<FileEntry> out = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT seq, path, moved_from, deleted, size, mtime, mode, content_hash, base_hash "
                + "FROM sync_file WHERE channel = ? AND seq > ? AND (deleted = TRUE OR content_hash <> ?) ORDER BY channel, seq")) {
            // (ORDER BY the index's columns, channel included: H2 then reads the index in order and stops at the limit;
            // ORDER BY seq alone made it read and sort every change after, on each page)
            ps.setString(1, channel);
            ps.setLong(2, after);
            ps.setString(3, ContentHash.UNKNOWN);
            ps.setMaxRows(limit);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(new FileEntry(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getBoolean(4), rs.getLong(5), rs.getLong(6),
                            rs.getInt(7), rs.getString(8), rs.getString(9)));
                }
            }
        }
        return out;
    }

    /** The receiver has every change up to {@code upTo}: tombstones and move sources up to it are no longer needed. */
    public static void acknowledge(Connection c, String channel, long upTo) throws SQLException {
        long before = acknowledged(c, channel);
        if (upTo <= before) {
            return;
        }
        SyncSchema.putState(c, ACKED + channel, Long.toString(upTo));
        // Only the changes acknowledged now: those up to the last acknowledgement were dealt with then (a change always
        // gets a number above it), so each page costs its own rows, not every row before it.
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_file WHERE channel = ? AND deleted = TRUE AND seq > ? AND seq <= ?")) {
            ps.setString(1, channel);
            ps.setLong(2, before);
            ps.setLong(3, upTo);
            ps.executeUpdate();
        }
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET moved_from = NULL WHERE channel = ? AND seq > ? AND seq <= ? AND moved_from IS NOT NULL")) {
            ps.setString(1, channel);
            ps.setLong(2, before);
            ps.setLong(3, upTo);
            ps.executeUpdate();
        }
        // What the receiver took is now what both have: the base of this node's next change of the path (two-way).
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET base_hash = content_hash WHERE channel = ? AND seq > ? AND seq <= ? "
                + "AND (base_hash IS NULL OR base_hash <> content_hash) AND content_hash <> ?")) { // (not a file left out: not sent)
            ps.setString(1, channel);
            ps.setLong(2, before);
            ps.setLong(3, upTo);
            ps.setString(4, ContentHash.UNKNOWN);
            ps.executeUpdate();
        }
    }

    /**
     * Two-way: this node took the hub's {@code meta} at its path. Recorded as what this node has and what it shares with
     * the hub, without a change to send back (number 0, never pending).
     */
    public static void adopt(Connection c, String channel, FileMeta m) throws SQLException {
        write(c, channel, m, null, 0, m.hash());
    }


    /**
     * Records the file at {@code path} as changed again, as it is (the next number), so every receiver takes it again;
     * false when no file is recorded there.
     */
    public static boolean recordAgain(Connection c, String channel, String path) throws SQLException {
        long seq = next(c, channel);
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET seq = ?, moved_from = NULL WHERE channel = ? AND path_id = ? "
                + "AND deleted = FALSE")) {
            ps.setLong(1, seq);
            ps.setString(2, channel);
            ps.setString(3, pathId(path));
            if (ps.executeUpdate() == 0) {
                return false;
            }
        }
        SyncSchema.putState(c, NEXT + channel, Long.toString(seq + 1));
        return true;
    }

    /** Two-way: this node deleted its file at {@code path} as the hub did; nothing of it is recorded any more. */
    public static void forget(Connection c, String channel, String path) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_file WHERE channel = ? AND path_id = ?")) {
            ps.setString(1, channel);
            ps.setString(2, pathId(path));
            ps.executeUpdate();
        }
    }

    /** What is recorded of {@code path}: its state (null for a deletion), the number of its last change, its base. */
    public record Recorded(FileMeta meta, long seq, String base) {
    }

    /** The record of {@code path}, or null when none. */
    public static Recorded recorded(Connection c, String channel, String path) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT size, mtime, mode, content_hash, seq, deleted, base_hash FROM sync_file "
                + "WHERE channel = ? AND path_id = ?")) {
            ps.setString(1, channel);
            ps.setString(2, pathId(path));
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    return null;
                }
                FileMeta m = rs.getBoolean(6) ? null : new FileMeta(path, rs.getLong(1), rs.getLong(2), rs.getInt(3), rs.getString(4));
                return new Recorded(m, rs.getLong(5), rs.getString(7));
            }
        }
    }

    /**
     * The highest change this node has ever offered its receiver. Stored before each offer, so a database restored from
     * an older copy has a lower one, and a receiver that has more than it reveals the restore.
     */
    public static long offered(Connection c, String channel) throws SQLException {
        String v = SyncSchema.getState(c, OFFERED + channel);
        return v == null ? 0 : Long.parseLong(v);
    }

    /** Records that changes up to {@code upTo} are about to be offered. */
    public static void markOffered(Connection c, String channel, long upTo) throws SQLException {
        if (upTo > offered(c, channel)) {
            SyncSchema.putState(c, OFFERED + channel, Long.toString(upTo));
        }
    }

    /**
     * Sets the highest change offered back to {@code upTo}, its value before an exchange the receiver refused whole (its
     * count was at odds with this node's): nothing marked offered since reached it.
     */
    public static void resetOffered(Connection c, String channel, long upTo) throws SQLException {
        SyncSchema.putState(c, OFFERED + channel, Long.toString(upTo));
    }

    /** Whether {@code path} is recorded as a file of the channel (not deleted). */
    public static boolean isRecorded(Connection c, String channel, String path) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT 1 FROM sync_file WHERE channel = ? AND path_id = ? AND deleted = FALSE")) {
            ps.setString(1, channel);
            ps.setString(2, pathId(path));
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next();
            }
        }
    }

    /** The next number this channel's changes get. */
    public static long next(Connection c, String channel) throws SQLException {
        String v = SyncSchema.getState(c, NEXT + channel);
        return v == null ? 1 : Long.parseLong(v);
    }

    /**
     * The receiver's count and this node's disagree: it applied changes this node never offered (this database was
     * restored from an older copy), or fewer than this node had seen acknowledged (the receiver's was). Every file is
     * numbered again after the receiver's count, so all are offered again (the receiver skips content it holds), and
     * the acknowledgement follows the receiver's. Deletions acknowledged before are not sent again.
     */
    public static void renumberAfter(Connection c, String channel, long applied) throws SQLException {
        long seq = applied + 1;
        List<String> paths = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT path_id FROM sync_file WHERE channel = ? ORDER BY seq")) {
            ps.setString(1, channel);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    paths.add(rs.getString(1));
                }
            }
        }
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file SET seq = ? WHERE channel = ? AND path_id = ?")) {
            for (String id : paths) {
                ps.setLong(1, seq++);
                ps.setString(2, channel);
                ps.setString(3, id);
                ps.executeUpdate();
            }
        }
        SyncSchema.putState(c, NEXT + channel, Long.toString(seq));
        SyncSchema.putState(c, ACKED + channel, Long.toString(applied));
        SyncSchema.putState(c, OFFERED + channel, Long.toString(applied));
    }

    /** The last change of {@code source}'s channel this node applied (table sync_file_in; 0: none). */
    public static long applied(Connection c, String source, String channel) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT last_seq FROM sync_file_in WHERE source = ? AND channel = ?")) {
            ps.setString(1, source);
            ps.setString(2, channel);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        }
    }

    /** Records that this node applied {@code source}'s changes of {@code channel} up to {@code seq}. */
    public static void recordApplied(Connection c, String source, String channel, long seq, java.time.Instant at) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file_in SET last_seq = ?, applied_at = ? WHERE source = ? AND channel = ?")) {
            ps.setLong(1, seq);
            ps.setTimestamp(2, java.sql.Timestamp.from(at));
            ps.setString(3, source);
            ps.setString(4, channel);
            if (ps.executeUpdate() > 0) {
                return;
            }
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO sync_file_in (source, channel, last_seq, applied_at) VALUES (?, ?, ?, ?)")) {
            ps.setString(1, source);
            ps.setString(2, channel);
            ps.setLong(3, seq);
            ps.setTimestamp(4, java.sql.Timestamp.from(at));
            ps.executeUpdate();
        }
    }

    /**
     * Drops the tombstones every receiver has, those after {@code after} up to {@code upTo} (the ones up to {@code after}
     * were dropped before: a change always gets a number above every acknowledgement): for a sender with many receivers
     * (the hub).
     */
    public static void purgeTombstones(Connection c, String channel, long after, long upTo) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_file WHERE channel = ? AND deleted = TRUE AND seq > ? AND seq <= ?")) {
            ps.setString(1, channel);
            ps.setLong(2, after);
            ps.setLong(3, upTo);
            ps.executeUpdate();
        }
    }

    /** The key of a path in sync_file: its SHA-256 in hex. */
    static String pathId(String path) {
        return HexFormat.of().formatHex(Chunker.sha256().digest(path.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }
}
