package io.syncline.node;

import com.sun.net.httpserver.HttpExchange;
import io.syncline.api.BadBatchException;
import io.syncline.api.BatchHeader;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.Names;
import io.syncline.api.NodeRole;
import io.syncline.api.OutOfOrderBatchException;
import io.syncline.api.RetriableSyncException;
import io.syncline.api.SyncException;
import io.syncline.api.TableSpec;
import io.syncline.api.WaitingForFileException;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.conflict.ConflictLog;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.engine.schema.TableMeta;
import io.syncline.node.config.NodeConfig;
import io.syncline.node.config.SiteSchedule;
import io.syncline.transport.http.Headers;
import io.syncline.transport.http.HttpEndpoint;
import io.syncline.transport.http.HttpError;
import io.syncline.transport.http.Responses;
import io.syncline.transport.wire.WireFormat;
import io.syncline.transport.wire.WireReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/*
 * The hub: registers sites, hands them their configuration, and applies their batches.
 *
 * Batches arrive two ways. Push sites POST a batch stream to /v1/batches; the hub applies each batch as it
 * reads it and answers with the acknowledgement (the highest batch applied) per channel. Pull sites are
 * visited by the hub's scheduler, one task per site at the site's own interval (the "central scheduler per
 * location"): GET <site>/v1/pull?channel=..&ack=N, where N is the hub's ledger, which both acknowledges
 * what was applied and asks for what follows. Either way, BatchApplier's ledger makes every apply
 * exactly-once, so retries, duplicates and crashes at any point are safe.
 *
 * Threads: HTTP workers (syncline-hub-http-N) apply pushed batches; pull workers (syncline-hub-pull-N)
 * apply pulled ones. Work for one site never waits for another site's failure: every exchange has its own
 * connection and timeout, and an error is recorded against that site only.
 */
public final class HubNode implements NodeControl {
    private static final Logger LOG = LoggerFactory.getLogger(HubNode.class);
    private static final String FETCH_FAILED = "fetch failed: ";

    private final NodeConfig cfg;
    private final Clock clock;
    private final Database db;
    private final BatchApplier applier;
    private final Map<String, ChannelSpec> channels = new LinkedHashMap<>();
    private final HubDistributor distributor;
    private final TwoWay twoWay;
    private final Map<String, String> configHashes = new ConcurrentHashMap<>();
    private final Map<String, SiteState> sites = new ConcurrentHashMap<>();
    private final Map<String, ScheduledFuture<?>> pullTasks = new ConcurrentHashMap<>();
    private final ScheduledExecutorService pullScheduler;
    private final HttpEndpoint http;
    /** Site-to-hub file channels: offers and applies of sites' files. */
    private final HubFiles files;

    /** Live state of one registered site. Fields are written by exchange threads and read by status(). */
    private static final class SiteState {
        final String id;
        volatile SiteSchedule schedule;
        volatile String secretHash;
        volatile String pullUrl;
        volatile String pullToken;
        /** The site's database as of its last registration: a pull names it, so a site that started over since ignores it. */
        volatile String incarnation;
        volatile Instant lastContact;
        volatile Backlog reported = Backlog.NONE;
        volatile Instant reportedAt;
        /** Age (by the site's clock) of the oldest change the site had waiting when the last exchange began. */
        volatile long lastExchangeLagMs;
        volatile String lastError;
        /** By channel: why its next batch waits for a file here (until a batch of it is applied). */
        final Map<String, String> held = new java.util.concurrent.ConcurrentHashMap<>();

        /** Why one of its channels waits for a file, or null. */
        String heldReason() {
            return held.values().stream().findFirst().orElse(null);
        }
        final Object pullLock = new Object();
        /** A pull asked for by the site's poke is queued and not started yet (pokes in between add nothing). */
        final java.util.concurrent.atomic.AtomicBoolean pokeQueued = new java.util.concurrent.atomic.AtomicBoolean();
        /** Per channel with a schedule (key: name and schedule), when the hub next pulls it (under pullLock). */
        final Map<String, Instant> pullDue = new java.util.HashMap<>();
        /** Per channel, the token of the site's answer to a pull whose ack was below what it had (under pullLock). */
        final Map<String, String> confirmLowAck = new java.util.HashMap<>();

        SiteState(String id) {
            this.id = id;
        }
    }

