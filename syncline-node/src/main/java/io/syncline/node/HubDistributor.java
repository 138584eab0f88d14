package io.syncline.node;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.type.TypeReference;
import com.sun.net.httpserver.HttpExchange;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.ChannelSpec;
import io.syncline.api.SyncException;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.codec.Json;
import io.syncline.engine.outbox.OutboxRowSink;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.route.RouteExpression;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.schema.TableMeta;
import io.syncline.node.config.NodeConfig;
import io.syncline.transport.http.Headers;
import io.syncline.transport.http.HttpEndpoint;
import io.syncline.transport.http.HttpError;
import io.syncline.transport.wire.WireFormat;
import io.syncline.transport.wire.WireWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * The hub's side of hub-to-sites channels: capture of the hub's tables, batches sealed once per channel and shared by
 * every site, and GET /v1/fetch, through which each site takes its share.
 *
 * A batch is sealed once, whatever the number of sites. Each site's fetch streams it through that site's routing:
 * a site the channel's selector does not choose never sees the channel; a table's row filter picks the rows. An
 * update is judged on both its old and its new row: a row that moves into a site's share arrives there as an upsert,
 * one that moves out as a delete, so a site holds exactly the rows its filter selects.
 *
 * A site that has nothing yet, missed batches the hub purged, or whose routing changed (the channel's specification, the
 * site's attributes or the hub tables' columns; the site echoes the route hash of its last reload) gets a reload: every selected row of the
 * channel's tables, numbered as the last sealed batch and read, on PostgreSQL, in the snapshot that batch was sealed
 * with. Batches after it follow as usual.
 *
 * Purge: a batch leaves the hub's outbox once every routed site that has acknowledged anything of the channel has
 * acknowledged it. A site that never fetched does not hold it back; it will get a reload. A site's position is its own
 * ledger, recorded at each fetch (also when it moves back) in the same step that checks the batches after it are still
 * here; a reload records the site at its batch number before any row is read. So the batches a site still needs stay.
 * A two-way batch also stays until the hub has recorded the edits made here in it (recordEdits, OutboxStore.PURGE_HOLD).
 */
