package io.syncline.node;

import com.sun.net.httpserver.HttpExchange;
import io.syncline.api.BadBatchException;
import io.syncline.api.ChannelSpec;
import io.syncline.api.FileChannelSpec;
import io.syncline.api.SyncException;
import io.syncline.engine.files.ChunkIndex;
import io.syncline.engine.files.Delta;
import io.syncline.engine.files.FileEntry;
import io.syncline.engine.files.FileFolder;
import io.syncline.engine.files.SafePath;
import io.syncline.node.config.NodeConfig;
import io.syncline.transport.http.HttpEndpoint;
import io.syncline.transport.http.HttpError;
import io.syncline.transport.wire.WireFormat;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
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
 */
final class HubFiles {
    private static final Logger LOG = LoggerFactory.getLogger(HubFiles.class);
    /** Longest header of one change in an apply stream. */
    private static final int MAX_ENTRY_BYTES = 64 * 1024;

    private final NodeConfig cfg;
    private final Database db;
    private final Clock clock;
    private final Map<String, FileChannelSpec> channels = new LinkedHashMap<>();
    private final Map<String, Path> folders = new LinkedHashMap<>();
    private final Map<String, ReentrantLock> locks = new ConcurrentHashMap<>();
    /** Bytes of file content received, and bytes built from chunks the hub already had (for status and tests). */
    final AtomicLong literalBytes = new AtomicLong();
    final AtomicLong copiedBytes = new AtomicLong();
    final AtomicLong filesApplied = new AtomicLong();

    /** Offer answer for one change: skip (already applied), none (no content needed) or data (with the basis). */
    record Decision(long seq, String need, String basis) {
    }

    record Offer(List<FileEntry> entries) {
    }

    HubFiles(NodeConfig cfg, Database db, Clock clock) {
        this.cfg = cfg;
        this.db = db;
        this.clock = clock;
        List<String> problems = new ArrayList<>();
        for (FileChannelSpec f : cfg.fileChannels()) {
            channels.put(f.name(), f);
            if (f.direction() != ChannelSpec.Direction.SITE_TO_HUB) {
                problems.add("file channel '" + f.name() + "': direction " + f.direction() + " is not supported yet (site-to-hub only)");
            }
            cfg.folder(f.name()).ifPresentOrElse(p -> folders.put(f.name(), p),
                    () -> problems.add("file channel '" + f.name() + "' has no folder at the hub: set folders." + f.name()));
        }
        if (!problems.isEmpty()) {
            throw new SyncException(SyncException.Stage.CONFIG, "hub " + cfg.nodeId() + ": " + String.join("; ", problems));
        }
    }

    /** The file channels a site takes part in (every site-to-hub one). */
    List<FileChannelSpec> channelsFor(String site) {
        return List.copyOf(channels.values());
    }

