package io.syncline.node;

import io.syncline.api.ChannelSpec;
import io.syncline.api.FileChannelSpec;
import io.syncline.engine.files.ChunkIndex;
import io.syncline.engine.files.Chunker;
import io.syncline.engine.files.Delta;
import io.syncline.engine.files.FileEntry;
import io.syncline.engine.files.FileFolder;
import io.syncline.engine.files.FileOutbox;
import io.syncline.engine.files.FileScanner;
import io.syncline.engine.files.FreshContent;
import io.syncline.engine.files.OpenDirs;
import io.syncline.engine.files.SafePath;
import io.syncline.node.config.NodeConfig;
import io.syncline.transport.http.Headers;
import io.syncline.transport.wire.WireFormat;
import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.FileSystems;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.nio.file.attribute.BasicFileAttributes;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * A site's side of its file channels. Site-to-hub: a FolderWatch (thread syncline-site-<id>-files) walks each channel's
 * folder on file system events and every files.scanInterval, records what changed in the site's database (FileOutbox),
 * and sends what the hub has not acknowledged: an offer of up to PAGE changes, then the changes the hub did not skip,
 * in order, each needed file as a delta against the chunks the hub said it has. Hub-to-sites: one thread per channel
 * (syncline-site-<id>-files-<channel>) asks the hub for its changes after the last one applied here (a long poll),
 * asks for the content it lacks with the ids of the chunks it has, and applies the changes in order into its folder
 * (FileFolder: each file whole or not at all), recording the last one in sync_file_in. Memory: one page of change
 * headers and one chunk at a time, whatever the size of the files.
 */
