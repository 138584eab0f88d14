package io.syncline.node;

import com.sun.net.httpserver.HttpExchange;
import io.syncline.api.BadBatchException;
import io.syncline.api.ChannelSpec;
import io.syncline.api.FileChannelSpec;
import io.syncline.api.SyncException;
import io.syncline.engine.files.ChunkIndex;
import io.syncline.engine.files.Chunker;
import io.syncline.engine.files.ContentHash;
import io.syncline.engine.files.Delta;
import io.syncline.engine.files.FileEntry;
import io.syncline.engine.files.FileFolder;
import io.syncline.engine.files.SafePath;
import io.syncline.node.config.NodeConfig;
import io.syncline.transport.http.HttpEndpoint;
import io.syncline.transport.http.HttpError;
import io.syncline.transport.wire.WireFormat;
import io.syncline.engine.files.FileOutbox;
import io.syncline.engine.files.FileScanner;
import io.syncline.engine.route.RouteExpression;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.util.Set;
import java.util.function.Supplier;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * The hub's side of site-to-hub file channels (docs/protocol.md, "Files"). A site offers its pending changes
 * (POST /v1/files/offer); the hub answers, per change, whether it needs the content and, if so, the ids of the chunks
 * it already has for that file (its basis). The site then sends the changes in order (POST /v1/files/apply), each
 * needed file as a delta against that basis, and the hub applies them one by one: deletes, local moves, content. Each
 * file lands whole or not at all (FileFolder); applying a change twice does no harm, so the hub records the last
 * change applied per site and channel (sync_file_in) after the files are in place, and a repeated exchange after a cut
 * redoes at most the changes since. A site's files live in <folder>/<site id>. One exchange per site and channel at a
 * time; other sites and channels are not held up by it.
 *
 * Hub-to-sites file channels go the other way with the same parts: the hub walks its folder (FolderWatch, thread
 * syncline-hub-files) and records changes in its sync_file; a site asks for the changes after the last one it applied
 * (GET /v1/files/changes, a long poll that also acknowledges), and for the content it lacks (POST /v1/files/get: per
 * file the ids of the chunks it has; the answer streams deltas). Tombstones stay until every site routed to the channel
 * has acknowledged them (sync_file_out).
 */