    /** The site's database is new: its change numbers start again. Runs in the registration's transaction. */
    static void forget(Connection c, String site) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_file_in WHERE source = ?")) {
            ps.setString(1, site);
            ps.executeUpdate();
        }
    }

    void handleOffer(HttpExchange ex, String site) throws IOException {
        FileChannelSpec ch = channel(ex);
        Offer offer;
        try {
            offer = WireFormat.MAPPER.readValue(HttpEndpoint.readSmallBody(ex), Offer.class);
        } catch (IOException e) {
            throw new HttpError(400, "file offer of channel '" + ch.name() + "' is not valid JSON: " + e.getMessage());
        }
        if (offer == null || offer.entries() == null) {
            throw new HttpError(400, "file offer of channel '" + ch.name() + "' has no entries");
        }
        FileFolder folder = folder(ch, site);
        long applied = applied(site, ch.name());
        List<Decision> out = new ArrayList<>();
        for (FileEntry e : offer.entries()) {
            check(ch, e);
            if (e.seq() <= applied) {
                out.add(new Decision(e.seq(), "skip", null));
            } else if (e.deleted() || e.from() != null && folder.holds(e.from(), e.meta()) || folder.holds(e.path(), e.meta())) {
                out.add(new Decision(e.seq(), "none", null));
            } else {
                out.add(new Decision(e.seq(), "data", basis(folder.basis(e.meta()))));
            }
        }
        HttpEndpoint.sendJson(ex, 200, Map.of("applied", applied, "entries", out));
    }

    void handleApply(HttpExchange ex, String site) throws IOException {
        FileChannelSpec ch = channel(ex);
        FileFolder folder = folder(ch, site);
        ReentrantLock lock = locks.computeIfAbsent(site + '\0' + ch.name(), k -> new ReentrantLock());
        if (!lock.tryLock()) {
            throw new HttpError(409, "site '" + site + "' is already sending files of channel '" + ch.name() + "'");
        }
        long applied = applied(site, ch.name());
        long start = applied;
        String error = null;
        DataInputStream in = new DataInputStream(new BufferedInputStream(ex.getRequestBody(), 64 * 1024));
        try {
            while (true) {
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
                apply(folder, e, data, in);
                applied = Math.max(applied, e.seq());
            }
        } catch (SyncException | IOException e) {
            error = e.getMessage();
            LOG.warn("hub {}: files of channel '{}' from site {}: applied up to change {}, then: {}", cfg.nodeId(), ch.name(), site,
                    applied, error);
            HttpEndpoint.drain(in);
        } finally {
            try {
                if (applied > start) {
                    record(site, ch.name(), applied);
                }
            } finally {
                lock.unlock();
            }
        }
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("applied", applied);
        if (error != null) {
            body.put("error", error);
        }
        HttpEndpoint.sendJson(ex, 200, body);
    }

    private void apply(FileFolder folder, FileEntry e, boolean data, DataInputStream in) throws IOException {
        if (e.deleted()) {
            folder.delete(e.path());
        } else if (data) {
            ChunkIndex basis = folder.basis(e.meta());
            Delta.Stats s = folder.receive(e.meta(), in, basis);
            literalBytes.addAndGet(s.literalBytes());
            copiedBytes.addAndGet(s.copiedBytes());
        } else if (!(e.from() != null && folder.copyLocal(e.from(), e.meta(), true)) && !folder.has(e.meta())) {
            throw new BadBatchException(SyncException.Stage.APPLY, "file '" + e.path() + "' (change " + e.seq()
                    + "): the hub does not hold its content and none was sent; it is offered again");
        }
        filesApplied.incrementAndGet();
    }

    private FileChannelSpec channel(HttpExchange ex) {
        String name = HttpEndpoint.query(ex).get("channel");
        FileChannelSpec ch = name == null ? null : channels.get(name);
        if (ch == null) {
            throw new HttpError(404, name == null ? "missing query parameter 'channel'" : "no file channel '" + name + "' at this hub");
        }
        return ch;
    }

    private FileFolder folder(FileChannelSpec ch, String site) throws IOException {
        return new FileFolder(folders.get(ch.name()).resolve(site));
    }

    private static void check(FileChannelSpec ch, FileEntry e) {
        try {
            SafePath.check(e.path());
            if (e.from() != null) {
                SafePath.check(e.from());
            }
            if (!e.deleted()) {
                e.meta();
            }
        } catch (IllegalArgumentException | BadBatchException x) {
            throw new HttpError(400, "file channel '" + ch.name() + "', change " + e.seq() + ": " + x.getMessage());
        }
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
        try (Connection c = db.connection(); PreparedStatement ps = c.prepareStatement(
                "SELECT last_seq FROM sync_file_in WHERE source = ? AND channel = ?")) {
            ps.setString(1, site);
            ps.setString(2, channel);
            try (ResultSet rs = ps.executeQuery()) {
                long v = rs.next() ? rs.getLong(1) : 0;
                c.commit();
                return v;
            }
        } catch (SQLException e) {
            throw new HttpError(503, "hub database unavailable: " + e.getMessage());
        }
    }

    private void record(String site, String channel, long seq) {
        try (Connection c = db.connection()) {
            try (PreparedStatement ps = c.prepareStatement("UPDATE sync_file_in SET last_seq = ?, applied_at = ? WHERE source = ? AND channel = ?")) {
                ps.setLong(1, seq);
                ps.setTimestamp(2, Timestamp.from(clock.instant()));
                ps.setString(3, site);
                ps.setString(4, channel);
                if (ps.executeUpdate() == 0) {
                    try (PreparedStatement ins = c.prepareStatement(
                            "INSERT INTO sync_file_in (source, channel, last_seq, applied_at) VALUES (?, ?, ?, ?)")) {
                        ins.setString(1, site);
                        ins.setString(2, channel);
                        ins.setLong(3, seq);
                        ins.setTimestamp(4, Timestamp.from(clock.instant()));
                        ins.executeUpdate();
                    }
                }
            }
            c.commit();
        } catch (SQLException e) {
            // The files are in place; the next exchange applies them again (no harm) and records then.
            LOG.warn("hub {}: could not record files of channel '{}' from site {} up to change {}: {}", cfg.nodeId(), channel, site, seq,
                    e.getMessage());
        }
    }
}