final class SiteFiles implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SiteFiles.class);
    static final int PAGE = 256;
    /**
     * The most bytes of files a page sent without an offer may hold: the hub reads the whole request even when it
     * refuses it (stale counts), and an offer costs nothing next to sending large files.
     */
    static final long UNOFFERED_MAX_BYTES = 32L << 20;
    /**
     * The most new files a page sent without an offer may hold. More than an offered page: nothing of it is held in
     * memory at the hub, and each page ends with the hub waiting for its files' flushes and its folders' (a first copy
     * of many small files spent a fifth of its time at the ends of pages of 256).
     */
    static final int UNOFFERED_PAGE = 2_048;
    /**
     * The most bytes, and new files, one exchange without an offer sends, its first page and the pages that follow it
     * in the same request (More).
     */
    static final long EXCHANGE_MAX_BYTES = 128L << 20;
    static final int EXCHANGE_MAX_FILES = 16_384;
    static final long EXCHANGE_MAX_MILLIS = 60_000;
    /** How long a fetch of the hub's file changes waits for one. */
    static final long LONG_POLL_MILLIS = 20_000;

    private final NodeConfig cfg;
    private final Database db;
    private final Clock clock;
    private final Supplier<Registration.Response> registration;
    private final Runnable arrived;
    private final FolderWatch outgoing;
    private final Once warned = new Once(() -> LOG.warn("site: more than {} different problems with files told; further ones "
            + "are not told until the node restarts", Once.MAX));
    /** Hub-to-sites channels being fetched, by name. */
    private final Map<String, Thread> fetchers = new ConcurrentHashMap<>();
    private final Map<String, ReentrantLock> folderLocks = new ConcurrentHashMap<>();
    /** Per site-to-hub channel: its sending (see sendEarly). */
    private final Map<String, ReentrantLock> sendLocks = new ConcurrentHashMap<>();
    /** Per site-to-hub channel: whether an early send waits to run. */
    private final Map<String, java.util.concurrent.atomic.AtomicBoolean> earlyWaiting = new ConcurrentHashMap<>();
    /**
     * The content of small new files a walk of a site-to-hub channel read, for the senders (freed after the walk's own
     * send: the folders are walked one at a time).
     */
    private final FreshContent fresh = FreshContent.forHeap();
    /** Site-to-hub channels whose counts an early send found at odds with the hub's: left to the walk's own send. */
    private final Set<String> recount = ConcurrentHashMap.newKeySet();
    /** The early sender's thread (syncline-site-<id>-files-send): sends a walk's first files while it goes on. */
    private final java.util.concurrent.ExecutorService early;
    /** Per channel, its patterns (for rows that reference files). */
    private final Map<FileChannelSpec, FileScanner> matchers = new ConcurrentHashMap<>();
    /** The long polls under way, by channel: cut at close so it need not wait for them. */
    private final Map<String, HttpURLConnection> polls = new ConcurrentHashMap<>();
    private volatile boolean closed;
    volatile String lastError;
    /** Files whose content was written to a request from what their walk read (FreshContent), not read again (for tests). */
    final java.util.concurrent.atomic.AtomicLong sentAsRead = new java.util.concurrent.atomic.AtomicLong();

    record Decision(long seq, String need, String basis) {
    }

    record OfferAnswer(long applied, List<Decision> entries) {
    }

    /**
     * {@code stale}: an apply of changes not offered first was refused, nothing applied, because the hub's count
     * ({@code applied}) disagrees with this site's, as an offer's answer can (a database restored from an older copy).
     */
    record ApplyAnswer(long applied, String error, boolean stale) {
    }

    record Changes(List<FileEntry> entries, long last) {
    }

    /**
     * @param arrived run after files from the hub were applied here: rows of the hub that wait for them may now be applied
     */
    SiteFiles(NodeConfig cfg, Database db, Clock clock, Supplier<Registration.Response> registration, Runnable arrived) throws IOException {
        this.cfg = cfg;
        this.db = db;
        this.clock = clock;
        this.registration = registration;
        this.arrived = arrived;
        this.early = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
            Thread th = new Thread(r, "syncline-site-" + cfg.nodeId() + "-files-send");
            th.setDaemon(true);
            return th;
        });
        this.outgoing = new FolderWatch("syncline-site-" + cfg.nodeId() + "-files", cfg.fileScanInterval(),
                () -> targets(ChannelSpec.Direction.SITE_TO_HUB), (t, under, edited, held) -> {
                    walk(t.channel(), t.folder(), under, edited, held);
                    ReentrantLock sending = sendLock(t.channel().name());
                    // (after an early send of this walk's first files, see sendEarly; not once the node stops)
                    while (!sending.tryLock(100, TimeUnit.MILLISECONDS)) {
                        if (closed) {
                            return true;
                        }
                    }
                    try {
                        recount.remove(t.channel().name());
                        send(registration.get(), t.channel(), t.folder(), false);
                    } catch (IOException | SQLException | RuntimeException e) {
                        throw new FolderWatch.AfterWalkException(e); // (the hub away: what was recorded is sent later)
                    } finally {
                        sending.unlock();
                        fresh.clear(); // (what was not sent is read from the folder)
                    }
                    return true;
                });
    }

    /**
     * Sends, on the early sender's thread, what a walk of {@code ch} under way has recorded and committed so far (a
     * whole walk's first new files: FileOutbox.recordWalk), so that the hub receives them while the walk goes on. At
     * most one such send waits per channel; none runs while the walk's own send (after the walk) does, which sends
     * everything recorded. A failure is left to that send, which reports it.
     */
    private void sendEarly(FileChannelSpec ch, Path folder) {
        java.util.concurrent.atomic.AtomicBoolean waiting = earlyWaiting.computeIfAbsent(ch.name(), k -> new java.util.concurrent.atomic.AtomicBoolean());
        if (recount.contains(ch.name()) || !waiting.compareAndSet(false, true)) {
            return;
        }
        try {
            early.execute(() -> {
                waiting.set(false);
                ReentrantLock sending = sendLock(ch.name());
                if (closed || !sending.tryLock()) {
                    return; // the walk's own send runs (or the node stops)
                }
                try {
                    Registration.Response r = registration.get();
                    if (r != null) {
                        send(r, ch, folder, true);
                    }
                } catch (IOException | SQLException | RuntimeException e) {
                    LOG.debug("site {}: file channel '{}': an early send failed, the walk's own send tries again: {}", cfg.nodeId(),
                            ch.name(), e.toString());
                } finally {
                    sending.unlock();
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            waiting.set(false); // stopping
        }
    }

    /** The lock of a site-to-hub channel's sending (the walk's own send, and early ones). */
    private ReentrantLock sendLock(String channel) {
        return sendLocks.computeIfAbsent(channel, k -> new ReentrantLock());
    }

    /** The last problem with the site's file channels (walks and sends, or fetches), or null. */
    String lastError() {
        String walks = outgoing.lastError;
        return walks != null ? walks : lastError;
    }

    /** After a registration: walks and sends soon, and fetches the hub-to-sites channels it lists. */
    void wake() {
        outgoing.wake();
        for (FolderWatch.Target t : targets(ChannelSpec.Direction.HUB_TO_SITES)) {
            fetchers.computeIfAbsent(t.channel().name(), name -> {
                Thread th = new Thread(() -> fetchLoop(name), "syncline-site-" + cfg.nodeId() + "-files-" + name);
                th.setDaemon(true);
                th.start();
                return th;
            });
        }
    }

    /**
     * Where file {@code path} of hub-to-sites file channel {@code fileChannel} is here once it has arrived from the hub
     * {@code source} (for rows that reference it); null when this site does not take that channel from it.
     */
    Path locate(String source, String fileChannel, String path) {
        Registration.Response r = registration.get();
        if (r == null || !r.hub().equals(source)) {
            return null;
        }
        FileChannelSpec ch = r.fileChannels().stream()
                .filter(c -> c.name().equals(fileChannel) && c.direction() == ChannelSpec.Direction.HUB_TO_SITES).findFirst().orElse(null);
        Path folder = ch == null ? null : cfg.folder(fileChannel).orElse(null);
        if (folder == null) {
            return null;
        }
        // A path the channel's patterns leave out never comes: not waited for.
        return matchers.computeIfAbsent(ch, c -> new FileScanner(folder, c.include(), c.exclude())).matches(path) ? folder.resolve(path) : null;
    }

    /** The file channels of the current registration that go {@code direction} (or both ways) and have a folder here. */
    private List<FolderWatch.Target> targets(ChannelSpec.Direction direction) {
        Registration.Response r = registration.get();
        List<FolderWatch.Target> out = new ArrayList<>();
        if (r == null) {
            return out;
        }
        for (FileChannelSpec ch : r.fileChannels()) {
            if (ch.direction() != direction && ch.direction() != ChannelSpec.Direction.TWO_WAY) {
                continue;
            }
            Path folder = cfg.folder(ch.name()).orElse(null);
            if (folder == null) {
                if (warned.first("no folder: " + ch.name())) {
                    lastError = "file channel '" + ch.name() + "' has no folder here: set folders." + ch.name();
                    LOG.error("site {}: {}; the channel's files are not synced", cfg.nodeId(), lastError);
                }
                continue;
            }
            out.add(new FolderWatch.Target(ch, folder));
        }
        return out;
    }

    // ---- hub to sites ----------------------------------------------------------------------------

    private void fetchLoop(String channel) {
        Backoff backoff = new Backoff(Duration.ofMillis(500), Duration.ofSeconds(30), new java.util.Random());
        while (!closed) {
            FolderWatch.Target t = targets(ChannelSpec.Direction.HUB_TO_SITES).stream()
                    .filter(x -> x.channel().name().equals(channel)).findFirst().orElse(null);
            if (t == null) { // no longer routed here, or no folder: look again later
                pause(Duration.ofSeconds(5));
                continue;
            }
            try {
                if (fetchOnce(registration.get(), t)) {
                    pause(Duration.ofSeconds(1)); // held by a change of this site's that the hub has not taken yet
                }
                backoff.reset();
            } catch (IOException | SQLException | RuntimeException e) {
                lastError = "files of channel '" + channel + "' from the hub: " + e.getMessage();
                if (!closed) {
                    LOG.warn("site {}: {}", cfg.nodeId(), lastError);
                    pause(backoff.next());
                }
            }
        }
    }

    private void pause(Duration d) {
        long until = System.nanoTime() + d.toNanos();
        while (!closed && System.nanoTime() < until) {
            try {
                Thread.sleep(Math.min(250, Math.max(1, (until - System.nanoTime()) / 1_000_000)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /**
     * One long poll for the hub's changes after the last one applied here, and applying them; true when the first of them
     * waits for a change of this site's (two-way).
     */
    private boolean fetchOnce(Registration.Response r, FolderWatch.Target t) throws IOException, SQLException {
        String name = t.channel().name();
        long applied = db.inTransaction(c -> FileOutbox.applied(c, r.hub(), name));
        HttpURLConnection conn = open(r, "/v1/files/changes", name, "&after=" + applied + "&wait=" + LONG_POLL_MILLIS, "GET");
        conn.setReadTimeout((int) (LONG_POLL_MILLIS + 30_000));
        Changes page;
        polls.put(name, conn);
        try {
            if (closed) {
                return false;
            }
            page = WireFormat.MAPPER.readValue(answer(conn, "changes"), Changes.class);
        } finally {
            polls.remove(name);
            conn.disconnect();
        }
        if (page.last() < applied) {
            LOG.warn("site {}: the hub's file channel '{}' ends at change {}, but this site applied up to {} (the hub's database "
                    + "is new or was restored): taking every file again", cfg.nodeId(), name, page.last(), applied);
            db.inTransaction(c -> {
                FileOutbox.recordApplied(c, r.hub(), name, 0, clock.instant());
                return null;
            });
            return false;
        }
        if (page.entries() == null || page.entries().isEmpty() || closed) {
            return false;
        }
        boolean twoWay = t.channel().direction() == ChannelSpec.Direction.TWO_WAY;
        ReentrantLock lock = lock(name);
        if (twoWay) {
            lock.lock(); // the folder's record must not change between the checks below and the changes' application
        }
        try {
            return applyPage(r, t, page.entries(), applied, twoWay);
        } finally {
            if (twoWay) {
                lock.unlock();
            }
        }
    }

    /**
     * Applies a page of the hub's changes in order, and records the last applied. Two-way: the changes are applied up to
     * one of a path this site changed too and has not had taken by the hub yet, which waits (true is returned when it is
     * the first): the site's own change reaches the hub, which settles the two and records the outcome as a new change
     * of the hub's, the one this site then applies. The changes applied are recorded as what the site shares with the hub.
     */
    private boolean applyPage(Registration.Response r, FolderWatch.Target t, List<FileEntry> page, long applied, boolean twoWay)
            throws IOException, SQLException {
        String name = t.channel().name();
        FileFolder folder = new FileFolder(t.folder(), cfg.filePartialMaxAge(), clock);
        List<FileEntry> taken = new ArrayList<>(); // two-way: the changes applied here, recorded as shared with the hub
        List<FileEntry> entries = page;
        if (twoWay) {
            for (int i = 0; i < page.size(); i++) {
                if (held(folder, name, page.get(i))) {
                    LOG.debug("site {}: file channel '{}': '{}' changed here too; the hub settles it first", cfg.nodeId(), name,
                            page.get(i).path());
                    entries = page.subList(0, i);
                    break;
                }
            }
            if (entries.isEmpty()) {
                return true;
            }
        }
        // What each change needs here, decided before the content is asked for (in the order of the changes).
        Map<Long, ChunkIndex> wanted = new java.util.LinkedHashMap<>();
        for (FileEntry e : entries) {
            SafePath.check(e.path());
            if (e.from() != null) {
                SafePath.check(e.from());
            }
            if (!e.deleted() && !(e.from() != null && folder.sameContent(e.from(), e.meta()))
                    && !folder.holds(e.path(), e.meta())) {
                wanted.put(e.seq(), folder.basis(e.meta()));
            }
        }
        HttpURLConnection get = wanted.isEmpty() ? null : open(r, "/v1/files/get", name, "", "POST");
        long done = applied;
        try {
            java.io.DataInputStream content = null;
            if (get != null) {
                get.setChunkedStreamingMode(64 * 1024);
                try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(get.getOutputStream(), 64 * 1024))) {
                    for (FileEntry e : entries) {
                        ChunkIndex basis = wanted.get(e.seq());
                        if (basis == null) {
                            continue;
                        }
                        byte[] header = WireFormat.MAPPER.writeValueAsBytes(Map.of("path", e.path(), "size", e.size(), "hash", e.hash()));
                        out.writeInt(header.length);
                        out.write(header);
                        long[] ids = basis.ids();
                        out.writeInt(ids.length);
                        for (long id : ids) {
                            out.writeLong(id);
                        }
                    }
                    out.writeInt(0);
                }
                content = new java.io.DataInputStream(new java.io.BufferedInputStream(answer(get, "content request"), 64 * 1024));
            }
            for (FileEntry e : entries) {
                if (closed) {
                    break;
                }
                ChunkIndex basis = wanted.get(e.seq());
                // Two-way: looked at again just before the file is replaced or removed, since a page may take long.
                FileFolder.Check stillOurs = () -> !twoWay || !held(folder, name, e);
                if (e.deleted()) {
                    if (!stillOurs.holds()) {
                        break;
                    }
                    folder.delete(e.path());
                } else if (basis != null) {
                    if (content.readUnsignedByte() == 0) {
                        break; // gone at the hub since it was listed: its deletion comes as a later change
                    }
                    if (folder.receive(e.meta(), content, basis, stillOurs) == null) {
                        break; // changed here meanwhile: the hub settles it first
                    }
                } else if (!stillOurs.holds()) {
                    break;
                } else if (!(e.from() != null && folder.copyLocal(e.from(), e.meta(), !twoWay)) && !folder.has(e.meta())) {
                    // (two-way copies rather than moves: the hub's deletion of the old path follows, and is checked then)
                    break; // changed here since it was looked at: asked for again at the next poll
                }
                if (twoWay) {
                    taken.add(e);
                }
                done = e.seq();
            }
        } finally {
            if (get != null) {
                get.disconnect();
            }
            folder.flush();
            if (done > applied) {
                long upTo = done;
                // After the flush: a record of a file the disk might still lose in a crash would make the site send its
                // old version back as a change of its own.
                db.inTransaction(c -> {
                    for (FileEntry e : taken) {
                        if (e.deleted()) {
                            FileOutbox.forget(c, name, e.path());
                        } else {
                            FileOutbox.adopt(c, name, e.meta());
                        }
                    }
                    FileOutbox.recordApplied(c, r.hub(), name, upTo, clock.instant());
                    return null;
                });
                arrived.run();
            }
        }
        return false;
    }

    /**
     * Two-way: whether the hub's change {@code e} waits because this site changed its path too and the hub has not
     * taken that yet. Not when the hub's change is this site's own content coming back (a file saved again and again
     * would otherwise hold the channel for good).
     */
    private boolean held(FileFolder folder, String channel, FileEntry e) throws IOException {
        try {
            long[] acked = new long[1];
            FileOutbox.Recorded rec = db.inTransaction(c -> {
                acked[0] = FileOutbox.acknowledged(c, channel);
                return FileOutbox.recorded(c, channel, e.path());
            });
            if (!e.deleted() && rec != null && rec.meta() != null && rec.meta().hash().equals(e.hash())
                    && folder.holds(e.path(), rec.meta())) {
                return false;
            }
            return changedHere(folder, e.path(), rec, acked[0]);
        } catch (SQLException x) {
            throw new IOException("site database: " + x.getMessage(), x);
        }
    }

    /**
     * Two-way: whether this site changed {@code path} since it last had it in common with the hub: a change recorded and
     * not yet taken by the hub, or a file that differs from its record (or exists unrecorded, or is gone), not yet walked.
     */
    private static boolean changedHere(FileFolder folder, String path, FileOutbox.Recorded rec, long acked) throws IOException {
        Path f = folder.file(path);
        boolean exists = f != null && Files.exists(f, java.nio.file.LinkOption.NOFOLLOW_LINKS);
        if (rec == null) {
            return exists;
        }
        if (rec.seq() > acked) {
            return true;
        }
        if (rec.meta() == null) {
            return exists;
        }
        return !exists || !folder.holds(path, rec.meta());
    }

    // ---- site to hub -----------------------------------------------------------------------------

    /**
     * Records what changed in the folder since the last walk: in the folders {@code under} (null: all of it), or only
     * the files {@code edited} when it is not null and the channel goes site-to-hub; {@code held}: as in
     * FolderWatch.Walk.
     */
    private void walk(FileChannelSpec ch, Path folder, List<String> under, List<String> edited, Set<String> held)
            throws IOException, SQLException {
        if (under != null && under.isEmpty()) {
            return;
        }
        FileScanner scanner = new FileScanner(folder, ch.include(), ch.exclude());
        ReentrantLock lock = lock(ch.name());
        lock.lock(); // two-way: not while the hub's changes are applied to the folder (see fetchOnce)
        try (Connection c = db.connection()) {
            try {
                java.util.function.Consumer<String> unsyncable = why -> {
                    if (warned.first(ch.name() + ": " + why)) {
                        LOG.warn("site {}: file channel '{}': a file is not sent: {}", cfg.nodeId(), ch.name(), why);
                    }
                };
                int n = edited != null && ch.direction() == ChannelSpec.Direction.SITE_TO_HUB
                        ? FileOutbox.recordEdited(c, ch.name(), scanner, clock.millis(), edited) : -1;
                if (n < 0) { // (or one of the edited files is no longer a plain file: their folders are walked)
                    n = FileOutbox.recordWalk(c, ch.name(), scanner, clock.millis(), unsyncable,
                            ch.direction() == ChannelSpec.Direction.TWO_WAY, under, held,
                            ch.direction() == ChannelSpec.Direction.SITE_TO_HUB ? () -> sendEarly(ch, folder) : null,
                            ch.direction() == ChannelSpec.Direction.SITE_TO_HUB ? fresh : null);
                }
                c.commit();
                LOG.debug("site {}: file channel '{}': {} changes recorded", cfg.nodeId(), ch.name(), n);
            } catch (IOException | SQLException | RuntimeException e) {
                c.rollback();
                fresh.clear(); // (no send follows this walk)
                throw e;
            }
        } finally {
            lock.unlock();
        }
    }

    /** The lock of a channel's folder record: the walk, and the application of the hub's changes of a two-way channel. */
    private ReentrantLock lock(String channel) {
        return folderLocks.computeIfAbsent(channel, k -> new ReentrantLock());
    }

    /**
     * Sends every recorded change the hub has not acknowledged, a page at a time. {@code early} (an early send, while a
     * walk of the channel may be recording): when the hub's count and this site's disagree, it stops, leaving the
     * renumbering (startOver, which rewrites the numbers a walk records with) to the walk's own send.
     */
    private void send(Registration.Response r, FileChannelSpec ch, Path folder, boolean early) throws IOException, SQLException {
        while (!closed) {
            long acked;
            long offered;
            List<FileEntry> pending;
            List<FileEntry> unoffered;
            try (Connection c = db.connection()) {
                acked = FileOutbox.acknowledged(c, ch.name());
                offered = FileOutbox.offered(c, ch.name());
                boolean oneWay = ch.direction() == ChannelSpec.Direction.SITE_TO_HUB;
                pending = FileOutbox.pending(c, ch.name(), acked, oneWay ? UNOFFERED_PAGE : PAGE);
                unoffered = oneWay ? unoffered(pending, offered, UNOFFERED_MAX_BYTES) : null;
                pending = unoffered != null ? unoffered : pending.subList(0, Math.min(PAGE, pending.size()));
                if (!pending.isEmpty()) {
                    FileOutbox.markOffered(c, ch.name(), pending.get(pending.size() - 1).seq());
                }
                c.commit();
            }
            if (pending.isEmpty()) {
                return;
            }
            if (unoffered != null) {
                More more = new More(ch, pending);
                ApplyAnswer res = apply(r, ch, folder, pending, null, "&unoffered=1&acked=" + acked + "&offered=" + offered, more);
                if (res.stale()) {
                    if (early) {
                        leaveRecount(ch, offered);
                        return;
                    }
                    startOver(ch, res.applied(), offered, acked);
                    continue;
                }
                if (!applied(ch, more.last(), res, acked)) {
                    return;
                }
                continue;
            }
            OfferAnswer offer = offer(r, ch, pending);
            if (offer.applied() > offered || offer.applied() < acked) {
                if (early) {
                    leaveRecount(ch, offered);
                    return;
                }
                startOver(ch, offer.applied(), offered, acked);
                continue;
            }
            if (offer.applied() > acked) {
                db.inTransaction(c -> {
                    FileOutbox.acknowledge(c, ch.name(), offer.applied());
                    return null;
                });
            }
            Map<Long, Decision> bySeq = new java.util.HashMap<>();
            offer.entries().forEach(d -> bySeq.put(d.seq(), d));
            List<FileEntry> toApply = new ArrayList<>();
            for (FileEntry e : pending) {
                Decision d = bySeq.get(e.seq());
                if (d == null) {
                    throw new IOException("the hub's answer to the offer leaves out change " + e.seq());
                }
                if (!d.need().equals("skip")) {
                    toApply.add(e);
                }
            }
            if (toApply.isEmpty()) {
                continue;
            }
            ApplyAnswer res = apply(r, ch, folder, toApply, bySeq, "", null);
            if (!applied(ch, toApply.get(toApply.size() - 1).seq(), res, acked)) {
                return;
            }
        }
    }

    /**
     * The changes at the start of {@code pending} that go to the hub without an offer, or null. New files only (a first
     * copy), never sent before: the hub has nothing of them from this site, so an offer would only hear "data, no basis"
     * for each. Sent whole at once, up to {@code maxBytes}; the hub checks the counts as for an offer. (A
     * page sent before, whose exchange broke, is offered: the hub lists what it kept of a file cut midway, and the
     * transfer resumes.) Site-to-hub channels only.
     */
    private static List<FileEntry> unoffered(List<FileEntry> pending, long offered, long maxBytes) {
        if (pending.isEmpty() || pending.get(0).seq() <= offered) {
            return null;
        }
        long bytes = 0;
        int n = 0;
        for (FileEntry e : pending) {
            if (!neverTaken(e) || bytes + e.size() > maxBytes) {
                break;
            }
            bytes += e.size();
            n++;
        }
        return n == 0 ? null : pending.subList(0, n);
    }

    /**
     * Further pages of new files for an exchange sent without an offer, those recorded by then (a walk records them
     * while an early send is under way): each read and marked offered once the one before has been written, so the
     * hub's flushes go on rather than each page ending with the hub waiting for its files' flushes and the site for the
     * answer. Up to {@link #EXCHANGE_MAX_BYTES} and {@link #EXCHANGE_MAX_FILES} in all, and no page begun after
     * {@link #EXCHANGE_MAX_MILLIS}: the hub records what it applied only at an exchange's end, reads the whole of one it
     * refuses (stale counts), and gives a request's body a time limit.
     */
    private final class More {
        private final FileChannelSpec ch;
        private final long began = clock.millis();
        private long last;
        private long bytes;
        private int files;

        More(FileChannelSpec ch, List<FileEntry> first) {
            this.ch = ch;
            counted(first);
        }

        /** The number of the last change handed out. */
        long last() {
            return last;
        }

        private void counted(List<FileEntry> page) {
            for (FileEntry e : page) {
                bytes += e.size();
            }
            files += page.size();
            last = page.get(page.size() - 1).seq();
        }

        /** The next page, marked offered; null when there is none now, or the exchange is long enough. */
        List<FileEntry> next() {
            if (closed || bytes >= EXCHANGE_MAX_BYTES || files >= EXCHANGE_MAX_FILES || clock.millis() - began >= EXCHANGE_MAX_MILLIS) {
                return null;
            }
            try (Connection c = db.connection()) {
                List<FileEntry> page = unoffered(FileOutbox.pending(c, ch.name(), last, Math.min(UNOFFERED_PAGE, EXCHANGE_MAX_FILES - files)),
                        FileOutbox.offered(c, ch.name()), Math.min(UNOFFERED_MAX_BYTES, EXCHANGE_MAX_BYTES - bytes));
                if (page == null) {
                    return null;
                }
                FileOutbox.markOffered(c, ch.name(), page.get(page.size() - 1).seq());
                c.commit();
                counted(page);
                return page;
            } catch (SQLException e) {
                // The exchange ends with what was sent; the send that follows meets the database's trouble on its own.
                LOG.debug("site {}: file channel '{}': no further page for this exchange: {}", cfg.nodeId(), ch.name(), e.getMessage());
                return null;
            }
        }
    }

    /** A change the hub never took: a new file, not moved here, whose path has no content acknowledged by the hub. */
    private static boolean neverTaken(FileEntry e) {
        return !e.deleted() && e.from() == null && e.base() == null;
    }

    /**
     * An early send found the hub's count at odds with this site's: no more early sends until the walk's own send has
     * renumbered the changes, and the count of changes offered goes back to {@code offered}, its value before this
     * exchange (which the hub refused whole): else the pages the exchange marked offered could raise it to the hub's
     * count, and the walk's own send would take the hub's count for its own and not renumber.
     */
    private void leaveRecount(FileChannelSpec ch, long offered) throws SQLException {
        db.inTransaction(c -> {
            FileOutbox.resetOffered(c, ch.name(), offered);
            return null;
        });
        recount.add(ch.name());
    }

    /** The hub's count and this site's disagree (see FileOutbox.renumberAfter): every file is offered again. */
    private void startOver(FileChannelSpec ch, long hubApplied, long offered, long acked) throws SQLException {
        LOG.warn("site {}: the hub has file changes of channel '{}' up to {}, but this site offered up to {} and saw up to {} "
                + "acknowledged (a database restored from an older copy): every file is offered again", cfg.nodeId(), ch.name(),
                hubApplied, offered, acked);
        db.inTransaction(c -> {
            FileOutbox.renumberAfter(c, ch.name(), hubApplied);
            return null;
        });
    }

    /**
     * Records what the hub applied of the changes sent, up to number {@code sent}; throws when it stopped at an error;
     * false when it stopped short without one (a file went away while it was sent: the next walk records that), true to
     * go on with the next page.
     */
    private boolean applied(FileChannelSpec ch, long sent, ApplyAnswer res, long acked) throws IOException, SQLException {
        if (res.applied() > acked) {
            db.inTransaction(c -> {
                FileOutbox.acknowledge(c, ch.name(), res.applied());
                return null;
            });
        }
        if (res.error() != null) {
            throw new IOException("the hub applied changes up to " + res.applied() + ", then: " + res.error());
        }
        return res.applied() >= sent;
    }

    private OfferAnswer offer(Registration.Response r, FileChannelSpec ch, List<FileEntry> pending) throws IOException {
        HttpURLConnection conn = open(r, "/v1/files/offer", ch.name(), "", "POST");
        try {
            conn.setRequestProperty("Content-Type", "application/json");
            try (var out = conn.getOutputStream()) {
                WireFormat.MAPPER.writeValue(out, Map.of("entries", pending));
            }
            return WireFormat.MAPPER.readValue(answer(conn, "offer"), OfferAnswer.class);
        } finally {
            conn.disconnect();
        }
    }

    /**
     * Sends {@code changes} with their content where {@code bySeq} (the offer's answer) asks for it, as a delta against
     * the basis it lists; with {@code bySeq} null (changes not offered), the content of every change that is not a
     * deletion, whole, and then in the same request the pages {@code more} gives (null: none).
     */
    private ApplyAnswer apply(Registration.Response r, FileChannelSpec ch, Path folder, List<FileEntry> changes, Map<Long, Decision> bySeq,
                              String query, More more) throws IOException {
        HttpURLConnection conn = open(r, "/v1/files/apply", ch.name(), query, "POST");
        try {
            conn.setRequestProperty("Content-Type", "application/octet-stream");
            conn.setChunkedStreamingMode(64 * 1024);
            // (dirs null where folders cannot be opened so: files are read by path)
            try (OpenDirs dirs = OpenDirs.of(folder);
                 DataOutputStream out = new DataOutputStream(new BufferedOutputStream(conn.getOutputStream(), 64 * 1024))) {
                List<FileEntry> page = changes;
                byte[] kept = new byte[FreshContent.MAX_FILE]; // (each content taken from the walk's, in turn)
                while (page != null && written(ch.name(), page, bySeq, folder, dirs, kept, out)) {
                    page = more == null ? null : more.next();
                }
                out.writeInt(0);
            }
            return WireFormat.MAPPER.readValue(answer(conn, "apply"), ApplyAnswer.class);
        } finally {
            conn.disconnect();
        }
    }

    /**
     * Writes {@code page}'s changes to an apply request (see apply). A content the walk read and kept (FreshContent) for
     * the change's length and hash is sent from there (even if the file has changed or gone since: the next walk records
     * that), else the file is read; false when it stopped at a file deleted since the walk (the changes before it go, the
     * next walk records the deletion).
     */
    private boolean written(String channel, List<FileEntry> page, Map<Long, Decision> bySeq, Path folder, OpenDirs dirs,
                            byte[] kept, DataOutputStream out) throws IOException {
        for (FileEntry e : page) {
            Decision d = bySeq == null ? null : bySeq.get(e.seq());
            boolean data = (d == null || d.need().equals("data")) && !e.deleted();
            int keptLength = data ? fresh.take(channel, e.path(), e.size(), e.hash(), kept) : -1;
            InputStream content = null;
            if (keptLength >= 0) {
                sentAsRead.incrementAndGet();
            } else if (data) {
                try {
                    content = dirs != null ? dirs.read(e.path()) : Files.newInputStream(SafePath.resolve(folder, e.path()));
                } catch (NoSuchFileException gone) {
                    return false;
                }
            }
            byte[] header = WireFormat.MAPPER.writeValueAsBytes(e);
            out.writeInt(header.length);
            out.write(header);
            out.writeBoolean(data);
            if (data) {
                Chunker.Sizes sizes = Chunker.Sizes.forFile(e.size());
                ChunkIndex basis = ChunkIndex.ofIds(HubFiles.basisIds(d == null || d.basis() == null ? "" : d.basis()));
                if (keptLength >= 0) {
                    Delta.encode(kept, keptLength, sizes, basis, out);
                } else {
                    try (InputStream in = content) {
                        Delta.encode(in, sizes, basis, out);
                    }
                }
            }
        }
        return true;
    }

    private HttpURLConnection open(Registration.Response r, String path, String channel, String query, String method) throws IOException {
        HttpURLConnection conn = (HttpURLConnection) URI.create(cfg.hubUrl() + path + "?channel="
                + URLEncoder.encode(channel, StandardCharsets.UTF_8) + query).toURL().openConnection();
        conn.setConnectTimeout(10_000);
        conn.setReadTimeout((int) Math.min(Integer.MAX_VALUE, cfg.readTimeout().toMillis()));
        conn.setRequestMethod(method);
        conn.setDoOutput(method.equals("POST"));
        conn.setRequestProperty("Authorization", "Bearer " + r.secret());
        conn.setRequestProperty(Headers.NODE, cfg.nodeId());
        return conn;
    }

    private static InputStream answer(HttpURLConnection conn, String what) throws IOException {
        int status = conn.getResponseCode();
        if (status != 200) {
            InputStream err = conn.getErrorStream();
            String body = err == null ? "" : new String(err.readNBytes(4096), StandardCharsets.UTF_8);
            throw new IOException("file " + what + " refused by the hub (HTTP " + status + "): " + body);
        }
        return conn.getInputStream();
    }

    @Override
    public void close() {
        closed = true;
        outgoing.close();
        early.shutdown();
        try {
            if (!early.awaitTermination(10, TimeUnit.SECONDS)) {
                LOG.warn("site {}: the early file sender did not end within 10 s of stopping", cfg.nodeId());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        polls.values().forEach(HttpURLConnection::disconnect);
        for (Thread t : fetchers.values()) {
            try {
                t.join(LONG_POLL_MILLIS + 5_000); // a long poll ends by itself; the hub answers it at once when it stops
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        fresh.close(); // (its ring to another node of this process)
    }
}
