package io.syncline.node;

import io.syncline.api.ChannelSpec;
import io.syncline.api.FileChannelSpec;
import io.syncline.engine.files.ChunkIndex;
import io.syncline.engine.files.Delta;
import io.syncline.engine.files.FileEntry;
import io.syncline.engine.files.FileOutbox;
import io.syncline.engine.files.FileScanner;
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
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * A site's side of its site-to-hub file channels, on one thread of its own (syncline-site-<id>-files). It walks each
 * channel's folder (FileScanner) when the file system reports a change there (WatchService, after a short pause so a
 * burst of writes is one walk) and every files.scanInterval in any case, records what changed in the site's database
 * (FileOutbox), and sends what the hub has not acknowledged: an offer of up to PAGE changes, then the changes the hub
 * did not skip, in order, each needed file as a delta against the chunks the hub said it has. Memory: one page of
 * change headers and one chunk at a time, whatever the size of the files.
 */
final class SiteFiles implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SiteFiles.class);
    static final int PAGE = 256;
    /** How long a burst of file system events may go on before the folder is walked. */
    private static final long SETTLE_MILLIS = 100;

    private final NodeConfig cfg;
    private final Database db;
    private final Clock clock;
    private final Supplier<Registration.Response> registration;
    private final Thread thread;
    private final WatchService watcher;
    private final Set<String> warned = ConcurrentHashMap.newKeySet();
    private final Map<Path, WatchKey> watched = new ConcurrentHashMap<>();
    private final Backoff backoff = new Backoff(Duration.ofMillis(500), Duration.ofSeconds(30), new java.util.Random());
    private volatile boolean closed;
    private volatile boolean woken;
    volatile String lastError;

    record Decision(long seq, String need, String basis) {
    }

    record OfferAnswer(long applied, List<Decision> entries) {
    }

    record ApplyAnswer(long applied, String error) {
    }

    SiteFiles(NodeConfig cfg, Database db, Clock clock, Supplier<Registration.Response> registration) throws IOException {
        this.cfg = cfg;
        this.db = db;
        this.clock = clock;
        this.registration = registration;
        this.watcher = FileSystems.getDefault().newWatchService();
        this.thread = new Thread(this::loop, "syncline-site-" + cfg.nodeId() + "-files");
        thread.setDaemon(true);
        thread.start();
    }

    /** Walks and sends soon (within a quarter of a second): after registering. No interrupt: it would close H2's files. */
    void wake() {
        woken = true;
    }

    private void loop() {
        long nextWalk = 0;
        while (!closed) {
            Registration.Response r = registration.get();
            List<FileChannelSpec> mine = r == null ? List.of()
                    : r.fileChannels().stream().filter(f -> f.direction() == ChannelSpec.Direction.SITE_TO_HUB).toList();
            boolean failed = false;
            for (FileChannelSpec ch : mine) {
                Path folder = cfg.folder(ch.name()).orElse(null);
                if (folder == null) {
                    if (warned.add(ch.name())) {
                        lastError = "file channel '" + ch.name() + "' has no folder here: set folders." + ch.name();
                        LOG.error("site {}: {}; the channel's files are not sent", cfg.nodeId(), lastError);
                    }
                    continue;
                }
                try {
                    Files.createDirectories(folder);
                    watch(folder);
                    walk(ch, folder);
                    send(r, ch, folder);
                } catch (IOException | SQLException | RuntimeException e) {
                    failed = true;
                    lastError = "files of channel '" + ch.name() + "': " + e.getMessage();
                    LOG.warn("site {}: {}", cfg.nodeId(), lastError);
                }
            }
            long now = System.nanoTime();
            if (!failed) {
                backoff.reset();
            }
            nextWalk = failed ? now + backoff.next().toNanos() : now + cfg.fileScanInterval().toNanos();
            waitForChange(nextWalk);
        }
    }

    /** Sleeps until {@code deadline} (System.nanoTime) or a change in a watched folder (then lets the burst settle). */
    private void waitForChange(long deadline) {
        try {
            while (!closed && !woken) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return;
                }
                WatchKey k = watcher.poll(Math.min(left, TimeUnit.MILLISECONDS.toNanos(250)), TimeUnit.NANOSECONDS);
                if (k != null) {
                    drain(k);
                    Thread.sleep(SETTLE_MILLIS);
                    while ((k = watcher.poll()) != null) {
                        drain(k);
                    }
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            closed = true;
        } catch (ClosedWatchServiceException e) {
            // closing
        } finally {
            woken = false;
        }
    }

    private static void drain(WatchKey k) {
        k.pollEvents();
        k.reset();
    }

    /** Watches every folder under {@code root} but Syncline's own; new folders are added at each walk. */
    private void watch(Path root) throws IOException {
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
                if (dir.getFileName() != null && dir.getFileName().toString().equals(SafePath.WORK_DIR) && dir.getParent().equals(root)) {
                    return FileVisitResult.SKIP_SUBTREE;
                }
                if (!watched.containsKey(dir)) {
                    watched.put(dir, dir.register(watcher, StandardWatchEventKinds.ENTRY_CREATE, StandardWatchEventKinds.ENTRY_DELETE,
                            StandardWatchEventKinds.ENTRY_MODIFY));
                }
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFileFailed(Path file, IOException e) {
                return FileVisitResult.CONTINUE;
            }
        });
        watched.entrySet().removeIf(e -> !e.getValue().isValid());
    }

    /** Records what changed in the folder since the last walk. */
    private void walk(FileChannelSpec ch, Path folder) throws IOException, SQLException {
        FileScanner scanner = new FileScanner(folder, ch.include(), ch.exclude());
        try (Connection c = db.connection()) {
            try {
                Map<String, io.syncline.engine.files.FileMeta> known = FileOutbox.known(c, ch.name());
                List<FileScanner.Change> changes = scanner.scan(known, clock.millis(), why -> {
                    if (warned.add(why)) {
                        LOG.warn("site {}: file channel '{}': a file is not sent: {}", cfg.nodeId(), ch.name(), why);
                    }
                });
                FileOutbox.record(c, ch.name(), changes);
                c.commit();
                if (!changes.isEmpty()) {
                    LOG.debug("site {}: file channel '{}': {} changes recorded", cfg.nodeId(), ch.name(), changes.size());
                }
            } catch (IOException | SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
    }

    /** Sends every recorded change the hub has not acknowledged, a page at a time. */
    private void send(Registration.Response r, FileChannelSpec ch, Path folder) throws IOException, SQLException {
        while (!closed) {
            long acked;
            long next;
            List<FileEntry> pending;
            try (Connection c = db.connection()) {
                acked = FileOutbox.acknowledged(c, ch.name());
                next = FileOutbox.next(c, ch.name());
                pending = FileOutbox.pending(c, ch.name(), acked, PAGE);
                c.commit();
            }
            if (pending.isEmpty()) {
                return;
            }
            OfferAnswer offer = offer(r, ch, pending);
            if (offer.applied() >= next) {
                LOG.warn("site {}: the hub has file changes of channel '{}' up to {}, but this site numbered only up to {} (database "
                        + "restored?): every file is offered again", cfg.nodeId(), ch.name(), offer.applied(), next - 1);
                inTransaction(c -> FileOutbox.renumberAfter(c, ch.name(), offer.applied()));
                continue;
            }
            if (offer.applied() > acked) {
                inTransaction(c -> FileOutbox.acknowledge(c, ch.name(), offer.applied()));
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
            ApplyAnswer res = apply(r, ch, folder, toApply, bySeq);
            if (res.applied() > acked) {
                inTransaction(c -> FileOutbox.acknowledge(c, ch.name(), res.applied()));
            }
            if (res.error() != null) {
                throw new IOException("the hub applied changes up to " + res.applied() + ", then: " + res.error());
            }
            if (res.applied() < toApply.get(toApply.size() - 1).seq()) {
                return; // a file went away while it was sent: the next walk records that
            }
        }
    }

    @FunctionalInterface
    private interface Work {
        void run(Connection c) throws SQLException;
    }

    private void inTransaction(Work w) throws SQLException {
        try (Connection c = db.connection()) {
            try {
                w.run(c);
                c.commit();
            } catch (SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
    }

    private OfferAnswer offer(Registration.Response r, FileChannelSpec ch, List<FileEntry> pending) throws IOException {
        HttpURLConnection conn = open(r, "/v1/files/offer", ch);
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

    private ApplyAnswer apply(Registration.Response r, FileChannelSpec ch, Path folder, List<FileEntry> changes, Map<Long, Decision> bySeq)
            throws IOException {
        HttpURLConnection conn = open(r, "/v1/files/apply", ch);
        try {
            conn.setRequestProperty("Content-Type", "application/octet-stream");
            conn.setChunkedStreamingMode(64 * 1024);
            try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(conn.getOutputStream(), 64 * 1024))) {
                for (FileEntry e : changes) {
                    Decision d = bySeq.get(e.seq());
                    boolean data = d.need().equals("data") && !e.deleted();
                    InputStream content = null;
                    if (data) {
                        try {
                            content = Files.newInputStream(SafePath.resolve(folder, e.path()));
                        } catch (NoSuchFileException gone) {
                            break; // deleted since the walk: the changes before it go, the next walk records the deletion
                        }
                    }
                    byte[] header = WireFormat.MAPPER.writeValueAsBytes(e);
                    out.writeInt(header.length);
                    out.write(header);
                    out.writeBoolean(data);
                    if (content != null) {
                        try (InputStream in = content) {
                            Delta.encode(in, ChunkIndex.ofIds(HubFiles.basisIds(d.basis() == null ? "" : d.basis())), out);
                        }
                    }
                }
                out.writeInt(0);
            }
            return WireFormat.MAPPER.readValue(answer(conn, "apply"), ApplyAnswer.class);
        } finally {
            conn.disconnect();
        }
    }

    private HttpURLConnection open(Registration.Response r, String path, FileChannelSpec ch) throws IOException {
        HttpURLConnection conn = (HttpURLConnection) URI.create(cfg.hubUrl() + path + "?channel="
                + URLEncoder.encode(ch.name(), StandardCharsets.UTF_8)).toURL().openConnection();
        conn.setConnectTimeout(10_000);
        conn.setReadTimeout((int) Math.min(Integer.MAX_VALUE, cfg.readTimeout().toMillis()));
        conn.setRequestMethod("POST");
        conn.setDoOutput(true);
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
        try {
            watcher.close(); // ends a wait at once
        } catch (IOException ignored) {
            // closing
        }
        try {
            thread.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            LOG.warn("site {}: the file channel thread did not end within 10 s of stopping", cfg.nodeId());
        }
    }
}