final class HubFiles implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HubFiles.class);
    /** Longest header of one change in an apply stream. */
    private static final int MAX_ENTRY_BYTES = 64 * 1024;
    /** Files from this size on are logged when they arrive (smaller ones at debug level only). */
    private static final long BIG_FILE = 64L << 20;
    /** Most chunk ids one file request may list (8 MB of ids: the chunks of about 16 TiB of files). */
    private static final long MAX_BASIS_IDS = 1L << 20;

    private final NodeConfig cfg;
    private final Database db;
    private final Clock clock;
    private final Map<String, FileChannelSpec> channels = new LinkedHashMap<>();
    private final Map<String, Path> folders = new LinkedHashMap<>();
    private final Map<String, ReentrantLock> locks = new ConcurrentHashMap<>();
    /**
     * Per site and channel, the bases of the last offer's files (by path and content), taken by the apply that follows,
     * so the hub reads its old copy of a changed file once per exchange, not twice. One page's worth per site and
     * channel at most; a site that never applies leaves its last one until its next offer.
     */
    private final Map<String, Map<String, ChunkIndex>> offered = new ConcurrentHashMap<>();
    /**
     * Per hub-to-sites channel, the change up to which the tombstones every site has were dropped since the start (after
     * a restart, the first purge looks at every change again, once).
     */
    private final Map<String, Long> purged = new ConcurrentHashMap<>();
    private final Map<String, RouteExpression> selectors = new LinkedHashMap<>();
    /** Per channel, its patterns (for rows that reference files). */
    private final Map<FileChannelSpec, FileScanner> matchers = new ConcurrentHashMap<>();
    /** Two-way channels: held while a site's changes are applied to the shared folder, and while the hub walks it. */
    private final Map<String, ReentrantLock> shared = new LinkedHashMap<>();
    private final Supplier<Set<String>> registered;
    /** Rung when a walk recorded changes of a hub-to-sites channel: wakes the sites' long polls. */
    private final Bell bell = new Bell();
    private final FolderWatch watch;
    /** The files that cannot be sent, told once each (walks). */
    private final Once warned = new Once(() -> LOG.warn("hub: more than {} different files that cannot be sent told; further "
            + "ones are not told until the node restarts", Once.MAX));
    /** Bytes of file content received, and bytes built from chunks the hub already had (for status and tests). */
    final AtomicLong literalBytes = new AtomicLong();
    final AtomicLong copiedBytes = new AtomicLong();
    /** Two-way: site changes kept as conflict copies (for status and tests). */
    final AtomicLong conflicts = new AtomicLong();
    /** Two-way exchanges after which the whole shared folder was walked (not only the sub-folders they changed). */
    final AtomicLong wholeWalksAfterExchanges = new AtomicLong();
    final AtomicLong filesApplied = new AtomicLong();
    /** Apply requests with new files sent without an offer (for tests). */
    final AtomicLong unofferedExchanges = new AtomicLong();

    /** Offer answer for one change: skip (already applied), none (no content needed) or data (with the basis). */
    record Decision(long seq, String need, String basis) {
    }

    record Offer(List<FileEntry> entries) {
    }

    HubFiles(NodeConfig cfg, Database db, Clock clock, Supplier<Set<String>> registered) throws IOException {
        this.cfg = cfg;
        this.db = db;
        this.clock = clock;
        this.registered = registered;
        List<String> problems = new ArrayList<>();
        for (FileChannelSpec f : cfg.fileChannels()) {
            channels.put(f.name(), f);
            if (f.direction() == ChannelSpec.Direction.TWO_WAY) {
                shared.put(f.name(), new ReentrantLock(true)); // fair: the folder's own walk waits its turn among the sites
            }
            if (f.sites() != null) {
                selectors.put(f.name(), RouteExpression.parse(f.sites()));
            }
            cfg.folder(f.name()).ifPresentOrElse(p -> folders.put(f.name(), p),
                    () -> problems.add("file channel '" + f.name() + "' has no folder at the hub: set folders." + f.name()));
        }
        if (!problems.isEmpty()) {
            throw new SyncException(SyncException.Stage.CONFIG, "hub " + cfg.nodeId() + ": " + String.join("; ", problems));
        }
        List<FolderWatch.Target> outgoing = channels.values().stream().filter(f -> f.direction().toSites())
                .map(f -> new FolderWatch.Target(f, folders.get(f.name()))).toList();
        this.watch = outgoing.isEmpty() ? null
                : new FolderWatch("syncline-hub-files", cfg.fileScanInterval(), () -> outgoing,
                        (t, under, edited, held) -> walk(t, under, held)); // (the heard folders: edited files not looked at alone)
    }

    /**
     * Where file {@code path} of site-to-hub file channel {@code fileChannel} from {@code site} is at the hub once it has
     * arrived (for rows that reference it); null for another kind of channel.
     */
    Path locate(String site, String fileChannel, String path) {
        FileChannelSpec ch = channels.get(fileChannel);
        if (ch == null || ch.direction() != ChannelSpec.Direction.SITE_TO_HUB) {
            return null;
        }
        Path folder = folders.get(fileChannel).resolve(site);
        // A path the channel's patterns leave out never comes: not waited for.
        return matchers.computeIfAbsent(ch, c -> new FileScanner(folder, c.include(), c.exclude())).matches(path) ? folder.resolve(path) : null;
    }

    /** The file channels a site takes part in: every site-to-hub one, and the hub-to-sites ones routed to it. */
    List<FileChannelSpec> channelsFor(String site) {
        return channels.values().stream().filter(f -> f.direction() == ChannelSpec.Direction.SITE_TO_HUB || routes(f, site)).toList();
    }

    private boolean routes(FileChannelSpec f, String site) {
        RouteExpression sel = selectors.get(f.name());
        if (sel == null) {
            return true;
        }
        Map<String, String> attrs = new LinkedHashMap<>();
        cfg.siteAttributes(site).forEach((k, v) -> attrs.put(k.toLowerCase(java.util.Locale.ROOT), v));
        return sel.test(n -> attrs.get(n.toLowerCase(java.util.Locale.ROOT)), n -> attrs.get(n.toLowerCase(java.util.Locale.ROOT)));
    }

    /** A site's file channels in the hub's status: last change per channel on the receiving side, and what it lacks. */
    record FileStatus(Map<String, Long> changes, long pendingToSite) {
    }

    /** The status of every registered site's file channels, read in the caller's transaction. */
    Map<String, FileStatus> status(Connection c, Set<String> sites) throws SQLException {
        Map<String, Map<String, Long>> changes = new java.util.HashMap<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT source, channel, last_seq FROM sync_file_in");
             ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                changes.computeIfAbsent(rs.getString(1), k -> new java.util.TreeMap<>()).put(rs.getString(2), rs.getLong(3));
            }
        }
        Map<String, Map<String, Long>> acked = new java.util.HashMap<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT destination, channel, acked_seq FROM sync_file_out");
             ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                acked.computeIfAbsent(rs.getString(1), k -> new java.util.HashMap<>()).put(rs.getString(2), rs.getLong(3));
            }
        }
        Map<String, Long> last = new java.util.HashMap<>();
        for (FileChannelSpec f : channels.values()) {
            if (f.direction() == ChannelSpec.Direction.HUB_TO_SITES) {
                last.put(f.name(), FileOutbox.next(c, f.name()) - 1);
            }
        }
        Map<String, FileStatus> out = new java.util.HashMap<>();
        for (String site : sites) {
            Map<String, Long> mine = new java.util.TreeMap<>();
            long pending = 0;
            for (FileChannelSpec f : channelsFor(site)) {
                if (f.direction() == ChannelSpec.Direction.HUB_TO_SITES) {
                    long ack = acked.getOrDefault(site, Map.of()).getOrDefault(f.name(), 0L);
                    mine.put(f.name(), ack);
                    pending += Math.max(0, last.get(f.name()) - ack);
                } else {
                    mine.put(f.name(), changes.getOrDefault(site, Map.of()).getOrDefault(f.name(), 0L));
                }
            }
            out.put(site, new FileStatus(mine, pending));
        }
        return out;
    }

    /**
     * Records what changed in a hub-to-sites channel's folder, and wakes the sites waiting for it; false when a two-way
     * channel's folder is busy with a site's changes (FolderWatch walks it again soon).
     */
    private boolean walk(FolderWatch.Target t, List<String> under, Set<String> held) throws IOException, SQLException {
        if (under != null && under.isEmpty()) {
            return true;
        }
        ReentrantLock lock = shared.get(t.channel().name());
        try {
            // In turn with the sites' exchanges (a fair lock): a steady stream of them cannot keep the hub's own changes out.
            if (lock != null && !lock.tryLock(5, java.util.concurrent.TimeUnit.SECONDS)) {
                return false;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
        try {
            walk(t.channel(), t.folder(), under, held, List.of());
            return true;
        } finally {
            if (lock != null) {
                lock.unlock();
            }
        }
    }

    /**
     * Records what changed in a channel's folder and, as changes again, the files at {@code resend} (two-way: the hub's
     * version of a file a site's change lost to, so that site takes it back); wakes the sites waiting for changes.
     * {@code under}, {@code held}: as in FileOutbox.recordWalk.
     */
    private void walk(FileChannelSpec ch, Path folder, List<String> under, Set<String> held, List<String> resend)
            throws IOException, SQLException {
        FileScanner scanner = new FileScanner(folder, ch.include(), ch.exclude());
        int n;
        try (Connection c = db.connection()) {
            try {
                n = FileOutbox.recordWalk(c, ch.name(), scanner, clock.millis(),
                        why -> {
                            if (warned.first(ch.name() + ": " + why)) {
                                LOG.warn("hub {}: file channel '{}': a file is not sent: {}", cfg.nodeId(), ch.name(), why);
                            }
                        },
                        ch.direction() == ChannelSpec.Direction.TWO_WAY, under, held);
                for (String path : resend) {
                    n += FileOutbox.recordAgain(c, ch.name(), path) ? 1 : 0;
                }
                c.commit();
            } catch (IOException | SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
        if (n > 0) {
            bell.ring();
        }
    }

    /**
     * GET /v1/files/changes?channel=&after=&wait=: the hub-to-sites channel's changes after {@code after} (which the site
     * thereby acknowledges), at most a page; with {@code wait} (ms), waits up to that long for one.
     */
    void handleChanges(HttpExchange ex, String site) throws IOException {
        FileChannelSpec ch = channel(ex, ChannelSpec.Direction.HUB_TO_SITES);
        if (!routes(ch, site)) {
            throw new HttpError(403, "file channel '" + ch.name() + "' is not routed to site '" + site + "'");
        }
        Map<String, String> q = HttpEndpoint.query(ex);
        long after;
        long waitMillis;
        try {
            after = Long.parseLong(q.getOrDefault("after", "0"));
            waitMillis = Math.min(60_000, Long.parseLong(q.getOrDefault("wait", "0")));
        } catch (NumberFormatException e) {
            throw new HttpError(400, "'after' and 'wait' must be whole numbers: " + e.getMessage());
        }
        acknowledge(site, ch, after);
        long deadline = System.nanoTime() + waitMillis * 1_000_000;
        while (true) {
            long seen = bell.rung();
            List<FileEntry> page;
            long last;
            try (Connection c = db.connection()) {
                page = FileOutbox.pending(c, ch.name(), after, SiteFiles.PAGE);
                last = FileOutbox.next(c, ch.name()) - 1;
                c.commit();
            } catch (SQLException e) {
                throw new HttpError(503, "hub database unavailable: " + e.getMessage());
            }
            if (!page.isEmpty() || System.nanoTime() >= deadline || after > last) {
                HttpEndpoint.sendJson(ex, 200, Map.of("entries", page, "last", last));
                return;
            }
            try {
                HttpEndpoint.idle(() -> bell.awaitAfter(seen, deadline));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new HttpError(503, "hub stopping");
            }
        }
    }

    /**
     * A site applied the channel's changes up to {@code seq}: recorded, then the tombstones every routed site has are
     * dropped.
     */
    private void acknowledge(String site, FileChannelSpec ch, long seq) {
        try (Connection c = db.connection()) {
            try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file_out SET acked_seq = ?, acked_at = ? WHERE destination = ? AND channel = ?")) {
                ps.setLong(1, seq);
                ps.setTimestamp(2, Timestamp.from(clock.instant()));
                ps.setString(3, site);
                ps.setString(4, ch.name());
                if (ps.executeUpdate() == 0) {
                    try (PreparedStatement ins = c.prepareStatement(
                            "INSERT INTO sync_file_out (destination, channel, acked_seq, acked_at) VALUES (?, ?, ?, ?)")) {
                        ins.setString(1, site);
                        ins.setString(2, ch.name());
                        ins.setLong(3, seq);
                        ins.setTimestamp(4, Timestamp.from(clock.instant()));
                        ins.executeUpdate();
                    }
                }
            }
            // Committed before the acknowledgements are read: of two sites acknowledging at once, the later reader then
            // sees both, so the last tombstone every site has is dropped (reading in the same transaction, each could
            // miss the other's and neither drop it).
            c.commit();
            Map<String, Long> acks = new java.util.HashMap<>();
            try (PreparedStatement ps = c.prepareStatement("SELECT destination, acked_seq FROM sync_file_out WHERE channel = ?")) {
                ps.setString(1, ch.name());
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        acks.put(rs.getString(1), rs.getLong(2));
                    }
                }
            }
            long min = Long.MAX_VALUE;
            for (String s : registered.get()) {
                if (routes(ch, s)) {
                    min = Math.min(min, acks.getOrDefault(s, 0L));
                }
            }
            long after = purged.getOrDefault(ch.name(), 0L);
            if (min != Long.MAX_VALUE) {
                // (no further than the hub's own last change: a site's acknowledgement beyond it, after a restore of
                // the hub's database, must not mark later changes as purged)
                min = Math.min(min, FileOutbox.next(c, ch.name()) - 1);
            }
            if (min != Long.MAX_VALUE && min > after) {
                FileOutbox.purgeTombstones(c, ch.name(), after, min);
                c.commit();
                purged.merge(ch.name(), min, Math::max);
            } else {
                c.commit(); // (only read)
            }
        } catch (SQLException e) {
            throw new HttpError(503, "hub database unavailable: " + e.getMessage());
        }
    }

    /**
     * POST /v1/files/get?channel=: the content of files of a hub-to-sites channel as deltas. Body: per file a 4-byte
     * length, JSON {path, size, hash}, a 4-byte count and that many 8-byte chunk ids the site has; a length of 0 ends it.
     * Answer, in the same order: 1 and the delta, or 0 when the hub no longer has the file.
     */
    void handleGet(HttpExchange ex, String site) throws IOException {
        FileChannelSpec ch = channel(ex, ChannelSpec.Direction.HUB_TO_SITES);
        if (!routes(ch, site)) {
            throw new HttpError(403, "file channel '" + ch.name() + "' is not routed to site '" + site + "'");
        }
        List<String> paths = new ArrayList<>();
        List<Long> sizes = new ArrayList<>();
        List<long[]> bases = new ArrayList<>();
        DataInputStream in = new DataInputStream(new BufferedInputStream(ex.getRequestBody(), 64 * 1024));
        long idsRead = 0;
        while (true) {
            int len = in.readInt();
            if (len == 0) {
                break;
            }
            if (len < 0 || len > MAX_ENTRY_BYTES || paths.size() >= SiteFiles.PAGE) {
                throw new HttpError(400, "file request: entry header of " + len + " bytes, or more than " + SiteFiles.PAGE + " files");
            }
            Wanted w = WireFormat.MAPPER.readValue(in.readNBytes(len), Wanted.class);
            try {
                SafePath.check(w.path());
            } catch (BadBatchException e) {
                throw new HttpError(400, "file channel '" + ch.name() + "': " + e.getMessage());
            }
            int n = in.readInt();
            idsRead += Math.max(0, n);
            if (n < 0 || idsRead > MAX_BASIS_IDS) {
                throw new HttpError(400, "file request: more than " + MAX_BASIS_IDS + " chunk ids in one request");
            }
            long[] ids = new long[n];
            for (int i = 0; i < n; i++) {
                ids[i] = in.readLong();
            }
            paths.add(w.path());
            sizes.add(w.size());
            bases.add(ids);
        }
        ex.getResponseHeaders().set("Content-Type", "application/octet-stream");
        ex.sendResponseHeaders(200, 0);
        Path root = folders.get(ch.name());
        try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(ex.getResponseBody(), 64 * 1024))) {
            for (int i = 0; i < paths.size(); i++) {
                InputStream file = null;
                Path f = null;
                try {
                    f = SafePath.resolve(root, paths.get(i));
                    // Only what the channel lists (its patterns, not deleted) and only regular files: never any other
                    // file under the folder, nor a pipe or device that would hold the thread.
                    if (recorded(ch.name(), paths.get(i)) && Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                        file = Files.newInputStream(f, java.nio.file.LinkOption.NOFOLLOW_LINKS);
                    }
                } catch (NoSuchFileException | BadBatchException gone) {
                    file = null;
                }
                if (file == null) {
                    out.writeByte(0);
                    continue;
                }
                out.writeByte(1);
                try (InputStream content = file) {
                    Delta.Stats s = Delta.encode(content, Chunker.Sizes.forFile(sizes.get(i)), ChunkIndex.ofIds(bases.get(i)), out);
                    literalBytes.addAndGet(s.literalBytes());
                    copiedBytes.addAndGet(s.copiedBytes());
                }
            }
        }
    }

    /** Whether the hub's record of a hub-to-sites channel lists {@code path} as a file it has (not deleted). */
    private boolean recorded(String channel, String path) throws IOException {
        try {
            return db.inTransaction(c -> FileOutbox.isRecorded(c, channel, path));
        } catch (SQLException e) {
            throw new IOException("hub database unavailable: " + e.getMessage(), e);
        }
    }

    /** One file a site asks for, as the hub listed it (its size chooses the chunk sizes). */
    record Wanted(String path, long size, String hash) {
    }

    @Override
    public void close() {
        if (watch != null) {
            watch.close();
        }
    }

    /** The site's database is new: its change numbers start again. Runs in the registration's transaction. */
    static void forget(Connection c, String site) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_file_in WHERE source = ?")) {
            ps.setString(1, site);
            ps.executeUpdate();
        }
    }

    void handleOffer(HttpExchange ex, String site) throws IOException {
        FileChannelSpec ch = channel(ex, ChannelSpec.Direction.SITE_TO_HUB);
        if (!routes(ch, site)) {
            throw new HttpError(403, "file channel '" + ch.name() + "' is not routed to site '" + site + "'");
        }
        Offer offer;
        try {
            offer = WireFormat.MAPPER.readValue(HttpEndpoint.readSmallBody(ex), Offer.class);
        } catch (IOException e) {
            throw new HttpError(400, "file offer of channel '" + ch.name() + "' is not valid JSON: " + e.getMessage());
        }
        if (offer == null || offer.entries() == null) {
            throw new HttpError(400, "file offer of channel '" + ch.name() + "' has no entries");
        }
        if (offer.entries().size() > SiteFiles.PAGE) {
            throw new HttpError(400, "file offer of channel '" + ch.name() + "' has " + offer.entries().size() + " changes; at most "
                    + SiteFiles.PAGE + " at a time");
        }
        FileFolder folder = folder(ch, site);
        // Under the exchange's lock: working out a basis may take over what an earlier transfer left (FileFolder.basis),
        // which must not happen while that transfer is still being received.
        ReentrantLock lock = lock(site, ch);
        ReentrantLock sharedLock = shared(ch, lock);
        List<Decision> out = new ArrayList<>();
        Map<String, ChunkIndex> bases = new java.util.HashMap<>();
        long applied;
        try {
            applied = applied(site, ch.name());
            for (FileEntry e : offer.entries()) {
                check(ch, e);
                if (e.seq() <= applied) {
                    out.add(new Decision(e.seq(), "skip", null));
                } else if (e.deleted() || e.from() != null && folder.sameContent(e.from(), e.meta()) || folder.holds(e.path(), e.meta())
                        || sharedLock != null && e.hash().equals(e.base()) && currentContent(folder, e.path()) != null) {
                    // (two-way, the last: only the time or permissions changed, on content the hub holds or replaced)
                    out.add(new Decision(e.seq(), "none", null));
                } else {
                    ChunkIndex b = folder.basis(e.meta());
                    bases.put(e.path() + '\0' + e.hash(), b);
                    out.add(new Decision(e.seq(), "data", basis(b)));
                }
            }
            offered.put(site + '\0' + ch.name(), bases); // the apply that follows uses them instead of reading the files again
        } finally {
            if (sharedLock != null) {
                sharedLock.unlock();
            }
            lock.unlock();
        }
        HttpEndpoint.sendJson(ex, 200, Map.of("applied", applied, "entries", out));
    }

    void handleApply(HttpExchange ex, String site) throws IOException {
        FileChannelSpec ch = channel(ex, ChannelSpec.Direction.SITE_TO_HUB);
        if (!routes(ch, site)) {
            throw new HttpError(403, "file channel '" + ch.name() + "' is not routed to site '" + site + "'");
        }
        // unoffered: the site sends new files without an offer (none was ever taken here, so none has a basis): each
        // delta is literals only, and no basis is worked out for it. The site's counts come along, checked as the site
        // checks an offer's answer.
        Map<String, String> query = HttpEndpoint.query(ex);
        boolean unoffered = "1".equals(query.get("unoffered"));
        long siteAcked = unoffered ? count(query, "acked") : 0;
        long siteOffered = unoffered ? count(query, "offered") : 0;
        if (unoffered && ch.direction() == ChannelSpec.Direction.TWO_WAY) {
            throw new HttpError(400, "file channel '" + ch.name() + "' is two-way: its changes are offered first");
        }
        FileFolder folder = folder(ch, site);
        ReentrantLock lock = lock(site, ch);
        ReentrantLock sharedLock = shared(ch, lock);
        if (unoffered) {
            unofferedExchanges.incrementAndGet();
        }
        List<String> lost = new ArrayList<>();
        java.util.Set<Path> touched = new java.util.HashSet<>(); // two-way: the folders the exchange changed
        Settling settling = new Settling();
        Map<String, ChunkIndex> bases = offered.remove(site + '\0' + ch.name());
        long applied = 0;
        long start = 0;
        String error = null;
        boolean stale = false;
        DataInputStream in = new DataInputStream(new BufferedInputStream(ex.getRequestBody(), 64 * 1024));
        try {
            applied = applied(site, ch.name());
            start = applied;
            settling.applied = applied;
            if (unoffered && (applied > siteOffered || applied < siteAcked)) {
                HttpEndpoint.drain(in);
                stale = true; // nothing applied: the site numbers its changes again
            }
            while (!stale) {
                int len = in.readInt();
                if (len == 0) {
                    break;
                }
                if (len < 0 || len > MAX_ENTRY_BYTES) {
                    throw new BadBatchException(SyncException.Stage.TRANSPORT, "file change header of " + len + " bytes (1 to "
                            + MAX_ENTRY_BYTES + ")");
                }
                FileEntry e = WireFormat.MAPPER.readValue(in.readNBytes(len), FileEntry.class);
                boolean data = in.readBoolean();
                check(ch, e);
                ChunkIndex offeredBasis = unoffered ? ChunkIndex.ofIds(new long[0]) : bases == null ? null : bases.remove(e.path() + '\0' + e.hash());
                if (sharedLock == null && data && !e.deleted()) {
                    // Its flush and rename overlap the next files' (one-way: nothing else changes the folder meanwhile).
                    ChunkIndex basis = offeredBasis != null ? offeredBasis : folder.basis(e.meta());
                    settling.add(e, folder.receiveLater(e.meta(), in, basis));
                    continue;
                }
                settling.settle();
                if (sharedLock != null) {
                    touched.add(folder.root().resolve(e.path()).getParent());
                    if (e.from() != null) {
                        touched.add(folder.root().resolve(e.from()).getParent());
                    }
                    applyTwoWay(ch, folder, site, e, data, in, offeredBasis, lost);
                } else {
                    apply(folder, e, data, in, offeredBasis);
                }
                settling.applied = Math.max(settling.applied, e.seq());
            }
            settling.settle();
        } catch (SyncException | IOException e) {
            settling.settleQuietly(); // what came before the failure counts
            error = e.getMessage();
            LOG.warn("hub {}: files of channel '{}' from site {}: applied up to change {}, then: {}", cfg.nodeId(), ch.name(), site,
                    settling.applied, error);
            HttpEndpoint.drain(in);
        } finally {
            try {
                // Also after a failure of another kind (a refused path is answered 400): what is in place is applied.
                settling.settleQuietly();
                applied = Math.max(applied, settling.applied); // (settling starts from the hub's count)
                try {
                    folder.flush();
                } catch (IOException e) {
                    // Not known to be on disk: nothing of the exchange counts as applied, and the site sends it again.
                    LOG.warn("hub {}: files of channel '{}' from site {}: {}", cfg.nodeId(), ch.name(), site, e.getMessage());
                    error = e.getMessage();
                    applied = start;
                }
                if (sharedLock != null && (applied > start || !lost.isEmpty())) {
                    // What the folder became goes to every site of the channel (the site sent it: it takes it as its own):
                    // the folders the exchange changed are walked (the hub's FolderWatch walks those changed otherwise).
                    try {
                        List<String> under = FolderWatch.under(folder.root(), new ArrayList<>(touched));
                        if (under == null) {
                            wholeWalksAfterExchanges.incrementAndGet();
                        }
                        walk(ch, folder.root(), under, null, lost);
                    } catch (IOException | SQLException | RuntimeException e) {
                        // Not recorded as applied: the site offers its changes again, and the hub settles them again
                        // (what is in place already costs nothing), recording the paths it lost on then.
                        LOG.warn("hub {}: file channel '{}': could not record what site {} changed ({}); it sends them again",
                                cfg.nodeId(), ch.name(), site, e.getMessage());
                        applied = start;
                    }
                }
                if (applied > start) {
                    record(site, ch.name(), applied);
                }
            } finally {
                if (sharedLock != null) {
                    sharedLock.unlock();
                }
                lock.unlock();
            }
        }
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("applied", applied);
        if (error != null) {
            body.put("error", error);
        }
        if (stale) {
            body.put("stale", true);
        }
        HttpEndpoint.sendJson(ex, 200, body);
    }

    /**
     * Two-way: takes the channel's lock (its folder is shared), waiting at most 5 s, after the site's {@code lock}; on
     * failure releases that and answers 503 (the site tries again after its back-off). Null for other channels.
     */
    private ReentrantLock shared(FileChannelSpec ch, ReentrantLock lock) {
        ReentrantLock sharedLock = shared.get(ch.name());
        if (sharedLock == null) {
            return null;
        }
        try {
            if (sharedLock.tryLock(5, java.util.concurrent.TimeUnit.SECONDS)) {
                return sharedLock;
            }
            lock.unlock();
            throw new HttpError(503, "file channel '" + ch.name() + "': other sites' changes are being applied; try again");
        } catch (InterruptedException e) {
            lock.unlock();
            Thread.currentThread().interrupt();
            throw new HttpError(503, "hub stopping");
        }
    }

    /** Takes the lock of a site's exchanges of a channel, or answers 409 when an exchange holds it. */
    private ReentrantLock lock(String site, FileChannelSpec ch) {
        ReentrantLock lock = locks.computeIfAbsent(site + '\0' + ch.name(), k -> new ReentrantLock());
        if (!lock.tryLock()) {
            throw new HttpError(409, "site '" + site + "' is already exchanging files of channel '" + ch.name() + "' (an earlier "
                    + "exchange has not ended yet)");
        }
        return lock;
    }

    /**
     * The files of an exchange's changes being flushed and put in place by the folder's flush threads, and the last
     * change applied. The changes applied end before the first file that failed: files put in place after it are not
     * counted (the site sends them again, and what is in place already costs nothing).
     */
    private final class Settling {
        private record UnderWay(FileEntry entry, java.util.concurrent.Future<Delta.Stats> done) {
        }

        private final java.util.ArrayDeque<UnderWay> underWay = new java.util.ArrayDeque<>();
        /** The last change applied (by the files settled here and the changes applied one by one). */
        long applied;

        /**
         * Adds a file put in place by a flush thread, and counts those ahead of it that are in place already (so that
         * only files still under way are held). A file that failed is thrown at once, after every file has ended (the
         * rest of the request is not worth reading).
         */
        void add(FileEntry e, java.util.concurrent.Future<Delta.Stats> done) throws IOException {
            underWay.add(new UnderWay(e, done));
            for (UnderWay u = underWay.peek(); u != null && u.done().isDone(); u = underWay.peek()) {
                Delta.Stats s;
                try {
                    s = u.done().get();
                } catch (java.util.concurrent.ExecutionException | InterruptedException failed) {
                    settle(); // throws that failure
                    return;
                }
                underWay.poll();
                counted(u.entry(), s);
                applied = Math.max(applied, u.entry().seq());
            }
        }

        /**
         * Waits for every file under way, raising {@link #applied} by each in place before the first that failed. That
         * failure is thrown once every file has ended (none is left under way).
         */
        void settle() throws IOException {
            Exception first = null;
            for (UnderWay u = underWay.poll(); u != null; u = underWay.poll()) {
                Delta.Stats s;
                try {
                    s = u.done().get();
                } catch (java.util.concurrent.ExecutionException e) {
                    first = first != null ? first : e.getCause() instanceof Exception cause ? cause
                            : new IOException("file '" + u.entry().path() + "': " + e.getCause(), e.getCause());
                    continue;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    first = first != null ? first : new IOException("interrupted while file '" + u.entry().path()
                            + "' was put in place", e);
                    continue;
                }
                if (first == null) {
                    counted(u.entry(), s);
                    applied = Math.max(applied, u.entry().seq());
                }
            }
            if (first instanceof IOException io) {
                throw io;
            }
            if (first instanceof RuntimeException re) {
                throw re; // a BadBatchException among them, as from receive
            }
            if (first != null) {
                throw new IOException(first.getMessage(), first);
            }
        }

        /**
         * After a failure of a later change: {@link #settle}, whose files came before it and count, logging instead of
         * throwing a failure of theirs.
         */
        void settleQuietly() {
            try {
                settle();
            } catch (IOException | RuntimeException e) {
                LOG.warn("hub {}: a file sent before the change that failed failed too: {}", cfg.nodeId(), e.getMessage());
            }
        }
    }

    /** {@code offeredBasis}: the basis the offer sent for this change (the same files, unless they changed since), or null. */
    private void apply(FileFolder folder, FileEntry e, boolean data, DataInputStream in, ChunkIndex offeredBasis) throws IOException {
        apply(folder, e, data, in, offeredBasis, true);
    }

    /** {@code move}: a moved file's old copy is moved (site-to-hub), or copied (two-way: its deletion follows on its own). */
    private void apply(FileFolder folder, FileEntry e, boolean data, DataInputStream in, ChunkIndex offeredBasis, boolean move)
            throws IOException {
        if (e.deleted()) {
            folder.delete(e.path());
        } else if (data) {
            ChunkIndex basis = offeredBasis != null ? offeredBasis : folder.basis(e.meta());
            counted(e, folder.receive(e.meta(), in, basis));
            return;
        } else if (!(e.from() != null && folder.copyLocal(e.from(), e.meta(), move)) && !folder.has(e.meta())) {
            throw new BadBatchException(SyncException.Stage.APPLY, "file '" + e.path() + "' (change " + e.seq()
                    + "): the hub does not hold its content and none was sent; it is offered again");
        }
        filesApplied.incrementAndGet();
    }

    /** Counts a file received and put in place. */
    private void counted(FileEntry e, Delta.Stats s) {
        literalBytes.addAndGet(s.literalBytes());
        copiedBytes.addAndGet(s.copiedBytes());
        if (s.size() >= BIG_FILE) {
            LOG.info("hub {}: file '{}' of {} bytes in place: {} bytes received, {} bytes from chunks the hub had", cfg.nodeId(),
                    e.path(), s.size(), s.literalBytes(), s.copiedBytes());
        }
        filesApplied.incrementAndGet();
    }

    /**
     * Two-way: applies a site's change to the shared folder against what the hub holds there now (under the channel's
     * lock). The change is made on {@code e.base()}, the content the site last had in common with the hub. When the hub
     * holds that content (or the same content as the change, or nothing and the site edited), the change applies. When
     * it holds something else, both were changed at once: the hub's version stays, the site's is kept beside it as a
     * conflict copy named after the site and the time of its change, and the path goes into {@code lost} so the site
     * takes the hub's version back. A deletion of a file the hub changed meanwhile loses the same way (nothing to copy).
     */
    private void applyTwoWay(FileChannelSpec ch, FileFolder folder, String site, FileEntry e, boolean data, DataInputStream in,
                             ChunkIndex offeredBasis, List<String> lost) throws IOException {
        String current = currentContent(folder, e.path());
        if (e.deleted()) {
            if (current == null) {
                return;
            }
            if (current.equals(e.base())) {
                folder.delete(e.path());
                filesApplied.incrementAndGet();
            } else {
                LOG.info("hub {}: file channel '{}': site {} deleted '{}', which changed at the hub since the site had it; the file "
                        + "stays and goes back to the site", cfg.nodeId(), ch.name(), site, e.path());
                lost.add(e.path());
            }
            return;
        }
        if (!data && current != null && !current.equals(e.hash()) && e.hash().equals(e.base())) {
            // Only the time or permissions changed at the site, on content the hub has replaced since (the offer asked
            // for no content): the hub's version goes back, no copy of the site's old content is made.
            lost.add(e.path());
            return;
        }
        boolean conflict = current != null && !current.equals(e.hash()) && !current.equals(e.base());
        if (!conflict) {
            apply(folder, e, data, in, offeredBasis, false);
            return;
        }
        String copy = conflictCopy(folder, e.path(), site, e.mtime(), e.hash());
        // The copy keeps the change's source, if any: a file renamed onto a path another node used is copied from it.
        FileEntry target = new FileEntry(e.seq(), copy, e.from(), false, e.size(), e.mtime(), e.mode(), e.hash(), null);
        apply(folder, target, data, in, offeredBasis, false);
        LOG.info("hub {}: file channel '{}': '{}' was changed at site {} and at the hub at once; the hub's stays, the site's is "
                + "kept as '{}'", cfg.nodeId(), ch.name(), e.path(), site, copy);
        lost.add(e.path());
        conflicts.incrementAndGet();
    }

    /** The content (ContentHash) of the channel's file at {@code path} now, or null when there is none. */
    private static String currentContent(FileFolder folder, String path) throws IOException {
        Path f = folder.file(path);
        if (f == null || !Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return null;
        }
        // Read once: the hub's record of it could only be trusted after reading it anyway (FileFolder.holds hashes).
        return ContentHash.of(f);
    }


    /**
     * The name a site's losing version of {@code path} is kept under, beside it: {@code report (conflict from s2
     * 2026-11-29 21-50-02 UTC).txt}, with the time the site changed it; a number is added when that name is taken.
     */
    static String conflictCopy(FileFolder folder, String path, String site, long mtimeMillis, String hash) throws IOException {
        int slash = path.lastIndexOf('/');
        String dir = path.substring(0, slash + 1);
        String name = path.substring(slash + 1);
        int dot = name.lastIndexOf('.');
        String stem = dot > 0 ? name.substring(0, dot) : name;
        String ext = dot > 0 ? name.substring(dot) : "";
        String when = CONFLICT_TIME.format(java.time.Instant.ofEpochMilli(mtimeMillis));
        String base = dir + stem + " (conflict from " + site + " " + when + " UTC)";
        String candidate = base + ext;
        for (int n = 2; n < 1000; n++) {
            Path f = folder.file(candidate);
            if (f == null || !Files.exists(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)
                    || Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS) && ContentHash.of(f).equals(hash)) {
                return candidate; // free, or the same copy made by an earlier attempt of this exchange
            }
            candidate = base + " " + n + ext;
        }
        return candidate;
    }

    private static final java.time.format.DateTimeFormatter CONFLICT_TIME =
            java.time.format.DateTimeFormatter.ofPattern("yyyy-MM-dd HH-mm-ss").withZone(java.time.ZoneOffset.UTC);

    /** The request's channel: one that goes {@code direction}, or a two-way one. */
    private FileChannelSpec channel(HttpExchange ex, ChannelSpec.Direction direction) {
        String name = HttpEndpoint.query(ex).get("channel");
        FileChannelSpec ch = name == null ? null : channels.get(name);
        if (ch == null) {
            throw new HttpError(404, name == null ? "missing query parameter 'channel'" : "no file channel '" + name + "' at this hub");
        }
        if (ch.direction() != direction && ch.direction() != ChannelSpec.Direction.TWO_WAY) {
            throw new HttpError(400, "file channel '" + name + "' is " + ch.direction() + "; this request is for " + direction + " channels");
        }
        return ch;
    }

    /** Where a site's changes of a channel land: its own sub-folder, or for a two-way channel the folder all share. */
    private FileFolder folder(FileChannelSpec ch, String site) throws IOException {
        Path root = folders.get(ch.name());
        return new FileFolder(ch.direction() == ChannelSpec.Direction.TWO_WAY ? root : root.resolve(site), cfg.filePartialMaxAge(), clock);
    }

    private static void check(FileChannelSpec ch, FileEntry e) {
        try {
            SafePath.check(e.path());
            if (e.from() != null) {
                SafePath.check(e.from());
            }
            if (!e.deleted()) {
                e.meta();
                if (e.hash().equals(ContentHash.UNKNOWN)) {
                    throw new IllegalArgumentException("file '" + e.path() + "': its content hash was not worked out (all zeros)");
                }
            }
        } catch (IllegalArgumentException | BadBatchException x) {
            throw new HttpError(400, "file channel '" + ch.name() + "', change " + e.seq() + ": " + x.getMessage());
        }
    }

    /** A count the site sent in the query (0 or more), or 400 naming it. */
    private static long count(Map<String, String> query, String name) {
        String v = query.get(name);
        try {
            long n = Long.parseLong(v);
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw new HttpError(400, "file apply without an offer: '" + name + "' must be a count of changes (0 or more), not '" + v + "'");
    }

    private static String basis(ChunkIndex idx) {
        long[] ids = idx.ids();
        ByteBuffer b = ByteBuffer.allocate(ids.length * 8);
        for (long id : ids) {
            b.putLong(id);
        }
        return Base64.getEncoder().encodeToString(b.array());
    }

    /** Decodes a basis as {@link #basis} wrote it. */
    static long[] basisIds(String text) {
        byte[] raw = Base64.getDecoder().decode(text);
        ByteBuffer b = ByteBuffer.wrap(raw);
        long[] ids = new long[raw.length / 8];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = b.getLong();
        }
        return ids;
    }

    private long applied(String site, String channel) {
        try {
            return db.inTransaction(c -> FileOutbox.applied(c, site, channel));
        } catch (SQLException e) {
            throw new HttpError(503, "hub database unavailable: " + e.getMessage());
        }
    }

    private void record(String site, String channel, long seq) {
        try {
            db.inTransaction(c -> {
                FileOutbox.recordApplied(c, site, channel, seq, clock.instant());
                return null;
            });
        } catch (SQLException e) {
            // The files are in place; the next exchange applies them again (no harm) and records then.
            LOG.warn("hub {}: could not record files of channel '{}' from site {} up to change {}: {}", cfg.nodeId(), channel, site, seq,
                    e.getMessage());
        }
    }
}