final class HubDistributor implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HubDistributor.class);
    private static final String ROUTE_HEADER = "Syncline-Route";
    /** Bound of the rendered-batch cache, in characters of row text (about twice as many bytes of heap). */
    private static final long CACHE_CHARS = 16L << 20;
    private static final TypeReference<LinkedHashMap<String, Object>> MAP = new TypeReference<>() {
    };

    private final NodeConfig cfg;
    private final Clock clock;
    private final Database db;
    private final OutboxStore outbox;
    private final HybridClock stamps;
    /** Records when the hub's own edits of two-way rows were made, after they are sealed, on its own thread. */
    private final java.util.concurrent.ExecutorService editor;
    private final Map<String, java.util.concurrent.atomic.AtomicBoolean> recording = new ConcurrentHashMap<>();
    /** Per two-way channel, the last batch whose edits were recorded, as far as this process knows. */
    private final Map<String, Long> recordedUpTo = new ConcurrentHashMap<>();
    private static final String EDITS = "hub.edits.";
    /** Hub-to-sites channels as the hub sees them: each table's name is the hub's table, its target the site's. */
    private final Map<String, ChannelSpec> channels = new LinkedHashMap<>();
    private final Map<String, RouteExpression> selectors = new HashMap<>();
    /** Row filters by channel, then hub table (lower case). */
    private final Map<String, Map<String, RouteExpression>> filters = new HashMap<>();
    private final Map<String, ReentrantLock> sealLocks = new ConcurrentHashMap<>();
    private final Supplier<Collection<String>> registeredSites;
    private final ScheduledExecutorService ticker;
    /** Per channel: rung when a batch is sealed, for the fetches waiting for one (long polls). */
    private final Map<String, Bell> bells = new ConcurrentHashMap<>();
    /** Reports the commits that captured changes to the channels' tables, so they are sealed at once; null: polling only. */
    private final io.syncline.engine.capture.CaptureWatch watch;
    private volatile boolean closed;
    /** Per channel, the sites that have not fetched it for longer than retention.maxAge: they no longer hold its purge. */
    private volatile Map<String, java.util.Set<String>> expired = Map.of();
    /** Per site, what the hub says about the changes it keeps for it (retention.maxAge), for status; absent when nothing. */
    private final Map<String, String> retentionNotices = new ConcurrentHashMap<>();
    /** Fetches in progress per site and channel: a site waiting in a long poll is present, however old its last ack. */
    private final Map<String, Integer> fetching = new ConcurrentHashMap<>();
    /** Per site and channel, when the retention warning was last logged (at most once an hour). */
    private final Map<String, Instant> warned = new ConcurrentHashMap<>();
    private Instant nextSchemaCheck = Instant.EPOCH;
    /** Per site, its attributes by lower-case name; per channel and site, whether the channel's selector chooses it. */
    private final Map<String, Map<String, String>> attributes = new ConcurrentHashMap<>();
    private final Map<String, Boolean> routed = new ConcurrentHashMap<>();
    private final Map<String, String> routeHashes = new ConcurrentHashMap<>();
    private final BatchCache cache = new BatchCache(CACHE_CHARS);
    /** Batches being read into the cache, each by one fetch while the others wait (readShared). */
    private final Map<String, ReentrantLock> reading = new ConcurrentHashMap<>();
    /** Batches found too big for the cache by readShared (channel and number): streamed by each fetch itself. */
    private final java.util.Set<String> tooBig = ConcurrentHashMap.newKeySet();

    /** Thrown by readShared's sink once the batch is too big to keep. */
    private static final class TooBig extends RuntimeException {
        TooBig() {
            super(null, null, false, false);
        }
    }

    /** Batches of at most this many outbox rows are read into the cache before any is sent (readShared). */
    private static final long SHARED_READ_ROWS = 10_000;
    private final AtomicLong outboxReads = new AtomicLong();
    /** Channels not served, with why: a filter names a column its hub table no longer has. */
    private volatile Map<String, String> broken = Map.of();
    /** Per channel, the column signatures of its hub tables (part of the route hash). */
    private volatile Map<String, String> signatures = Map.of();

    HubDistributor(NodeConfig cfg, Clock clock, Database db, Supplier<Collection<String>> registeredSites, HybridClock stamps)
            throws SQLException {
        this.cfg = cfg;
        this.clock = clock;
        this.db = db;
        this.outbox = new OutboxStore(db.dialect(), clock, stamps);
        this.editor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "syncline-hub-edits");
            t.setDaemon(true);
            return t;
        });
        this.stamps = stamps;
        this.registeredSites = registeredSites;
        for (ChannelSpec ch : cfg.channels()) {
            if (!ch.direction().toSites()) {
                continue;
            }
            ChannelSpec hubSide = ch.fromHub();
            channels.put(ch.name(), hubSide);
            if (ch.sites() != null) {
                selectors.put(ch.name(), RouteExpression.parse(ch.sites()));
            }
            Map<String, RouteExpression> byTable = new HashMap<>();
            for (TableSpec t : hubSide.tables()) {
                if (t.filter() != null) {
                    byTable.put(t.name().toLowerCase(Locale.ROOT), RouteExpression.parse(t.filter()));
                }
            }
            filters.put(ch.name(), byTable);
        }
        try (Connection c = db.connection()) {
            String problems = filterProblems(c);
            if (problems != null) {
                throw new SyncException(SyncException.Stage.CONFIG, "hub " + cfg.nodeId() + ": " + problems);
            }
            // Also with no hub-to-sites channel: capture left from an earlier configuration is removed.
            new CaptureInstaller(db.dialect(), clock).install(c, List.copyOf(channels.values()));
            readSignatures(c);
            holdPurges(c);
        }
        this.ticker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "syncline-hub-capture");
            t.setDaemon(true);
            return t;
        });
        if (!channels.isEmpty()) {
            long every = Math.max(10, cfg.captureInterval().toMillis());
            ticker.scheduleWithFixedDelay(this::tick, every, every, TimeUnit.MILLISECONDS);
            Waker waker = new Waker(ticker, this::sealNow);
            this.watch = db.watchCaptures("hub-" + cfg.nodeId(), waker);
            waker.reportsBeforeCommit(watch != null && watch.callsBeforeCommit());
        } else {
            this.watch = null;
        }
    }

    /** The watch's task: seals every channel at once; whether any batch was sealed. */
    private boolean sealNow() {
        boolean sealed = false;
        try (Connection c = db.connection()) {
            for (String ch : channels.keySet()) {
                sealed |= seal(c, ch);
                c.commit();
            }
        } catch (SQLException | RuntimeException e) {
            LOG.warn("hub {}: sealing hub-to-sites batches failed: {}", cfg.nodeId(), e.getMessage());
            return true; // the periodic tick tries again
        }
        return sealed;
    }

    private Bell bell(String channel) {
        return bells.computeIfAbsent(channel, k -> new Bell());
    }

    /**
     * The column signatures of each channel's hub tables: part of the route hash, so a table that gained or lost columns
     * is reloaded at every site (rows captured before the capture was upgraded lack the new columns).
     */
    private void readSignatures(Connection c) throws SQLException {
        Map<String, String> out = new HashMap<>();
        for (ChannelSpec ch : channels.values()) {
            StringBuilder sb = new StringBuilder();
            for (TableSpec t : ch.tables()) {
                TableMeta meta = SchemaReader.tryRead(c, t.name());
                sb.append(meta == null ? t.name() + ":missing" : meta.signature()).append(';');
            }
            out.put(ch.name(), sb.toString());
        }
        c.commit();
        signatures = out;
    }

    /** A filter may only name columns of its hub table; null when all do, else what is wrong (and the channels are marked). */
    private String filterProblems(Connection c) throws SQLException {
        Map<String, String> byChannel = new HashMap<>();
        List<String> problems = new ArrayList<>();
        for (ChannelSpec ch : channels.values()) {
            for (TableSpec t : ch.tables()) {
                RouteExpression f = filters.get(ch.name()).get(t.name().toLowerCase(Locale.ROOT));
                TableMeta meta = SchemaReader.tryRead(c, t.name());
                if (f == null || meta == null) {
                    continue; // a missing table is reported by the hub's own check
                }
                for (String col : f.columns()) {
                    if (!meta.byKey().containsKey(col)) {
                        String problem = "channel '" + ch.name() + "' table '" + t.name() + "': filter \"" + f.text() + "\" names column '"
                                + col + "', which the hub table does not have (it has " + meta.byKey().keySet() + ")";
                        problems.add(problem);
                        byChannel.putIfAbsent(ch.name(), problem);
                    }
                }
            }
        }
        c.commit();
        Map<String, String> before = broken;
        broken = byChannel;
        for (String ch : byChannel.keySet()) {
            if (!before.containsKey(ch)) {
                bell(ch).ring(); // the long polls waiting on it answer that it is not served now, instead of at their end
            }
        }
        return problems.isEmpty() ? null : String.join("; ", problems);
    }

    /** Whether the hub-to-sites channel {@code channel} is routed to site {@code site}. */
    boolean routes(String channel, String site) {
        if (!channels.containsKey(channel)) {
            return false;
        }
        RouteExpression selector = selectors.get(channel);
        if (selector == null) {
            return true;
        }
        // The configuration does not change while the hub runs: each answer is worked out once.
        return routed.computeIfAbsent(channel + '\0' + site, k -> selects(selector, site));
    }

    private boolean selects(RouteExpression selector, String site) {
        Map<String, String> attrs = attributes(site);
        return selector.test(name -> attrs.get(name.toLowerCase(Locale.ROOT)), name -> attrs.get(name.toLowerCase(Locale.ROOT)));
    }

    /** A site's attributes by lower-case name: names in expressions are case-insensitive, as in SQL. */
    private Map<String, String> attributes(String site) {
        return attributes.computeIfAbsent(site, id -> {
            Map<String, String> out = new HashMap<>();
            cfg.siteAttributes(id).forEach((k, v) -> out.put(k.toLowerCase(Locale.ROOT), v));
            return java.util.Collections.unmodifiableMap(out);
        });
    }

    /**
     * A hash of what decides a site's share of a channel: the channel's specification, the site's attributes and the
     * columns of the channel's hub tables. A site whose last reload was made under another hash gets a new one.
     */
    String routeHash(String channel, String site) {
        String signature = signatures.get(channel);
        // Asked on every fetch; only the tables' columns can change while the hub runs, and they are part of the key.
        return routeHashes.computeIfAbsent(channel + '\0' + site + '\0' + signature, k -> {
            try {
                // Not the schedule: when a channel's batches travel does not change what a site holds.
                return Secrets.sha256(WireFormat.MAPPER.writeValueAsString(channels.get(channel).withSchedule(null))
                        .replace(",\"schedule\":null}", "}") + "|"
                        + WireFormat.MAPPER.writeValueAsString(cfg.siteAttributes(site)) + "|" + signature).substring(0, 16);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
    }

    private void tick() {
        try (Connection c = db.connection()) {
            for (String ch : channels.keySet()) {
                seal(c, ch);
                // A purge a fetch asked for while this seal held the outbox's lock runs now, not at the channel's next fetch.
                outbox.purgeIfWanted(c, ch, sharers(ch));
                if (channels.get(ch).direction() == ChannelSpec.Direction.TWO_WAY
                        && outbox.lastSealed(c, ch) > recordedUpTo.getOrDefault(ch, -1L)) {
                    recordEditsLater(ch);
                }
                c.commit();
            }
            if (!clock.instant().isBefore(nextSchemaCheck)) {
                nextSchemaCheck = clock.instant().plus(cfg.schemaCheckInterval());
                new CaptureInstaller(db.dialect(), clock).reconcile(c, List.copyOf(channels.values()));
                readSignatures(c);
                checkRetention(c);
                String problems = filterProblems(c);
                if (problems != null) {
                    LOG.error("hub {}: {}; those channels are not served until the configuration or the table is fixed", cfg.nodeId(),
                            problems);
                }
            }
        } catch (SQLException | RuntimeException | Error e) { // an escaping Throwable would cancel the schedule
            LOG.warn("hub {}: sealing hub-to-sites batches failed: {}", cfg.nodeId(), e.getMessage());
        }
    }

    /**
     * At start: each two-way channel's batches are held from purge from the last one whose edits were recorded (from the
     * start, for a channel new to recording), before any fetch can purge; a channel that is no longer two-way loses its
     * hold and mark, which nothing would advance any more. Commits.
     */
    private void holdPurges(Connection c) throws SQLException {
        for (ChannelSpec ch : cfg.channels()) {
            boolean twoWay = ch.direction() == ChannelSpec.Direction.TWO_WAY;
            if (twoWay && SyncSchema.getState(c, OutboxStore.PURGE_HOLD + ch.name()) == null) {
                String mark = SyncSchema.getState(c, EDITS + ch.name());
                SyncSchema.putState(c, OutboxStore.PURGE_HOLD + ch.name(), Long.toString(markedBatch(mark)));
            } else if (!twoWay) {
                try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_state WHERE k IN (?, ?)")) {
                    ps.setString(1, OutboxStore.PURGE_HOLD + ch.name());
                    ps.setString(2, EDITS + ch.name());
                    ps.executeUpdate();
                }
            }
        }
        c.commit();
    }

    /** The batch of a recording mark ("batch:stamp"; 0 for none). */
    private static long markedBatch(String mark) {
        return mark == null ? 0 : Long.parseLong(mark.contains(":") ? mark.substring(0, mark.indexOf(':')) : mark);
    }

    /** Records, on the hub-edits thread, when the hub's own edits in the channel's batches sealed so far were made. */
    private void recordEditsLater(String channel) {
        java.util.concurrent.atomic.AtomicBoolean busy = recording.computeIfAbsent(channel, k -> new java.util.concurrent.atomic.AtomicBoolean());
        if (busy.compareAndSet(false, true)) {
            editor.execute(() -> {
                try {
                    recordEdits(channel);
                } finally {
                    busy.set(false);
                }
            });
        }
    }

    /**
     * BatchApplier.recordHubEdits for each batch of {@code channel} sealed after the last one recorded, oldest first, at
     * most 20 at a time. The mark ({@code hub.edits.<channel>} in sync_state, "batch:stamp") also holds the purge
     * (OutboxStore.PURGE_HOLD), so no batch goes before its edits are recorded. A batch that cannot be read is passed over.
     */
    private void recordEdits(String channel) {
        String key = EDITS + channel;
        BatchApplier recorder = new BatchApplier(db.dialect(), clock); // the tables as they are now
        try (Connection reader = db.connection(); Connection writer = db.connection()) {
            String mark = SyncSchema.getState(reader, key);
            long done = markedBatch(mark);
            long floor = mark == null || !mark.contains(":") ? 0 : Long.parseLong(mark.substring(mark.indexOf(':') + 1));
            reader.commit();
            for (SealedBatch b : outbox.sealedAfter(reader, channel, done, 20)) {
                try {
                    int n = recorder.recordHubEdits(reader, writer, b, channels.get(channel), cfg.nodeId(), floor, stamps);
                    if (n > 0) {
                        LOG.debug("hub {}: {} edit(s) made here in batch {} of {} recorded", cfg.nodeId(), n, b.sequence(), channel);
                    }
                } catch (SQLException | RuntimeException e) {
                    writer.rollback();
                    if (!reader.isValid(2) || !writer.isValid(2)) {
                        throw e; // the database went away: this run ends, the batch is read again by the next
                    }
                    LOG.warn("hub {}: the edits made here in batch {} of channel {} are not recorded (they win last-writer-wins when "
                            + "a site's change meets them): {}", cfg.nodeId(), b.sequence(), channel, e.getMessage());
                }
                floor = b.stamp();
                done = b.sequence();
                SyncSchema.putState(writer, key, done + ":" + floor);
                SyncSchema.putState(writer, OutboxStore.PURGE_HOLD + channel, Long.toString(done));
                writer.commit();
            }
            recordedUpTo.put(channel, done);
            // The hold moved: what every site has goes now, not at a site's next fetch (which a long poll may hold back).
            outbox.purgeShared(writer, channel, new java.util.HashSet<>(sharers(channel)));
        } catch (SQLException | RuntimeException e) {
            LOG.warn("hub {}: recording the hub's own edits of channel {} failed (they win last-writer-wins until recorded): {}",
                    cfg.nodeId(), channel, e.getMessage());
        }
    }

    /** Seals what is committed into the channel's next batch; whether there was anything (the fetches waiting are woken). */
    private boolean seal(Connection c, String channel) throws SQLException {
        ReentrantLock lock = sealLocks.computeIfAbsent(channel, k -> new ReentrantLock());
        lock.lock();
        try {
            return rang(channel, outbox.seal(c, channel).isPresent());
        } finally {
            lock.unlock();
        }
    }

    private boolean rang(String channel, boolean sealed) {
        if (sealed) {
            bell(channel).ring();
        }
        return sealed;
    }

    /** Seals unless another thread is sealing the channel or opening a reload: a fetch does not queue behind them. */
    private void trySeal(Connection c, String channel) throws SQLException {
        ReentrantLock lock = sealLocks.computeIfAbsent(channel, k -> new ReentrantLock());
        if (lock.tryLock()) {
            try {
                rang(channel, outbox.seal(c, channel).isPresent());
            } finally {
                lock.unlock();
            }
        }
    }

    /**
     * Sites sharing a channel's batches: the registered ones it routes to, but for those that stayed away longer than
     * retention.maxAge (they get a copy when they return).
     */
    private List<String> sharers(String channel) {
        java.util.Set<String> gone = expired.getOrDefault(channel, java.util.Set.of());
        return registeredSites.get().stream().filter(site -> routes(channel, site) && !gone.contains(site)).toList();
    }

    /**
     * Compares each site's last fetch of each channel (sync_ack.acked_at) with retention.maxAge: from half of it the hub
     * warns (log, at most once an hour, and status); beyond it the site no longer holds back the channel's purge. Commits.
     */
    private void checkRetention(Connection c) throws SQLException {
        Duration keep = cfg.retentionMaxAge();
        Instant now = clock.instant();
        Map<String, java.util.Set<String>> gone = new HashMap<>();
        Map<String, String> notices = new HashMap<>();
        java.util.Set<String> registered = new java.util.HashSet<>(registeredSites.get());
        try (PreparedStatement ps = c.prepareStatement("SELECT destination, channel, acked_at FROM sync_ack");
             java.sql.ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                String site = rs.getString(1);
                String channel = rs.getString(2);
                java.time.OffsetDateTime at = rs.getObject(3, java.time.OffsetDateTime.class);
                if (!channels.containsKey(channel) || !registered.contains(site) || at == null
                        || fetching.containsKey(site + '\0' + channel)) {
                    continue;
                }
                Duration away = Duration.between(at.toInstant(), now);
                if (away.compareTo(keep.dividedBy(2)) < 0) {
                    continue;
                }
                Instant until = at.toInstant().plus(keep);
                String notice;
                if (away.compareTo(keep) >= 0) {
                    gone.computeIfAbsent(channel, k -> new java.util.HashSet<>()).add(site);
                    notice = "has not fetched channel '" + channel + "' since " + at.toInstant() + ": its changes are no longer kept for it "
                            + "(retention.maxAge " + keep + "); it gets a copy when it returns";
                } else {
                    notice = "has not fetched channel '" + channel + "' since " + at.toInstant() + ": its changes are kept for it until "
                            + until + " (retention.maxAge " + keep + "), then it gets a copy instead";
                }
                notices.merge(site, notice, (a, b) -> a + "; " + b);
                String warnKey = site + '\0' + channel + '\0' + (away.compareTo(keep) >= 0);
                Instant last = warned.get(warnKey);
                if (last == null || Duration.between(last, now).toHours() >= 1) {
                    warned.put(warnKey, now);
                    LOG.warn("hub {}: site {} {}", cfg.nodeId(), site, notice);
                }
            }
        }
        c.commit();
        // A site that began a fetch since the read is back: it stays a sharer.
        gone.forEach((channel, sites) -> sites.removeIf(site -> fetching.containsKey(site + '\0' + channel)));
        Map<String, java.util.Set<String>> before = expired;
        expired = gone;
        for (Map.Entry<String, java.util.Set<String>> e : gone.entrySet()) {
            if (!e.getValue().equals(before.getOrDefault(e.getKey(), java.util.Set.of()))) {
                // A site no longer holds the channel: what the others have goes now, not at their next fetch.
                outbox.purgeShared(c, e.getKey(), new java.util.HashSet<>(sharers(e.getKey())));
            }
        }
        retentionNotices.keySet().retainAll(notices.keySet());
        retentionNotices.putAll(notices);
    }

    /** What the hub says about the changes it keeps for a site that stays away (retention.maxAge), or null. */
    String retentionNotice(String site) {
        return retentionNotices.get(site);
    }

    /** A site that fetches is back: it holds its channel's purge again from now on. */
    private void returned(String channel, String site) {
        java.util.Set<String> gone = expired.get(channel);
        if (gone != null && gone.contains(site)) {
            Map<String, java.util.Set<String>> next = new HashMap<>(expired);
            java.util.Set<String> rest = new java.util.HashSet<>(gone);
            rest.remove(site);
            next.put(channel, rest);
            expired = next;
            retentionNotices.remove(site);
        }
    }

    /**
     * GET /v1/fetch?channel=C&ack=N&max=M[&route=H][&wait=W] from an authenticated site: records {@code ack} (the site's
     * ledger), purges what every sharer has, and streams the next batches of C in this site's share, or a reload. With
     * {@code wait}, a fetch that finds no batch waits up to W ms for one to be sealed (a long poll), holding neither a
     * database connection nor a working permit meanwhile, and answers with what is there then (maybe nothing).
     */
    void handleFetch(HttpExchange ex, String site, Map<String, String> q) throws IOException {
        String channel = q.get("channel");
        if (channel == null || !channels.containsKey(channel)) {
            throw new HttpError(400, "unknown or missing hub-to-sites channel '" + channel + "' (the hub has " + channels.keySet() + ")");
        }
        if (!routes(channel, site)) {
            throw new HttpError(400, "channel '" + channel + "' is not routed to site '" + site + "': register again");
        }
        Window window = Window.of(q, cfg.maxBatchesPerExchange());
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(window.waitMillis());
        Bell bell = bell(channel);
        String key = site + '\0' + channel;
        fetching.merge(key, 1, Integer::sum);
        try {
            for (boolean first = true; ; first = false) {
                long seen = bell.rung();
                if (fetchOnce(ex, site, q, channel, window, deadline, first)) {
                    return;
                }
                try {
                    HttpEndpoint.idle(() -> bell.awaitAfter(seen, deadline));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new HttpError(503, "hub " + cfg.nodeId() + " is stopping");
                }
            }
        } finally {
            fetching.computeIfPresent(key, (k, n) -> n == 1 ? null : n - 1);
        }
    }

    /**
     * One look for what to send; false (nothing sent) when there is nothing yet and the long poll has time left. The
     * site's position is recorded (and checked) at the first look only: it does not change while the request waits, and
     * holds the purge of the batches after it.
     */
    private boolean fetchOnce(HttpExchange ex, String site, Map<String, String> q, String channel, Window window, long deadline,
                              boolean first) throws IOException {
        String problem = broken.get(channel); // checked at every look: a long poll may outlast a change of the tables
        if (problem != null) {
            throw new HttpError(503, "hub " + cfg.nodeId() + " does not serve channel '" + channel + "' now: " + problem);
        }
        long ack = window.ack();
        int max = window.max();
        String route = routeHash(channel, site);
        if (first) {
            returned(channel, site);
        }
        try (Connection c = db.connection()) {
            if (watch == null) {
                trySeal(c, channel); // no commit reports: what is committed is sealed now, not at the next tick
            }
            String why = !route.equals(q.get("route")) ? (q.get("route") == null ? "it has no copy yet" : "its routing changed")
                    : first ? outbox.position(c, site, channel, ack, q.get("token"), sharers(channel)) : null;
            if (why != null) {
                sendReload(ex, c, channel, site, route, why);
                return true;
            }
            List<SealedBatch> batches = outbox.sealedAfter(c, channel, ack, max);
            if (batches.isEmpty() && !closed && System.nanoTime() < deadline) {
                c.commit();
                return false;
            }
            sendHeaders(ex, route);
            try (OutputStream out = ex.getResponseBody(); WireWriter w = new WireWriter(out)) {
                for (SealedBatch b : batches) {
                    w.beginBatch(new BatchHeader(new BatchId(cfg.nodeId(), channel, b.sequence()), b.sealedAt(), b.firstCaptured(),
                            b.stamp()), false, b.token());
                    SiteShare share = new SiteShare(w, channel, site);
                    List<Rendered> cached = cache.get(channel, b.sequence());
                    if (cached == null && b.rowCount() <= SHARED_READ_ROWS) {
                        cached = readShared(c, b);
                    }
                    if (cached != null) {
                        for (Rendered r : cached) {
                            share.accept(r.op(), r.table(), OutboxRowSink.Row.ofJson(r.oldRow()), OutboxRowSink.Row.ofJson(r.newRow()), null,
                                    r.origin());
                        }
                    } else {
                        Recorder recorder = new Recorder(share);
                        // Streamed for the hub itself, which is never an origin, and kept for every site: each site's share
                        // then leaves out, in a two-way channel, the changes of that site (docs/conflicts.md, "A change never
                        // comes back").
                        outbox.stream(c, b, cfg.nodeId(), recorder);
                        outboxReads.incrementAndGet();
                        if (!outbox.isAvailable(c, channel, b.sequence())) {
                            // Cannot happen while this site's position holds the purge; if it did, the rows read may be
                            // incomplete: the batch goes without its end marker, so the site refuses it and asks again.
                            throw new IOException("batch " + b.sequence() + " of channel '" + channel + "' was purged while it was sent to "
                                    + site);
                        }
                        c.commit();
                        recorder.keep(channel, b.sequence());
                    }
                    w.endBatch();
                }
            }
            return true;
        } catch (SQLException e) {
            throw new HttpError(503, "hub " + cfg.nodeId() + ": database error: " + e.getMessage());
        }
    }

    /**
     * Reads a small batch into the cache, unless another fetch is doing so (then waits for it and takes its result): in real
     * time every site asks for a new batch at the same moment, and it is read from the outbox once. Null when the batch
     * turns out too big to keep; the caller then streams it from the outbox itself. Nothing is sent while reading, so a
     * slow site never holds up the others.
     */
    private List<Rendered> readShared(Connection c, SealedBatch b) throws SQLException, IOException {
        String key = b.channel() + '\0' + b.sequence();
        ReentrantLock lock = reading.computeIfAbsent(key, k -> new ReentrantLock());
        lock.lock();
        try {
            List<Rendered> cached = cache.get(b.channel(), b.sequence());
            if (cached != null || tooBig.contains(key)) {
                return cached;
            }
            Recorder[] self = new Recorder[1];
            Recorder recorder = new Recorder((op, table, oldRow, newRow, capturedAt, origin) -> {
                if (self[0].changes == null) {
                    throw new TooBig();
                }
            });
            self[0] = recorder;
            try {
                outbox.stream(c, b, cfg.nodeId(), recorder);
            } catch (TooBig e) {
                c.rollback();
                tooBig.add(key); // the waiting fetches and later ones stream it from the outbox themselves, side by side
                return null;
            }
            outboxReads.incrementAndGet();
            if (!outbox.isAvailable(c, b.channel(), b.sequence())) {
                throw new IOException("batch " + b.sequence() + " of channel '" + b.channel() + "' was purged while it was read");
            }
            c.commit();
            return recorder.keep(b.channel(), b.sequence());
        } finally {
            lock.unlock();
            if (!lock.hasQueuedThreads()) {
                reading.remove(key, lock);
            }
        }
    }

    private static void sendHeaders(HttpExchange ex, String route) throws IOException {
        ex.getResponseHeaders().set(ROUTE_HEADER, route);
        ex.getResponseHeaders().set("Content-Type", WireFormat.CONTENT_TYPE);
        ex.sendResponseHeaders(200, 0);
    }

    /**
     * Answers a fetch with a reload: every row of the channel's tables in this site's share, as one batch numbered N, the
     * last batch sealed. The site is recorded at N, in the transaction that seals N, before any row is read, so the
     * batches after N are kept for it. On PostgreSQL the rows are read in the very snapshot N was sealed with (exported
     * to a second connection): the reload holds exactly the changes of batches up to N. On H2 they are read in one
     * SERIALIZABLE transaction (one snapshot of every table) that starts after N was sealed, so a change committed in
     * between can come again in a batch after N (docs/protocol.md, "Fetch").
     */
    private void sendReload(HttpExchange ex, Connection c, String channel, String site, String route, String why)
            throws SQLException, IOException {
        OutboxStore.ReloadPoint point;
        long ledger = 0;
        boolean twoWay = channels.get(channel).direction() == ChannelSpec.Direction.TWO_WAY;
        // Borrowed before the lock: a thread holding the lock never waits for the pool.
        Connection reader = db.dialect().exportsSnapshots() ? db.connection() : null;
        ReentrantLock lock = sealLocks.computeIfAbsent(channel, k -> new ReentrantLock());
        boolean opened = false;
        lock.lock();
        try {
            for (int attempt = 1; ; attempt++) {
                // Two-way: the site's last batch whose changes batch N holds, for the copy's mark. On PostgreSQL read in the
                // snapshot N is sealed with; on H2 the same before and after sealing N, so none was applied in between.
                long before = twoWay ? BatchApplier.lastApplied(c, site, channel) : 0;
                c.commit();
                point = outbox.openReload(c, site, channel);
                ledger = twoWay ? BatchApplier.lastApplied(c, site, channel) : 0;
                if (ledger == before || db.dialect().exportsSnapshots()) {
                    break;
                }
                c.rollback();
                if (attempt == 5) {
                    throw new HttpError(503, "hub " + cfg.nodeId() + ": site " + site + " kept sending batches of channel '" + channel
                            + "' while its copy was prepared; ask again");
                }
            }
            if (reader != null) {
                db.dialect().importSnapshot(reader, point.snapshot());
            }
            c.commit();
            opened = true;
            bell(channel).ring(); // opening the reload sealed what was committed: the other sites' long polls take it now
        } finally {
            lock.unlock();
            if (!opened) {
                try {
                    c.rollback();
                } finally {
                    if (reader != null) {
                        reader.close();
                    }
                }
            }
        }
        if (reader != null) {
            c.close(); // back to the pool: the reload streams from the reader alone
        }
        LOG.info("hub {}: site {} gets a reload of channel {} as of batch {} ({})", cfg.nodeId(), site, channel, point.batch(), why);
        try (Connection in = reader != null ? reader : c) {
            if (reader == null) {
                // One snapshot for every table: H2 takes it for all tables at the first statement only in SERIALIZABLE
                // (its REPEATABLE READ snapshots each table when a statement first touches it).
                c.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
            }
            sendHeaders(ex, route);
            try (OutputStream out = ex.getResponseBody(); WireWriter w = new WireWriter(out)) {
                w.beginBatch(new BatchHeader(new BatchId(cfg.nodeId(), channel, point.batch()), clock.instant(), null, stamps.tick()), true,
                        point.token());
                SiteShare share = new SiteShare(w, channel, site);
                ChannelSpec spec = channels.get(channel);
                if (share.twoWay) {
                    // The site's last batch this copy holds: its guards up to that batch are released, and rows it changed
                    // since keep its version (engine/apply/Guards).
                    share.accept("M", "", null, OutboxRowSink.Row.ofJson("{\"batch\":" + ledger + "}"), null, site);
                }
                // Referenced tables first: the site writes the rows in this order, under its foreign keys.
                for (String name : SchemaReader.referenceOrder(in, spec.tables().stream().map(TableSpec::name).toList())) {
                    TableSpec t = spec.table(name);
                    TableMeta meta = SchemaReader.read(in, t.name());
                    String table = t.name().toLowerCase(Locale.ROOT);
                    try (Statement s = in.createStatement()) {
                        s.setFetchSize(1000);
                        try (ResultSet rs = s.executeQuery("SELECT * FROM " + db.dialect().quote(meta.name()))) {
                            while (rs.next()) {
                                share.accept("R", table, null, OutboxRowSink.Row.ofJson(CanonicalWriter.row(meta.columns(), rs, false)), null,
                                        null);
                            }
                        }
                    }
                }
                in.commit();
                w.endBatch();
            }
        }
    }

    /**
     * Changes of the hub-to-sites channels routed to {@code site} that are sealed and not acknowledged by it (before its
     * filters); 0 when the database cannot be read, as status must not fail for it.
     */
    long pendingFor(String site) {
        long rows = 0;
        try (Connection c = db.connection()) {
            for (String ch : channels.keySet()) {
                if (routes(ch, site)) {
                    rows += outbox.backlog(c, site, ch).rows();
                }
            }
        } catch (SQLException e) {
            LOG.debug("hub {}: cannot read what site {} has pending: {}", cfg.nodeId(), site, e.getMessage());
        }
        return rows;
    }

    /** The route hash response header, for the site to echo. */
    static String routeHeader() {
        return ROUTE_HEADER;
    }

    /** Batches read from the outbox so far (not served from the cache); for tests. */
    long outboxReads() {
        return outboxReads.get();
    }

    /** One change of a batch as read from the outbox, rows as canonical JSON text (null where absent), and its origin. */
    private record Rendered(String op, String table, String oldRow, String newRow, String origin) {
        long chars() {
            return 16 + (oldRow == null ? 0 : oldRow.length()) + (newRow == null ? 0 : newRow.length()) + (origin == null ? 0 : origin.length());
        }
    }

    /**
     * Batches as read from the outbox, for the next sites that fetch them: each batch is read once, not once per site.
     * Least recently used first out, bounded in characters; a batch larger than a quarter of the bound is not kept (it is
     * read again for each site). Every site gets the same changes of a hub-to-sites batch before its filters: they are
     * read without leaving out any origin.
     */
    private static final class BatchCache {
        private final long limit;
        private long chars;
        private final LinkedHashMap<String, List<Rendered>> batches = new LinkedHashMap<>(16, 0.75f, true);

        BatchCache(long limit) {
            this.limit = limit;
        }

        synchronized List<Rendered> get(String channel, long seq) {
            return batches.get(channel + "#" + seq);
        }

        synchronized void put(String channel, long seq, List<Rendered> changes, long size) {
            if (size > limit / 4 || batches.putIfAbsent(channel + "#" + seq, changes) != null) {
                return;
            }
            chars += size;
            var it = batches.entrySet().iterator();
            while (chars > limit && it.hasNext()) {
                chars -= it.next().getValue().stream().mapToLong(Rendered::chars).sum();
                it.remove();
            }
        }
    }

    /** Renders each change of a batch once, passes it on, and keeps it for the cache while the batch stays small. */
    private final class Recorder implements OutboxRowSink {
        private final OutboxRowSink next;
        private List<Rendered> changes = new ArrayList<>();
        private long chars;

        Recorder(OutboxRowSink next) {
            this.next = next;
        }

        @Override
        public void accept(String op, String table, Row oldRow, Row newRow, Instant capturedAt, String origin) throws IOException {
            Rendered r = new Rendered(op, table, oldRow == null ? null : oldRow.text(), newRow == null ? null : newRow.text(),
                    origin);
            if (changes != null) {
                chars += r.chars();
                if (chars > CACHE_CHARS / 4) {
                    changes = null; // too big to keep: read again for the next site
                } else {
                    changes.add(r);
                }
            }
            next.accept(op, table, OutboxRowSink.Row.ofJson(r.oldRow()), OutboxRowSink.Row.ofJson(r.newRow()), capturedAt, origin);
        }

        /** Puts the batch into the cache, if it was small enough to keep; what was kept, or null. */
        List<Rendered> keep(String channel, long seq) {
            if (changes == null) {
                return null;
            }
            List<Rendered> kept = List.copyOf(changes);
            cache.put(channel, seq, kept, chars);
            return kept;
        }
    }

    /**
     * Writes a batch's changes in one site's share. Tables without a filter pass straight through; with one, each row is
     * read into its values (an update's old row completed from its new row: a column it lacks kept its value) and
     * judged old and new. In a two-way channel, the site's own changes are left out, and the marks of its batches go in
     * their place ({@link #passes}).
     */
    private final class SiteShare implements OutboxRowSink {
        private final WireWriter w;
        private final Map<String, RouteExpression> byTable;
        private final Map<String, String> attributes;
        private final String site;
        final boolean twoWay;

        SiteShare(WireWriter w, String channel, String site) {
            this.w = w;
            this.byTable = filters.get(channel);
            this.attributes = attributes(site);
            this.site = site;
            this.twoWay = channels.get(channel).direction() == ChannelSpec.Direction.TWO_WAY;
        }

        @Override
        public void accept(String op, String table, Row oldRow, Row newRow, Instant capturedAt, String origin) throws IOException {
            if (!passes(twoWay, op, origin, site)) {
                return;
            }
            RouteExpression filter = byTable.get(table);
            if (filter == null) {
                w.change(op, table, oldRow == null ? null : oldRow::writeTo, newRow == null ? null : newRow::writeTo);
                return;
            }
            String newJson = newRow == null ? null : newRow.text();
            Map<String, Object> newValues = newJson == null ? null : WireFormat.MAPPER.readValue(newJson, MAP);
            Map<String, Object> oldValues = null;
            if (oldRow != null) {
                oldValues = new LinkedHashMap<>();
                if (newValues != null) {
                    oldValues.putAll(newValues);
                }
                oldValues.putAll(WireFormat.MAPPER.readValue(oldRow.text(), MAP));
            }
            boolean wasIn = oldValues != null && filter.test(oldValues::get, this::attribute);
            boolean isIn = newValues != null && filter.test(newValues::get, this::attribute);
            String oldJson = oldValues == null ? null : WireFormat.MAPPER.writeValueAsString(oldValues);
            switch (op) {
                case "U" -> {
                    if (wasIn && isIn) {
                        w.change("U", table, oldJson, newJson);
                    } else if (wasIn) {
                        w.change("D", table, oldJson, null); // moved out of this site's share
                    } else if (isIn) {
                        w.change("R", table, null, newJson); // moved in: the site does not have it yet
                    }
                }
                case "D" -> {
                    if (wasIn) {
                        w.change("D", table, oldJson, null);
                    }
                }
                default -> {
                    if (isIn) {
                        w.change(op, table, null, newJson);
                    }
                }
            }
        }

        private String attribute(String name) {
            return attributes.get(name.toLowerCase(Locale.ROOT));
        }
    }

    /**
     * Whether {@code site} gets a change of {@code origin} (null: the hub's own) with operation {@code op}: in a two-way
     * channel a site never gets its own changes back, and gets the marks (op M) of its own batches only; elsewhere there
     * are no marks, and every site gets every change (before its filters).
     */
    static boolean passes(boolean twoWay, String op, String origin, String site) {
        boolean own = site.equals(origin);
        return "M".equals(op) ? twoWay && own : !(twoWay && own);
    }

    @Override
    public void close() {
        closed = true;
        if (watch != null) {
            watch.close();
        }
        bells.values().forEach(Bell::ring); // long polls answer at once
        ticker.shutdownNow();
        editor.shutdownNow();
        try {
            ticker.awaitTermination(10, TimeUnit.SECONDS);
            editor.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