    private HubNode(NodeConfig cfg, Clock clock) throws IOException, SQLException {
        this.cfg = cfg;
        this.clock = clock;
        for (ChannelSpec ch : cfg.channels()) {
            channels.put(ch.name(), ch);
        }
        this.db = new Database(cfg);
        HybridClock stamps = new HybridClock(clock);
        this.twoWay = new TwoWay(cfg.nodeId(), stamps);
        try (Connection c = db.connection()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            checkTargetTables(c);
            stamps.observe(Math.max(OutboxStore.lastStamp(c), ConflictLog.lastStamp(c)));
            c.commit();
            for (ChannelSpec ch : channels.values()) {
                for (TableSpec t : ch.tables()) {
                    if (ch.conflictFor(t.name()) != null) {
                        twoWay.resolver(ch.conflictFor(t.name())); // a resolver class that cannot be loaded stops the hub here
                    }
                }
            }
            this.distributor = new HubDistributor(cfg, clock, db, sites::keySet, stamps);
        } catch (SyncException | SQLException e) {
            db.close();
            throw e;
        }
        try {
            this.files = new HubFiles(cfg, db, clock, sites::keySet);
        } catch (SyncException | IOException e) {
            distributor.close();
            db.close();
            throw e;
        }
        this.applier = new BatchApplier(db.dialect(), clock, null, null, files::locate, cfg.fileReferenceWait());
        AtomicInteger n = new AtomicInteger();
        this.pullScheduler = Executors.newScheduledThreadPool(4, r -> {
            Thread t = new Thread(r, "syncline-hub-pull-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.http = new HttpEndpoint("hub", cfg.httpHost(), cfg.httpPort(), cfg.httpThreads());
        http.route("/v1/register", "POST", this::handleRegister);
        http.route("/v1/batches", "POST", this::handleBatches);
        http.route("/v1/fetch", "GET", this::handleFetch);
        http.route("/v1/poke", "POST", this::handlePoke);
        http.route("/v1/status", "GET", this::handleStatus);
        http.route("/v1/files/offer", "POST", ex -> files.handleOffer(ex, authenticate(ex).id));
        http.route("/v1/files/apply", "POST", ex -> files.handleApply(ex, authenticate(ex).id));
        http.route("/v1/files/changes", "GET", ex -> files.handleChanges(ex, authenticate(ex).id));
        http.route("/v1/files/get", "POST", ex -> files.handleGet(ex, authenticate(ex).id));
        Conflicts conflicts = new Conflicts(cfg, db, channels, applier, twoWay, clock);
        http.route("/v1/conflicts", "GET", conflicts::handleList);
        http.route("/v1/conflicts/settle", "POST", conflicts::handleSettle);
        http.route("/v1/health", "GET", ex -> HttpEndpoint.sendJson(ex, 200, Map.of("node", cfg.nodeId(), "role", "hub")));
        loadSites();
        http.start();
    }

    /** Every target table must exist, have a primary key, and hold its hub column in that key. */
    private void checkTargetTables(Connection c) throws SQLException {
        List<String> problems = new ArrayList<>();
        for (ChannelSpec ch : channels.values()) {
            for (var t : ch.tables()) {
                TableMeta meta = SchemaReader.tryRead(c, t.target());
                String where = "table '" + t.target() + "' (channel '" + ch.name() + "')";
                if (meta == null) {
                    problems.add(where + " does not exist in the hub database");
                } else if (meta.primaryKey().isEmpty()) {
                    problems.add(where + " has no primary key");
                } else if (t.hubColumn() != null && meta.primaryKey().stream().noneMatch(col -> col.key().equalsIgnoreCase(t.hubColumn()))) {
                    problems.add(where + ": hubColumn '" + t.hubColumn() + "' must be part of its primary key");
                }
            }
        }
        c.commit();
        if (!problems.isEmpty()) {
            throw new SyncException(SyncException.Stage.CONFIG, "hub " + cfg.nodeId() + " cannot apply its channels: "
                    + String.join("; ", problems));
        }
    }

    /**
     * Starts a hub: opens its database (creating Syncline's tables), loads registered sites, starts the HTTP
     * listener and the pull schedule.
     */
    public static HubNode start(NodeConfig cfg, Clock clock) {
        try {
            HubNode hub = new HubNode(cfg, clock);
            LOG.info("hub {} started with channels {} on port {}", cfg.nodeId(), hub.channels.keySet(), hub.port());
            return hub;
        } catch (IOException | SQLException e) {
            throw new SyncException(SyncException.Stage.CONFIG, "hub " + cfg.nodeId() + " could not start: " + e.getMessage(), e);
        }
    }

    /** The hub's side of file channels (counters for tests and status). */
    HubFiles files() {
        return files;
    }

    /** The HTTP port the hub listens on. */
    public int port() {
        return http.port();
    }

    /** Base URL of the hub's listener. */
    public String url() {
        return "http://" + http.host() + ":" + http.port();
    }

    private void loadSites() throws SQLException {
        try (Connection c = db.connection();
             PreparedStatement ps = c.prepareStatement("SELECT node_id, secret_hash, listen_url, pull_token, incarnation FROM sync_node");
             ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                SiteState s = new SiteState(rs.getString(1));
                s.secretHash = rs.getString(2);
                s.schedule = cfg.schedule(s.id);
                s.pullUrl = s.schedule.url() != null ? s.schedule.url() : rs.getString(3);
                s.pullToken = rs.getString(4);
                s.incarnation = rs.getString(5);
                sites.put(s.id, s);
                schedulePull(s);
            }
            c.commit();
        }
    }

    // ---- registration ----------------------------------------------------------------------------

    private void handleRegister(HttpExchange ex) throws IOException {
        Registration.Request r;
        try {
            r = WireFormat.MAPPER.readValue(HttpEndpoint.readSmallBody(ex), Registration.Request.class);
        } catch (IOException e) {
            throw new HttpError(400, "registration request is not valid JSON: " + e.getMessage());
        }
        if (r == null) {
            throw new HttpError(400, "registration request is empty (JSON null): expected {node, token, listenUrl, pullToken, incarnation}");
        }
        if (r.node() == null || !Names.isValid(r.node())) {
            throw new HttpError(400, "registration request: 'node' is missing or not a valid node id: " + r.node());
        }
        if (!Secrets.matches(r.token(), cfg.enrollmentToken())) {
            LOG.warn("hub {}: registration of node {} from {} refused: wrong enrollment token", cfg.nodeId(), r.node(),
                    ex.getRemoteAddress());
            throw new HttpError(401, "enrollment token rejected for node '" + r.node() + "'");
        }
        if (r.node().equals(cfg.nodeId())) {
            throw new HttpError(400, "node id '" + r.node() + "' is the hub's own id");
        }
        SiteSchedule schedule = cfg.schedule(r.node());
        String pullUrl = schedule.url() != null ? schedule.url() : r.listenUrl();
        if (schedule.mode() == SiteSchedule.Mode.PULL && pullUrl == null) {
            throw new HttpError(400, "site '" + r.node() + "' is configured for pull mode (sites." + r.node()
                    + ".mode) but advertises no listener URL and sites." + r.node() + ".url is not set");
        }
        String secret = Secrets.newToken();
        try (Connection c = db.connection()) {
            register(c, r, Secrets.sha256(secret), pullUrl);
        } catch (SQLException e) {
            throw new HttpError(503, "registration failed, try again: " + e.getMessage());
        }
        SiteState s = sites.computeIfAbsent(r.node(), SiteState::new);
        s.secretHash = Secrets.sha256(secret);
        s.schedule = schedule;
        s.pullUrl = pullUrl;
        s.pullToken = r.pullToken();
        s.incarnation = r.incarnation();
        s.lastContact = clock.instant();
        schedulePull(s);
        LOG.info("hub {}: site {} registered ({} mode, every {} ms)", cfg.nodeId(), r.node(),
                schedule.mode().name().toLowerCase(), schedule.interval().toMillis());
        HttpEndpoint.sendJson(ex, 200, new Registration.Response(cfg.nodeId(), r.node(), secret,
                schedule.mode().name().toLowerCase(), schedule.interval().toMillis(), cfg.maxBatchesPerExchange(),
                channelsFor(r.node()), configHash(r.node(), schedule), files.channelsFor(r.node())));
    }

    /** The channels a site takes part in: every site-to-hub channel, and the hub-to-sites and two-way channels routed to it. */
    private List<ChannelSpec> channelsFor(String site) {
        return channels.values().stream()
                .filter(ch -> ch.direction() == ChannelSpec.Direction.SITE_TO_HUB || distributor.routes(ch.name(), site))
                .toList();
    }

    /** Whether site {@code site} sends batches of {@code ch}: a site-to-hub channel, or a two-way channel routed to it. */
    private boolean sendsTo(ChannelSpec ch, String site) {
        return ch.direction() == ChannelSpec.Direction.SITE_TO_HUB
                || ch.direction() == ChannelSpec.Direction.TWO_WAY && distributor.routes(ch.name(), site);
    }

    /**
     * What a site must re-fetch when it changes: its channels, its mode, its interval and the batch limit. Sent with
     * every exchange; a site whose registration carries another hash registers again.
     */
    private String configHash(String site, SiteSchedule schedule) {
        // Sent with every exchange; the configuration is fixed for the hub's life, so worked out once per site.
        return configHashes.computeIfAbsent(site + '\0' + schedule, k -> {
            try {
                return Secrets.sha256(WireFormat.MAPPER.writeValueAsString(channelsFor(site)) + "|"
                        + WireFormat.MAPPER.writeValueAsString(files.channelsFor(site)) + "|" + schedule.mode() + "|"
                        + schedule.interval().toMillis() + "|" + cfg.maxBatchesPerExchange()).substring(0, 16);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    private void register(Connection c, Registration.Request r, String secretHash, String pullUrl) throws SQLException {
        try {
            String incarnation = null;
            boolean exists = false;
            try (PreparedStatement ps = c.prepareStatement("SELECT incarnation FROM sync_node WHERE node_id = ? FOR UPDATE")) {
                ps.setString(1, r.node());
                try (ResultSet rs = ps.executeQuery()) {
                    if (rs.next()) {
                        exists = true;
                        incarnation = rs.getString(1);
                    }
                }
            }
            if (exists && incarnation != null && !incarnation.equals(r.incarnation())) {
                LOG.warn("hub {}: site {} registered with a new database (incarnation {} replaces {}); its batch numbering restarts "
                        + "and its tables are loaded again", cfg.nodeId(), r.node(), r.incarnation(), incarnation);
                try (PreparedStatement ps = c.prepareStatement("DELETE FROM sync_incoming WHERE source = ?")) {
                    ps.setString(1, r.node());
                    ps.executeUpdate();
                }
                HubFiles.forget(c, r.node());
            }
            String sql = exists
                    ? "UPDATE sync_node SET secret_hash = ?, listen_url = ?, pull_token = ?, incarnation = ?, registered_at = ? WHERE node_id = ?"
                    : "INSERT INTO sync_node (secret_hash, listen_url, pull_token, incarnation, registered_at, node_id) VALUES (?, ?, ?, ?, ?, ?)";
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setString(1, secretHash);
                ps.setString(2, pullUrl);
                ps.setString(3, r.pullToken());
                ps.setString(4, r.incarnation());
                ps.setObject(5, OffsetDateTime.ofInstant(clock.instant(), ZoneOffset.UTC));
                ps.setString(6, r.node());
                ps.executeUpdate();
            }
            c.commit();
        } catch (SQLException e) {
            c.rollback();
            throw e;
        }
    }

    private SiteState authenticate(HttpExchange ex) {
        String node = ex.getRequestHeaders().getFirst(Headers.NODE);
        SiteState s = node == null ? null : sites.get(node);
        if (s == null) {
            LOG.warn("hub {}: request from unknown node '{}' at {} refused", cfg.nodeId(), node, ex.getRemoteAddress());
            throw new HttpError(401, node == null ? "missing " + Headers.NODE + " header"
                    : "unknown node '" + node + "': register first (POST /v1/register)");
        }
        String token = Secrets.bearer(ex.getRequestHeaders().getFirst("Authorization"));
        if (token == null || !Secrets.matches(Secrets.sha256(token), s.secretHash)) {
            LOG.warn("hub {}: request from node '{}' at {} refused: wrong credentials", cfg.nodeId(), node, ex.getRemoteAddress());
            throw new HttpError(401, "wrong credentials for node '" + node + "': register again");
        }
        return s;
    }

    // ---- push ------------------------------------------------------------------------------------

    private void handleBatches(HttpExchange ex) throws IOException {
        SiteState s = authenticate(ex);
        Backlog reported = Backlog.parse(ex.getRequestHeaders().getFirst(Headers.BACKLOG));
        Map<String, Long> acks = new LinkedHashMap<>();
        Received got;
        try (WireReader reader = new WireReader(ex.getRequestBody())) {
            got = receive(s, reader, acks);
        } catch (BadBatchException e) {
            s.lastError = e.getMessage();
            LOG.warn("hub {}: site {}: batch refused: {}", cfg.nodeId(), s.id, e.getMessage());
            if (e instanceof OutOfOrderBatchException o) {
                throw new HttpError(409, e.getMessage(), Map.of("acks", acks, "channel", o.channel(), "expected", o.expected()));
            }
            throw new HttpError(400, e.getMessage(), Map.of("acks", acks));
        } catch (RetriableSyncException e) {
            s.lastError = e.getMessage();
            LOG.warn("hub {}: site {}: {}", cfg.nodeId(), s.id, e.getMessage());
            throw new HttpError(503, e.getMessage(), Map.of("acks", acks));
        } catch (UncheckedIOException e) {
            s.lastError = "connection lost while receiving: " + e.getMessage();
            LOG.warn("hub {}: site {}: connection lost while receiving batches: {}", cfg.nodeId(), s.id, e.getMessage());
            throw e.getCause();
        }
        contact(s, reported, got.changes());
        s.lastError = s.heldReason();
        ex.getResponseHeaders().set(Headers.CONFIG, configHash(s.id, s.schedule));
        // held: channels whose first batch here waits for a file; the site leaves them out of its next pushes for a while.
        HttpEndpoint.sendJson(ex, 200, Map.of("acks", acks, "config", configHash(s.id, s.schedule), "held", got.held()));
    }

    /** Batches and changes taken from one stream; {@code held}: by channel, why its batch waits for a file its rows reference. */
    private record Received(int batches, long changes, Map<String, String> held) {
    }

    /**
     * Applies every batch of a stream from site {@code s}; fills {@code acks}. A batch whose rows wait for a file is not
     * applied, nor are the channel's batches after it in the stream (the site sends them again); other channels go on.
     */
    private Received receive(SiteState s, WireReader reader, Map<String, Long> acks) {
        long applied = 0;
        int batches = 0;
        Map<String, String> held = new LinkedHashMap<>();
        BatchHeader h;
        while ((h = reader.nextBatch()) != null) {
            try (MDC.MDCCloseable m1 = MDC.putCloseable("node", cfg.nodeId()); MDC.MDCCloseable m2 = MDC.putCloseable("batch", h.id().toString())) {
                if (!h.id().source().equals(s.id)) {
                    throw new BadBatchException(SyncException.Stage.TRANSPORT, "batch " + h.id() + " names source '" + h.id().source()
                            + "' but was sent by node '" + s.id + "'");
                }
                ChannelSpec ch = channels.get(h.id().channel());
                if (ch != null && !sendsTo(ch, s.id)) {
                    throw new BadBatchException(SyncException.Stage.TRANSPORT, "batch " + h.id() + " is for channel '"
                            + h.id().channel() + "', which " + (ch.direction() == ChannelSpec.Direction.HUB_TO_SITES
                            ? "flows from the hub to the sites, not from them" : "is not routed to site '" + s.id + "'"));
                }
                if (ch == null) {
                    throw new BadBatchException(SyncException.Stage.TRANSPORT, "batch " + h.id() + " is for unknown channel '"
                            + h.id().channel() + "' (the hub has " + channels.keySet() + ")");
                }
                Iterator<Change> changes = reader.changes();
                if (held.containsKey(ch.name())) {
                    drain(changes);
                    continue;
                }
                ApplyOutcome outcome;
                try (Connection c = db.connection()) {
                    outcome = ch.direction() == ChannelSpec.Direction.TWO_WAY ? applier.applyTwoWay(c, h, ch, changes, twoWay)
                            : applier.apply(c, h, ch, changes);
                } catch (SQLException e) {
                    throw new RetriableSyncException(SyncException.Stage.APPLY, "no database connection: " + e.getMessage(), e);
                } catch (WaitingForFileException e) {
                    drain(changes);
                    held.put(ch.name(), e.getMessage());
                    if (!e.getMessage().equals(s.held.put(ch.name(), e.getMessage()))) {
                        LOG.info("hub {}: site {}: {}", cfg.nodeId(), s.id, e.getMessage());
                    }
                    continue;
                }
                drain(changes);
                if (outcome instanceof ApplyOutcome.Applied a) {
                    applied += a.changes();
                    LOG.debug("applied batch {} ({} changes)", h.id(), a.changes());
                }
                acks.put(ch.name(), outcome.lastApplied());
                s.held.remove(ch.name());
                batches++;
            }
        }
        return new Received(batches, applied, held);
    }

    private static void drain(Iterator<Change> changes) {
        while (changes.hasNext()) {
            changes.next();
        }
    }

    private void contact(SiteState s, Backlog reported, long appliedNow) {
        s.lastContact = clock.instant();
        s.lastError = null;
        if (reported != null) {
            long left = Math.max(0, reported.rows() - appliedNow);
            s.reported = left == 0 ? Backlog.NONE : new Backlog(left, reported.batches(), reported.oldestAgeMs());
            s.reportedAt = clock.instant();
            s.lastExchangeLagMs = reported.oldestAgeMs();
        }
    }

    // ---- fetch (hub-to-sites channels) --------------------------------------------------------------

    private void handleFetch(HttpExchange ex) throws IOException {
        SiteState s = authenticate(ex);
        ex.getResponseHeaders().set(Headers.CONFIG, configHash(s.id, s.schedule));
        Map<String, String> query = HttpEndpoint.query(ex);
        String failed = FETCH_FAILED + "channel " + query.get("channel") + ": ";
        try {
            distributor.handleFetch(ex, s.id, query);
        } catch (HttpError e) {
            s.lastError = failed + e.getMessage();
            throw e;
        } catch (IOException | RuntimeException e) {
            // Possibly after the 200 header: the stream is cut there, and the site refuses the unfinished batch.
            s.lastError = failed + e.getMessage();
            LOG.warn("hub {}: fetch by site {} failed: {}", cfg.nodeId(), s.id, e.getMessage());
            throw e;
        }
        s.lastContact = clock.instant();
        String error = s.lastError;
        if (error != null && error.startsWith(failed)) {
            s.lastError = null; // only this channel's error: a push error stays until a push succeeds
        }
    }

    // ---- pull ------------------------------------------------------------------------------------

    private void schedulePull(SiteState s) {
        ScheduledFuture<?> old = pullTasks.remove(s.id);
        if (old != null) {
            old.cancel(false);
        }
        if (s.schedule.mode() != SiteSchedule.Mode.PULL) {
            return;
        }
        long every = Math.max(10, s.schedule.interval().toMillis());
        pullTasks.put(s.id, pullScheduler.scheduleWithFixedDelay(() -> pullSafely(s), every, every, TimeUnit.MILLISECONDS));
    }

    /**
     * POST /v1/poke from an authenticated pull-mode site that just sealed a batch of a real-time channel: the hub pulls it
     * at once instead of at the site's interval (real time in pull mode; the data still travels in the hub's pull).
     */
    private void handlePoke(HttpExchange ex) throws IOException {
        SiteState s = authenticate(ex);
        HttpEndpoint.drain(ex.getRequestBody());
        if (s.schedule.mode() != SiteSchedule.Mode.PULL) {
            throw new HttpError(400, "site " + s.id + " pushes its batches: a poke is for pull-mode sites");
        }
        if (s.pokeQueued.compareAndSet(false, true)) {
            pullScheduler.execute(() -> {
                s.pokeQueued.set(false);
                pullSafely(s);
            });
        }
        HttpEndpoint.sendJson(ex, 202, Map.of("pull", "queued"));
    }

    private void pullSafely(SiteState s) {
        try {
            pull(s);
        } catch (RuntimeException | IOException | SQLException | Error e) { // an escaping Throwable would cancel the schedule
            String msg = Responses.describe(e, "site listener " + s.pullUrl);
            if (!java.util.Objects.equals(msg, s.lastError)) {
                LOG.warn("hub {}: pull from site {} failed: {}", cfg.nodeId(), s.id, msg);
            }
            s.lastError = msg;
        }
    }

    /** One exchange with a pull-mode site: every channel, until the site has nothing more. */
    private void pull(SiteState s) throws IOException, SQLException {
        synchronized (s.pullLock) {
            if (s.pullUrl == null) {
                throw new IllegalStateException("site " + s.id + " has no listener URL");
            }
            Backlog total = Backlog.NONE;
            long applied = 0;
            for (ChannelSpec ch : channels.values()) {
                if (!sendsTo(ch, s.id)) {
                    continue;
                }
                io.syncline.node.config.Schedule schedule = io.syncline.node.config.Schedule.ofChannel(ch);
                String dueKey = io.syncline.node.config.Schedule.dueKey(ch);
                Instant now = clock.instant();
                if (!schedule.realtime()
                        && now.isBefore(s.pullDue.computeIfAbsent(dueKey, k -> schedule.first(now, java.time.ZoneId.systemDefault())))) {
                    continue; // a channel with a schedule is pulled when it is due
                }
                boolean held = false; // a batch waits for a file: asked for again at the next pull, whatever the schedule
                for (int round = 0; round < 1000; round++) {
                    long last;
                    try (Connection c = db.connection()) {
                        last = BatchApplier.lastApplied(c, s.id, ch.name());
                        c.commit();
                    }
                    String confirm = s.confirmLowAck.remove(ch.name());
                    URI uri = URI.create(s.pullUrl + "/v1/pull?channel=" + URLEncoder.encode(ch.name(), StandardCharsets.UTF_8)
                            + "&ack=" + last + "&max=" + cfg.maxBatchesPerExchange()
                            + (confirm == null ? "" : "&confirm=" + URLEncoder.encode(confirm, StandardCharsets.UTF_8)));
                    HttpURLConnection conn = (HttpURLConnection) uri.toURL().openConnection();
                    conn.setConnectTimeout(5000);
                    conn.setReadTimeout((int) Math.min(Integer.MAX_VALUE, cfg.readTimeout().toMillis()));
                    conn.setRequestProperty("Authorization", "Bearer " + s.pullToken);
                    conn.setRequestProperty(Headers.NODE, cfg.nodeId());
                    conn.setRequestProperty(Headers.CONFIG, configHash(s.id, s.schedule));
                    if (s.incarnation != null) {
                        conn.setRequestProperty(Headers.INCARNATION, s.incarnation);
                    }
                    try {
                        int code = conn.getResponseCode();
                        if (code != 200) {
                            String error = Responses.errorBody(conn);
                            String token = code == 409 && confirm == null ? confirmToken(error) : null;
                            if (token != null) {
                                // Our ledger is below what we acknowledged to the site before: the site asks us to say
                                // so again, with its token, to tell this pull from one held up in the network.
                                LOG.warn("hub {}: site {} says we acknowledged more of channel '{}' than the {} batches we "
                                        + "have (our database is older than what we acknowledged); confirming", cfg.nodeId(),
                                        s.id, ch.name(), last);
                                s.confirmLowAck.put(ch.name(), token);
                                continue;
                            }
                            throw new IOException("site " + s.id + " answered " + code + ": " + error);
                        }
                        Backlog b = Backlog.parse(conn.getHeaderField(Headers.BACKLOG));
                        if (round == 0 && b != null) {
                            // The site's whole backlog, every channel's (not this channel's): the latest answer's is the
                            // one to keep. Summed over the channels pulled, it counted each change once per channel, and
                            // the site looked behind by that much.
                            total = b;
                        }
                        Map<String, Long> acks = new LinkedHashMap<>();
                        Received got;
                        try (InputStream in = conn.getInputStream(); WireReader reader = new WireReader(in)) {
                            got = receive(s, reader, acks);
                        }
                        applied += got.changes();
                        held |= !got.held().isEmpty();
                        if (got.batches() < cfg.maxBatchesPerExchange() || held) {
                            break;
                        }
                    } finally {
                        conn.disconnect();
                    }
                }
                if (!schedule.realtime() && !held) {
                    s.pullDue.put(dueKey, schedule.next(now, java.time.ZoneId.systemDefault()));
                }
            }
            contact(s, total, applied);
            s.lastError = s.heldReason();
        }
    }


    /** The {@code confirm} token of a site's 409 answer to a pull, or null. */
    private static String confirmToken(String error) {
        try {
            com.fasterxml.jackson.databind.JsonNode token = WireFormat.MAPPER.readTree(error).get("confirm");
            return token != null && token.isTextual() ? token.asText() : null;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    // ---- status ----------------------------------------------------------------------------------

    private void handleStatus(HttpExchange ex) throws IOException {
        String token = Secrets.bearer(ex.getRequestHeaders().getFirst("Authorization"));
        if (!Secrets.matches(token, cfg.enrollmentToken())) {
            throw new HttpError(401, "status needs 'Authorization: Bearer <enrollment token>'");
        }
        HttpEndpoint.sendJson(ex, 200, status());
    }

    @Override
    public NodeStatus status() {
        Instant now = clock.instant();
        Map<String, Map<String, Long>> batches = new LinkedHashMap<>();
        Map<String, Long> rows = new LinkedHashMap<>();
        Map<String, Long> conflictsBySite = new LinkedHashMap<>();
        ConflictLog.Counts conflicts;
        Map<String, HubFiles.FileStatus> fileStatus;
        try (Connection c = db.connection()) {
            try (PreparedStatement ps = c.prepareStatement("SELECT source, channel, last_batch, rows_applied FROM sync_incoming");
                 ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    batches.computeIfAbsent(rs.getString(1), k -> new LinkedHashMap<>()).put(rs.getString(2), rs.getLong(3));
                    rows.merge(rs.getString(1), rs.getLong(4), Long::sum);
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT site, COUNT(*) FROM sync_conflict GROUP BY site");
                 ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    conflictsBySite.put(rs.getString(1), rs.getLong(2));
                }
            }
            conflicts = ConflictLog.counts(c);
            fileStatus = files.status(c, sites.keySet());
            c.commit();
        } catch (SQLException e) {
            throw new RetriableSyncException(SyncException.Stage.APPLY, "cannot read status: " + e.getMessage(), e);
        }
        List<NodeStatus.SiteStatus> out = new ArrayList<>();
        for (SiteState s : sites.values()) {
            Backlog b = s.reported;
            // Still pending after the last exchange: its age, growing. Otherwise: how long the oldest change delivered
            // by the last exchange had waited, which is the delay sites currently see.
            long lag = s.reportedAt == null ? 0
                    : b.rows() > 0 ? b.oldestAgeMs() + Duration.between(s.reportedAt, now).toMillis() : s.lastExchangeLagMs;
            long staleAfter = 3 * s.schedule.interval().toMillis() + 5000;
            String state = s.lastContact == null ? "NEVER"
                    : Duration.between(s.lastContact, now).toMillis() > staleAfter ? "OFFLINE"
                    : lag > staleAfter ? "LAGGING" : "ONLINE";
            HubFiles.FileStatus f = fileStatus.getOrDefault(s.id, new HubFiles.FileStatus(Map.of(), 0));
            out.add(new NodeStatus.SiteStatus(s.id, s.schedule.mode().name().toLowerCase(), state, s.lastContact, b.rows(), lag,
                    batches.getOrDefault(s.id, Map.of()), rows.getOrDefault(s.id, 0L), s.lastError, distributor.pendingFor(s.id),
                    conflictsBySite.getOrDefault(s.id, 0L), distributor.retentionNotice(s.id), f.changes(), f.pendingToSite()));
        }
        out.sort(Comparator.comparing(NodeStatus.SiteStatus::site));
        return new NodeStatus(cfg.nodeId(), "hub", now, out, Map.of(), conflicts.total(), conflicts.open());
    }

    /** Hub-to-sites batches read from the outbox (the rest were served from the cache); for tests. */
    long outboxReads() {
        return distributor.outboxReads();
    }

    @Override
    public String nodeId() {
        return cfg.nodeId();
    }

    @Override
    public NodeRole role() {
        return NodeRole.HUB;
    }

    @Override
    public void syncNow() {
        for (SiteState s : sites.values()) {
            if (s.schedule.mode() == SiteSchedule.Mode.PULL) {
                pullScheduler.execute(() -> {
                    synchronized (s.pullLock) {
                        for (ChannelSpec ch : channels.values()) { // every schedule at once
                            if (ch.schedule() != null) {
                                s.pullDue.put(io.syncline.node.config.Schedule.dueKey(ch), Instant.EPOCH);
                            }
                        }
                    }
                    pullSafely(s);
                });
            }
        }
    }

    @Override
    public void close() {
        files.close();
        distributor.close();
        pullScheduler.shutdownNow();
        try {
            pullScheduler.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        http.close();
        db.close();
        LOG.info("hub {} stopped", cfg.nodeId());
    }
}
