package io.syncline.node;

import com.sun.net.httpserver.HttpExchange;
import io.syncline.api.BadBatchException;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.NodeRole;
import io.syncline.api.SyncException;
import io.syncline.api.TableSpec;
import io.syncline.api.WaitingForFileException;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.apply.Guards;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.apply.CrashPoints;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.load.InitialLoadState;
import io.syncline.engine.load.InitialLoader;
import io.syncline.engine.outbox.DivergedException;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.SyncSchema;
import io.syncline.node.config.NodeConfig;
import io.syncline.node.config.Schedule;
import io.syncline.transport.http.Headers;
import io.syncline.transport.http.HttpEndpoint;
import io.syncline.transport.http.HttpError;
import io.syncline.transport.http.Responses;
import io.syncline.transport.wire.WireFormat;
import io.syncline.transport.wire.WireReader;
import io.syncline.transport.wire.WireWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * A site: captures its tables' changes into its outbox and delivers them to the hub.
 *
 * At start the site registers with the hub (enrollment token in, credentials and channel configuration
 * out), installs or upgrades capture triggers, and records an initial load for every newly captured table.
 * The registration is stored in sync_state, so a site whose hub is down still starts and keeps capturing.
 *
 * One thread (syncline-site-<id>) ticks every capture.interval: seal newly committed changes into batches,
 * copy a bounded slice of any pending initial load, and in push mode send unacknowledged batches to the hub
 * (at the hub's interval, or at once again while a backlog remains). In pull mode a listener serves
 * GET /v1/pull to the hub instead. Sealing is serialized per channel by a lock, because the tick thread and
 * the listener both seal.
 */
public final class SiteNode implements NodeControl {
    private static final Logger LOG = LoggerFactory.getLogger(SiteNode.class);
    private static final String REGISTRATION = "registration";
    private static final String INCARNATION = "incarnation";
    private static final String PULL_TOKEN = "pull.token";
    /** Per hub-to-sites channel: the route hash of the last reload applied (sync_state key prefix). */
    private static final String ROUTE = "route.";
    /** Per hub-to-sites channel: the hub's token of the last batch applied (sync_state key prefix). */
    private static final String TOKEN = "fetch.token.";
    /** The highest hybrid logical clock stamp seen in the hub's batches, so that a restart does not forget it. */
    private static final String SEEN_STAMP = "stamp.seen";

    private final NodeConfig cfg;
    private final Clock clock;
    private final Database db;
    private final OutboxStore outbox;
    private final InitialLoader loader;
    private final ScheduledExecutorService ticker;
    private final Map<String, ReentrantLock> sealLocks = new ConcurrentHashMap<>();
    private volatile String incarnation;
    /** One-way channels whose last fetch failed with batches in its group: applied one transaction each until a fetch lands. */
    private final java.util.Set<String> singly = ConcurrentHashMap.newKeySet();
    /** A group commit of fetched batches ends once this many rows are in it. */
    private static final int GROUP_ROWS = 10_000;
    /** The incarnation the hub accepted in this process's last registration (null before the first one). */
    private volatile String registeredIncarnation;
    private final String pullToken;
    private volatile Registration.Response registration;
    /** The configuration hash whose channels have capture installed; differs from the registration's until installed. */
    private volatile String captureInstalledFor;
    private volatile boolean reregister;
    private volatile HttpEndpoint listener;
    private volatile Instant nextPush = Instant.EPOCH;
    /** Waits between failed pushes (tick thread only). */
    private final Backoff pushBackoff;
    /** Per channel with a schedule (key: name and schedule), when it is next due (tick thread only). */
    private final Map<String, Instant> dueAt = new java.util.HashMap<>();
    /** Reports commits that captured changes, so they are sealed and pushed at once; null: polling only. */
    private final io.syncline.engine.capture.CaptureWatch watch;
    /** Per hub-to-sites or two-way channel, the loop fetching the hub's batches on a thread of its own. */
    private final Map<String, Fetcher> fetchers = new ConcurrentHashMap<>();
    private final java.util.concurrent.ExecutorService fetchThreads;
    /**
     * A fetch applies each batch under the read lock, after checking that the site has not started over or begun to
     * register again since the fetch started; a start-over takes the write lock. So a response asked for under the old
     * numbering is never applied under the new one. Seals and acknowledgements take the read lock too: one committed
     * during a start-over would leave a batch number or an acknowledgement of the old numbering in the new one.
     */
    private final java.util.concurrent.locks.ReentrantReadWriteLock epoch = new java.util.concurrent.locks.ReentrantReadWriteLock();
    /** By upstream channel: a pull's low ack waiting for the hub to confirm it (confirmLowAck). */
    private final Map<String, LowAck> lowAcks = new ConcurrentHashMap<>();
    private volatile boolean closed;
    /** Pull mode: when this site last poked the hub, and when the hub last started a pull (System.nanoTime). */
    private volatile long pokedAt = Long.MIN_VALUE;
    private volatile long pullStarted = Long.MIN_VALUE + 1;
    /** Applies the hub's batches of hub-to-sites channels. */
    private final BatchApplier applier;
    /** When the tick next compares captured tables with their capture (touched by the tick thread only). */
    private Instant nextSchemaCheck = Instant.EPOCH;
    private volatile Instant nextRegistration = Instant.EPOCH;
    /** Waits between failed registrations (tick thread; the constructor's first attempt comes before the ticks). */
    private final Backoff registrationRetry = new Backoff(Duration.ofMillis(500), RETRY_CAP, new java.util.Random());
    private volatile String lastError;
    /** By channel to the hub: until when it is left out of pushes, because the hub holds its batch for a file, and why. */
    private final Map<String, Held> held = new ConcurrentHashMap<>();

    private record Held(Instant till, String why) {
    }
    /** By channel from the hub: why its last fetch failed (none when it did not). */
    private final Map<String, String> fetchErrors = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile Instant lastContact;
    /** This site's hybrid logical clock: stamps its batches, and takes in the stamps of the hub's batches it applies. */
    private final HybridClock stamps;
    /** Site-to-hub file channels: walks the folders and sends their changes, on a thread of its own. */
    private final SiteFiles files;

    private SiteNode(NodeConfig cfg, Clock clock) throws SQLException, IOException {
        this.cfg = cfg;
        this.clock = clock;
        this.stamps = new HybridClock(clock);
        this.db = new Database(cfg);
        // Every seal of a two-way channel guards the rows it carries until the hub has taken them in (engine/apply/Guards).
        Guards guards = new Guards(db.dialect(), this::isTwoWay);
        this.outbox = new OutboxStore(db.dialect(), clock, stamps, guards);
        this.loader = new InitialLoader(db.dialect(), cfg.loadChunkSize());
        this.applier = new BatchApplier(db.dialect(), clock, outbox, guards, this::locateFile, cfg.fileReferenceWait());
        try (Connection c = db.connection()) {
            SyncSchema.install(c, db.dialect());
            c.commit();
            stamps.observe(OutboxStore.lastStamp(c));
            String seen = SyncSchema.getState(c, SEEN_STAMP);
            c.commit();
            stamps.observe(seen == null ? 0 : Long.parseLong(seen));
            this.incarnation = stateOrNew(c, INCARNATION);
            this.pullToken = stateOrNew(c, PULL_TOKEN);
            String stored = SyncSchema.getState(c, REGISTRATION);
            c.commit();
            if (stored != null) {
                registration = WireFormat.MAPPER.readValue(stored, Registration.Response.class);
            }
        }
        this.ticker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "syncline-site-" + cfg.nodeId());
            t.setDaemon(true);
            return t;
        });
        java.util.concurrent.atomic.AtomicInteger fetchN = new java.util.concurrent.atomic.AtomicInteger();
        this.fetchThreads = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "syncline-site-" + cfg.nodeId() + "-fetch-" + fetchN.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.pushBackoff = new Backoff(Duration.ofMillis(Math.max(100, Math.min(1000, cfg.captureInterval().toMillis()))),
                RETRY_CAP, new java.util.Random());
        Waker waker = new Waker(ticker, this::sendNow);
        this.watch = db.watchCaptures("site-" + cfg.nodeId(), waker);
        waker.reportsBeforeCommit(watch != null && watch.callsBeforeCommit());
        startListener();
        // Files from the hub end the back-off of a fetch whose rows wait for them.
        this.files = new SiteFiles(cfg, db, clock, () -> registration, () -> fetchers.values().forEach(Fetcher::wakeIfArrived));
        tryRegister();
        if (registration != null) {
            installCapture(false);
        }
        long every = Math.max(10, cfg.captureInterval().toMillis());
        ticker.scheduleWithFixedDelay(this::tick, 0, every, TimeUnit.MILLISECONDS);
    }

    /** Why the last fetch of hub-to-sites or two-way channel {@code channel} failed, or null when it did not (for tests). */
    String fetchError(String channel) {
        return fetchErrors.get(channel);
    }

    /** The last problem with this site's file channels, or null (for tests; status has no file channels yet). */
    String filesError() {
        return files.lastError();
    }

    /** The site's side of file channels (counters for tests). */
    SiteFiles files() {
        return files;
    }

    /** Starts a site: opens its database, registers with the hub (or uses the stored registration), starts syncing. */
    public static SiteNode start(NodeConfig cfg, Clock clock) {
        try {
            return new SiteNode(cfg, clock);
        } catch (SQLException | IOException e) {
            throw new SyncException(SyncException.Stage.CONFIG, "site " + cfg.nodeId() + " could not start: " + e.getMessage(), e);
        }
    }

    private static String stateOrNew(Connection c, String key) throws SQLException {
        String v = SyncSchema.getState(c, key);
        if (v == null) {
            v = Secrets.newToken();
            SyncSchema.putState(c, key, v);
        }
        return v;
    }

    private void startListener() throws IOException {
        HttpEndpoint ep = new HttpEndpoint("site-" + cfg.nodeId(), cfg.httpHost(), cfg.httpPort(), 4);
        ep.route("/v1/pull", "GET", this::handlePull);
        ep.start();
        listener = ep;
    }

    private String listenUrl() {
        HttpEndpoint ep = listener;
        return cfg.advertisedUrl().orElse(ep == null ? null : "http://" + ep.host() + ":" + ep.port());
    }

    // ---- registration ----------------------------------------------------------------------------

    private void tryRegister() {
        Instant now = clock.instant();
        if (now.isBefore(nextRegistration)) {
            return;
        }
        try {
            String sent = incarnation;
            Registration.Response r = register(sent);
            try (Connection c = db.connection()) {
                SyncSchema.putState(c, REGISTRATION, WireFormat.MAPPER.writeValueAsString(r));
                c.commit();
            }
            registration = r;
            registeredIncarnation = sent;
            reregister = false;
            registrationRetry.reset();
            lastContact = clock.instant();
            LOG.info("site {} registered with hub {} ({} mode, channels {})", cfg.nodeId(), r.hub(), r.mode(),
                    r.channels().stream().map(ChannelSpec::name).toList());
            files.wake();
        } catch (IOException | SQLException | RuntimeException e) {
            lastError = "registration failed: " + e.getMessage();
            // Keep trying (with backoff) even when a stored registration lets us go on: the hub must learn this
            // start's listener URL, or a pull-mode site with a new port is never pulled again.
            reregister = true;
            Duration wait = registrationRetry.next();
            nextRegistration = now.plus(wait);
            LOG.warn("site {}: {} (retrying in {} ms{})", cfg.nodeId(), lastError, wait.toMillis(),
                    registration != null ? "; capturing with the stored configuration meanwhile" : "");
        }
    }

    private Registration.Response register(String incarnation) throws IOException {
        HttpURLConnection conn = (HttpURLConnection) URI.create(cfg.hubUrl() + "/v1/register").toURL().openConnection();
        try {
            conn.setConnectTimeout(5000);
            conn.setReadTimeout(30_000);
            conn.setDoOutput(true);
            conn.setRequestMethod("POST");
            conn.setRequestProperty("Content-Type", "application/json");
            byte[] body = WireFormat.MAPPER.writeValueAsBytes(
                    new Registration.Request(cfg.nodeId(), cfg.hubToken(), listenUrl(), pullToken, incarnation));
            try (OutputStream out = conn.getOutputStream()) {
                out.write(body);
            }
            int code = conn.getResponseCode();
            if (code != 200) {
                throw new IOException("hub " + cfg.hubUrl() + " refused registration (" + code + "): " + Responses.errorBody(conn));
            }
            try (InputStream in = conn.getInputStream()) {
                return WireFormat.MAPPER.readValue(in, Registration.Response.class);
            }
        } finally {
            conn.disconnect();
        }
    }

    /**
     * Installs or upgrades capture for the current registration; remembered, so a failure is retried by the next tick.
     * With {@code schemaOnly} (the periodic check of capture.schemaCheckInterval) Syncline's own tables are taken as
     * present, so a check that finds nothing altered takes no lock.
     */
    private void installCapture(boolean schemaOnly) {
        Registration.Response r = registration;
        nextSchemaCheck = clock.instant().plus(cfg.schemaCheckInterval());
        try (Connection c = db.connection()) {
            CaptureInstaller installer = new CaptureInstaller(db.dialect(), clock);
            if (schemaOnly) {
                installer.reconcile(c, upstream(r));
            } else {
                installer.install(c, upstream(r));
                captureInstalledFor = r.configHash();
            }
        } catch (SQLException e) {
            throw new SyncException(SyncException.Stage.CAPTURE, "site " + cfg.nodeId() + ": cannot install capture: " + e.getMessage(), e);
        }
    }

    /** Where a file the hub's rows reference is here once it has arrived (null: not waited for); see SiteFiles#locate. */
    private java.nio.file.Path locateFile(String source, String fileChannel, String path) {
        SiteFiles f = files;
        return f == null ? null : f.locate(source, fileChannel, path);
    }

    /** Whether {@code channel} is a two-way channel of the current registration. */
    private boolean isTwoWay(String channel) {
        Registration.Response r = registration;
        return r != null && upstream(r).stream().anyMatch(ch -> ch.name().equals(channel) && ch.direction() == ChannelSpec.Direction.TWO_WAY);
    }

    /** The registration's site-to-hub and two-way channels: captured here and sent to the hub. */
    private static List<ChannelSpec> upstream(Registration.Response r) {
        return r.channels().stream().filter(ch -> ch.direction().fromSites()).toList();
    }

    /** The registration's hub-to-sites and two-way channels: fetched from the hub and applied here. */
    private static List<ChannelSpec> downstream(Registration.Response r) {
        return r.channels().stream().filter(ch -> ch.direction().toSites()).toList();
    }

    // ---- the tick --------------------------------------------------------------------------------

    private void tick() {
        try {
            if (registration == null || reregister || !incarnation.equals(registeredIncarnation)) {
                tryRegister();
                if (registration == null) {
                    return;
                }
            }
            Registration.Response r = registration;
            if (!r.configHash().equals(captureInstalledFor)) {
                installCapture(false);
            } else if (!clock.instant().isBefore(nextSchemaCheck)) {
                installCapture(true);
            }
            if ("pull".equals(r.mode()) && lastContact != null
                    && Duration.between(lastContact, clock.instant()).toMillis() > Math.max(30_000, 5 * r.intervalMillis())) {
                // The hub has not pulled for a long time: it may have forgotten us (restart, new mode). Register again.
                reregister = true;
            }
            // Loaded before sealing, so a chunk copied now travels in this tick's batch.
            long loadUntil = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(200);
            try (Connection c = db.connection()) {
                for (ChannelSpec ch : upstream(r)) {
                    while (System.nanoTime() < loadUntil && loader.step(c, ch)) {
                        // copy chunks for at most 200 ms per tick, so capture and sending keep going
                    }
                }
            }
            boolean fresh = sealDue(r);
            // Exchanges wait for the hub to know our incarnation: after a start-over, an exchange under the old one
            // would be answered from the hub's old ledger and start us over again.
            // In real time a sealed batch goes at once, unless pushes are failing (they wait for their back-off).
            if (pushing(r) && (fresh && pushBackoff.failures() == 0 || !clock.instant().isBefore(nextPush))) {
                pushNow(r);
            } else if (fresh && "pull".equals(r.mode()) && incarnation.equals(registeredIncarnation)) {
                poke(r);
            }
        } catch (Exception | Error e) { // an escaping Throwable would cancel the schedule silently
            pushFailed(e);
        }
        // Apart from the above: each channel from the hub is fetched by a thread of its own, so a batch the hub keeps
        // refusing does not stop the hub's changes from arriving, and a long poll does not hold up sealing and pushing.
        Registration.Response r = registration;
        if (r != null && !closed) {
            for (ChannelSpec ch : downstream(r)) {
                fetchers.computeIfAbsent(ch.name(), name -> {
                    Fetcher f = new Fetcher(name);
                    fetchThreads.execute(f);
                    return f;
                });
            }
        }
    }

    /**
     * The capture watch's task (on the tick thread): seals the real-time channels at once and, in push mode, sends what was
     * sealed; whether anything was sealed.
     */
    private boolean sendNow() {
        Registration.Response r = registration;
        if (r == null || closed || !r.configHash().equals(captureInstalledFor)) {
            return true; // the tick installs capture first; nothing to retry early
        }
        try {
            boolean sealed = false;
            for (ChannelSpec ch : upstream(r)) {
                if (Schedule.ofChannel(ch).realtime()) {
                    sealed |= seal(ch.name());
                }
            }
            if (sealed && pushing(r) && pushBackoff.failures() == 0) {
                pushNow(r);
            } else if (sealed && "pull".equals(r.mode()) && incarnation.equals(registeredIncarnation)) {
                poke(r);
            }
            return sealed;
        } catch (Exception | Error e) {
            pushFailed(e);
            return true;
        }
    }

    /**
     * Pull mode in real time: tells the hub that a batch is sealed (POST /v1/poke), so it pulls now rather than at this
     * site's interval. Best effort: when the poke fails, the hub pulls at the interval as ever.
     */
    private void poke(Registration.Response r) {
        long pulled = pullStarted;
        if (pokedAt > pulled) {
            return; // the last poke has not been answered by a pull yet: that pull takes this batch too
        }
        pokedAt = System.nanoTime();
        try {
            HttpURLConnection conn = (HttpURLConnection) URI.create(cfg.hubUrl() + "/v1/poke").toURL().openConnection();
            try {
                conn.setConnectTimeout(2000);
                conn.setReadTimeout(5000);
                conn.setDoOutput(true);
                conn.setRequestMethod("POST");
                conn.setRequestProperty("Authorization", "Bearer " + r.secret());
                conn.setRequestProperty(Headers.NODE, cfg.nodeId());
                conn.getOutputStream().close();
                int code = conn.getResponseCode();
                if (code != 202) {
                    pokedAt = Long.MIN_VALUE; // no pull is coming: the next seal pokes again
                    LOG.debug("site {}: the hub answered {} to a poke: {}", cfg.nodeId(), code, Responses.errorBody(conn));
                }
            } finally {
                conn.disconnect();
            }
        } catch (IOException | RuntimeException e) {
            pokedAt = Long.MIN_VALUE;
            LOG.debug("site {}: poke failed ({}); the hub pulls at the interval", cfg.nodeId(), e.toString());
        }
    }

    /** Whether this site sends its batches now: push mode, under the incarnation the hub knows. */
    private boolean pushing(Registration.Response r) {
        // Exchanges wait for the hub to know our incarnation: after a start-over, an exchange under the old one would be
        // answered from the hub's old ledger and start us over again.
        return "push".equals(r.mode()) && incarnation.equals(registeredIncarnation);
    }

    /** Pushes; when more batches are waiting, the tick runs again at once. */
    private void pushNow(Registration.Response r) throws IOException, SQLException {
        boolean more = push(r);
        pushBackoff.reset();
        nextPush = more ? Instant.EPOCH : clock.instant().plusMillis(r.intervalMillis());
        if (more) {
            ticker.execute(this::tick);
        }
    }

    private void pushFailed(Throwable e) {
        String msg = Responses.describe(e, "hub at " + cfg.hubUrl());
        if (!java.util.Objects.equals(msg, lastError)) {
            LOG.warn("site {}: {}", cfg.nodeId(), msg);
        }
        lastError = msg;
        nextPush = clock.instant().plus(pushBackoff.next());
    }

    /**
     * Seals each real-time channel, and each channel with a schedule that is due (then next due at its schedule's next
     * time); whether something is to be sent now: a real-time batch was sealed or a scheduled channel came due.
     */
    private boolean sealDue(Registration.Response r) throws SQLException {
        boolean fresh = false;
        Instant now = clock.instant();
        for (ChannelSpec ch : upstream(r)) {
            Schedule s = Schedule.ofChannel(ch);
            if (s.realtime()) {
                fresh |= seal(ch.name());
                continue;
            }
            String key = Schedule.dueKey(ch);
            Instant due = dueAt.computeIfAbsent(key, k -> s.first(now, java.time.ZoneId.systemDefault()));
            if (!now.isBefore(due)) {
                seal(ch.name());
                fresh = true;
                dueAt.put(key, s.next(now, java.time.ZoneId.systemDefault()));
            }
        }
        return fresh;
    }


    private void sealAll(Registration.Response r) throws SQLException {
        for (ChannelSpec ch : upstream(r)) {
            seal(ch.name());
        }
    }

    /** Seals what is committed into the channel's next batch; whether there was anything. */
    private boolean seal(String channel) throws SQLException {
        ReentrantLock lock = sealLocks.computeIfAbsent(channel, k -> new ReentrantLock());
        DivergedException diverged;
        lock.lock();
        epoch.readLock().lock(); // after the seal lock, as a two-way apply takes them
        try (Connection c = db.connection()) {
            return outbox.seal(c, channel).isPresent();
        } catch (DivergedException e) {
            diverged = e;
        } finally {
            epoch.readLock().unlock();
            lock.unlock();
        }
        startOver(diverged); // outside the read lock, which the start-over's write lock waits for
        return false;
    }

    /**
     * The hub expects batch {@code expected} of {@code channel} next, but acknowledged later ones before: its database
     * is older than what it acknowledged (restored from a backup), and those batches are gone from our outbox. Only
     * starting over (everything loaded again under a new incarnation) brings it back.
     */
    private void hubLostBatches(Connection c, Registration.Response r, String channel, long expected) throws SQLException {
        long acknowledged = outbox.acknowledged(c, r.hub(), channel);
        c.commit();
        if (expected <= acknowledged) {
            startOver(lostBatches(r, channel, expected, acknowledged));
        }
    }

    private static DivergedException lostBatches(Registration.Response r, String channel, long expected, long acknowledged) {
        return new DivergedException("hub " + r.hub() + " expects batch " + expected + " of channel '" + channel
                + "' but had acknowledged up to " + acknowledged + ": its database is older than what it acknowledged");
    }

    /*
     * The database no longer matches what the hub holds (restored from a backup, or restored into a new cluster).
     * Carrying on would make the hub skip new batches as duplicates of numbers it already has, losing them without
     * a trace. Instead: clear the outbox, restart batch numbers, load every table again, and register under a new
     * incarnation, which makes the hub restart its ledger for this site. All in one transaction.
     */
    private synchronized void startOver(DivergedException cause) throws SQLException {
        LOG.error("site {}: {}. Starting over: outbox cleared, batch numbers restart at 1, every table is loaded again under a "
                + "new incarnation. Rows deleted here since the backup may remain at the hub until it is repaired.",
                cfg.nodeId(), cause.getMessage());
        epoch.writeLock().lock();
        try (Connection c = db.connection()) {
            try {
                outbox.startOver(c);
                // Every channel is copied again: the hub's batches not fetched yet may hold marks of this site's batches
                // under the old numbering, which would release the new numbering's guards (two-way channels).
                try (java.sql.Statement s = c.createStatement()) {
                    s.executeUpdate("DELETE FROM sync_state WHERE k LIKE '" + ROUTE + "%'");
                }
                String fresh = Secrets.newToken();
                SyncSchema.putState(c, INCARNATION, fresh);
                c.commit();
                incarnation = fresh;
            } catch (SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        } finally {
            epoch.writeLock().unlock();
        }
        fetchers.values().forEach(Fetcher::cut); // a response under the old incarnation is of no use
        lastError = cause.getMessage();
        reregister = true;
        nextRegistration = Instant.EPOCH;
        nextPush = Instant.EPOCH;
    }

    private Backlog backlog(Connection c, Registration.Response r) throws SQLException {
        Backlog total = Backlog.NONE;
        Instant now = clock.instant();
        for (ChannelSpec ch : upstream(r)) {
            OutboxStore.Backlog b = outbox.backlog(c, r.hub(), ch.name());
            long age = b.oldestCaptured() == null ? 0 : Math.max(0, Duration.between(b.oldestCaptured(), now).toMillis());
            total = total.plus(new Backlog(b.rows(), b.batches(), age));
        }
        return total;
    }

    /** The backlog made of these batches, when they are every batch not yet acknowledged. */
    private Backlog backlogOf(java.util.Collection<List<SealedBatch>> unacknowledged) {
        Instant now = clock.instant();
        Backlog total = Backlog.NONE;
        for (List<SealedBatch> batches : unacknowledged) {
            long rows = 0;
            Instant oldest = null;
            for (SealedBatch b : batches) {
                rows += b.rowCount();
                if (b.firstCaptured() != null && (oldest == null || b.firstCaptured().isBefore(oldest))) {
                    oldest = b.firstCaptured();
                }
            }
            long age = oldest == null ? 0 : Math.max(0, Duration.between(oldest, now).toMillis());
            total = total.plus(new Backlog(rows, batches.size(), age));
        }
        return total;
    }

    /** Sends unacknowledged batches to the hub; returns true when more are waiting. */
    private boolean push(Registration.Response r) throws IOException, SQLException {
        boolean full = false;
        String under = incarnation; // the acknowledgements in the answer count batches of this numbering
        HttpURLConnection conn = (HttpURLConnection) URI.create(cfg.hubUrl() + "/v1/batches").toURL().openConnection();
        try (Connection c = db.connection()) {
            // What to send, read first: when it is every batch not yet acknowledged (the common case in real time), it is
            // also the backlog the header reports, with no statement more.
            Map<String, List<SealedBatch>> sending = new java.util.LinkedHashMap<>();
            int room = r.maxBatches();
            boolean everything = true;
            Instant now = clock.instant();
            for (ChannelSpec ch : upstream(r)) {
                if (room <= 0) {
                    everything = false;
                    break;
                }
                Held h = held.get(ch.name());
                if (h != null && now.isBefore(h.till())) {
                    everything = false; // its batches wait for a file at the hub: they do not take the others' room
                    continue;
                }
                List<SealedBatch> batches = outbox.unacknowledged(c, r.hub(), ch.name(), room);
                everything &= batches.size() < room;
                room -= batches.size();
                sending.put(ch.name(), batches);
            }
            full = room <= 0;
            Backlog backlog = everything ? backlogOf(sending.values()) : backlog(c, r);
            conn.setConnectTimeout(5000);
            conn.setReadTimeout((int) Math.min(Integer.MAX_VALUE, cfg.readTimeout().toMillis()));
            conn.setDoOutput(true);
            conn.setRequestMethod("POST");
            conn.setChunkedStreamingMode(1 << 16);
            conn.setRequestProperty("Content-Type", WireFormat.CONTENT_TYPE);
            conn.setRequestProperty("Content-Encoding", WireFormat.CONTENT_ENCODING);
            conn.setRequestProperty("Authorization", "Bearer " + r.secret());
            conn.setRequestProperty(Headers.NODE, cfg.nodeId());
            conn.setRequestProperty(Headers.BACKLOG, backlog.header());
            try (OutputStream out = conn.getOutputStream(); WireWriter w = new WireWriter(out)) {
                try {
                    for (List<SealedBatch> batches : sending.values()) {
                        for (SealedBatch b : batches) {
                            writeBatch(c, w, b, r.hub());
                        }
                    }
                } catch (SQLException | IOException | RuntimeException e) {
                    w.abort(); // the hub sees the stream cut, not a batch that ends early
                    throw e;
                }
            }
            int code = conn.getResponseCode();
            Map<String, Object> body = readJson(code == 200 ? conn.getInputStream() : conn.getErrorStream());
            recordAcks(c, r, body.get("acks"), under);
            if (body.get("held") instanceof Map<?, ?> waiting) {
                // A batch the hub holds until a file its rows reference is there: sent again after the interval, and
                // meanwhile the other channels have the pushes to themselves.
                Instant till = clock.instant().plusMillis(Math.max(1000, r.intervalMillis()));
                for (Map.Entry<?, ?> e : waiting.entrySet()) {
                    String why = String.valueOf(e.getValue());
                    Held before = held.put(String.valueOf(e.getKey()), new Held(till, why));
                    if (before == null || !before.why().equals(why)) {
                        LOG.info("site {}: {}", cfg.nodeId(), why);
                    }
                }
            }
            if (code == 401) {
                reregister = true;
                throw new IOException("hub refused our credentials: " + body.get("error") + " (registering again)");
            }
            if (code == 409 && body.get("expected") instanceof Number expected && body.get("channel") instanceof String channel) {
                hubLostBatches(c, r, channel, expected.longValue());
            }
            if (code != 200) {
                throw new IOException("hub answered " + code + ": " + body.get("error"));
            }
            Object config = body.get("config");
            if (config != null && !config.equals(r.configHash())) {
                LOG.info("site {}: hub configuration changed, registering again", cfg.nodeId());
                reregister = true;
            }
            lastContact = clock.instant();
            lastError = null;
            return full;
        } finally {
            conn.disconnect();
        }
    }

    // ---- fetch: hub-to-sites channels ----------------------------------------------------------------

    /**
     * The longest wait between two attempts to reach the hub: short enough that a site back from a long outage (or
     * whose hub restarted) goes on within seconds, long enough, with the jitter, to spread thousands of sites.
     */
    static final Duration RETRY_CAP = Duration.ofSeconds(10);

    /** How long a real-time fetch asks the hub to wait for a batch (a long poll). */
    static final long LONG_POLL_MILLIS = 25_000;

    /**
     * Fetches one hub-to-sites or two-way channel, on a thread of its own, for as long as the registration routes it here:
     * in real time one long poll after another (the hub answers as soon as it seals a batch), else whenever the channel's
     * schedule is due, until nothing more is waiting. Failures wait an exponential back-off with jitter, up to RETRY_CAP: a
     * batch or reload this site cannot apply is not fetched (and, for a reload, read whole at the hub) again at once.
     */
    private final class Fetcher implements Runnable {
        private final String channel;
        private final Backoff backoff;
        private volatile Thread thread;
        private volatile boolean now;
        /** The exchange in progress, cut when the site stops (a long poll would otherwise hold the stop for its wait). */
        private volatile HttpURLConnection exchange;

        Fetcher(String channel) {
            this.channel = channel;
            this.backoff = new Backoff(Duration.ofMillis(Math.max(100, Math.min(1000, cfg.captureInterval().toMillis()))),
                    RETRY_CAP, new java.util.Random());
        }

        /** Cuts the exchange in progress (at stop). */
        void cut() {
            HttpURLConnection conn = exchange;
            if (conn != null) {
                conn.disconnect();
            }
        }

        /** Fetches at once, schedule or not (syncNow). */
        void wakeNow() {
            now = true;
            Thread t = thread;
            if (t != null) {
                java.util.concurrent.locks.LockSupport.unpark(t);
            }
        }

        @Override
        public void run() {
            thread = Thread.currentThread();
            try {
                loop();
            } catch (RuntimeException | Error e) {
                LOG.error("site {}: fetching channel {} stopped ({}); the next tick starts it again", cfg.nodeId(), channel, e.toString());
            } finally {
                fetchers.remove(channel, this);
            }
        }

        private void loop() {
            Instant due = null;
            String dueFor = null;
            while (!closed) {
                Registration.Response r = registration;
                ChannelSpec ch = r == null ? null
                        : downstream(r).stream().filter(c -> c.name().equals(channel)).findFirst().orElse(null);
                if (ch == null) {
                    return; // no longer routed here: the tick starts a fetcher again if it comes back
                }
                Duration interval = Duration.ofMillis(Math.max(10, r.intervalMillis()));
                if (reregister || !incarnation.equals(registeredIncarnation)) {
                    pause(interval);
                    continue;
                }
                Schedule s = Schedule.ofChannel(ch);
                if (!s.realtime()) {
                    Instant t = clock.instant();
                    if (due == null || !java.util.Objects.equals(dueFor, ch.schedule())) {
                        due = s.first(t, java.time.ZoneId.systemDefault());
                        dueFor = ch.schedule();
                    }
                    if (now) {
                        due = t;
                    }
                    if (t.isBefore(due)) {
                        pause(Duration.between(t, due).compareTo(Duration.ofSeconds(1)) < 0 ? Duration.between(t, due) : Duration.ofSeconds(1));
                        continue;
                    }
                }
                now = false;
                Fetched got;
                long started = System.nanoTime();
                try {
                    if (ch.direction() == ChannelSpec.Direction.TWO_WAY && !everyRowCaptured(r, ch)) {
                        pause(interval);
                        continue;
                    }
                    got = fetch(r, ch, s.realtime() ? LONG_POLL_MILLIS : 0, conn -> exchange = conn);
                    backoff.reset();
                    fetchErrors.remove(ch.name());
                } catch (IOException | SQLException | RuntimeException e) {
                    if (closed) {
                        return; // the stop cut the exchange
                    }
                    String msg = "channel " + ch.name() + ": " + Responses.describe(e, "hub at " + cfg.hubUrl());
                    waitingFor = e instanceof WaitingForFileException w ? w : null;
                    if (waitingFor != null) {
                        // Not a failure: the batch waits for a file, and the file's arrival ends the pause (wakeFor).
                        if (!msg.equals(fetchErrors.get(ch.name()))) {
                            LOG.info("site {}: {}", cfg.nodeId(), msg);
                        }
                    } else if (e instanceof io.syncline.api.RetriableSyncException && backoff.failures() == 0) {
                        // A race the next attempt settles (a local write during a two-way apply): worth a warning
                        // only if it happens again at once.
                        LOG.info("site {}: {}", cfg.nodeId(), msg);
                    } else if (!java.util.Objects.equals(msg, lastError)) {
                        LOG.warn("site {}: {}", cfg.nodeId(), msg);
                    }
                    lastError = msg;
                    fetchErrors.put(ch.name(), msg);
                    pause(backoff.next());
                    continue;
                }
                if (!got.more() && !s.realtime()) {
                    due = s.next(clock.instant(), java.time.ZoneId.systemDefault());
                } else if (!got.more() && got.batches() == 0
                        && System.nanoTime() - started < TimeUnit.MILLISECONDS.toNanos(LONG_POLL_MILLIS / 2)) {
                    pause(interval); // the hub answered early with nothing (stopping, or it does not hold polls): no busy loop
                }
            }
        }

        /** Why the last fetch's batch waits for a file, or null. */
        private volatile WaitingForFileException waitingFor;

        /** Ends the pause of a fetch whose batch waits for a file that is here now. */
        void wakeIfArrived() {
            WaitingForFileException w = waitingFor;
            Registration.Response r = registration;
            if (w != null && r != null) {
                java.nio.file.Path at = locateFile(r.hub(), w.fileChannel(), w.path());
                if (at == null || Files.isRegularFile(at)) {
                    wake();
                }
            }
        }

        /** Ends a pause at once (stop). */
        void wake() {
            Thread t = thread;
            if (t != null) {
                java.util.concurrent.locks.LockSupport.unpark(t);
            }
        }

        private void pause(Duration d) {
            if (!now && !closed) {
                java.util.concurrent.locks.LockSupport.parkNanos(d.toNanos());
            }
        }
    }

    /** What one fetch brought: batches applied (a reload counts as one), and whether more are waiting. */
    private record Fetched(int batches, boolean more) {
    }

    private void checkIncarnation(String under, ChannelSpec ch) throws IOException {
        if (!under.equals(incarnation) || reregister) {
            throw new IOException("site " + cfg.nodeId() + " started over or registers again: the rest of this fetch of "
                    + ch.name() + " is fetched again under the new registration");
        }
    }

    /**
     * The batches of one fetch of a one-way channel, applied in one transaction (a group commit, engine/apply
     * BatchApplier.Group): committed when the answer ends, before a reload, or once {@link #GROUP_ROWS} rows are in. Under
     * load a fetch brings several batches, and each costs its rows but no transaction of its own, so a site behind the hub
     * catches up instead of falling further behind. Holds the epoch's read lock and one connection while open; a failure
     * rolls back the whole group, which the next fetch asks for again.
     */
    private final class Group implements AutoCloseable {
        private final String tokenKey;
        private Connection c;
        private BatchApplier.Group applying;
        private String token;
        private long stamp;
        int batches;

        Group(String tokenKey) {
            this.tokenKey = tokenKey;
        }

        void apply(String under, BatchHeader h, ChannelSpec local, Iterator<Change> changes, String batchToken)
                throws SQLException, IOException {
            if (c == null) {
                epoch.readLock().lock();
                try {
                    c = db.connection();
                } catch (SQLException | RuntimeException e) {
                    epoch.readLock().unlock();
                    throw e;
                }
                applying = applier.group(c, local);
            }
            checkIncarnation(under, local);
            applying.add(h, changes);
            while (changes.hasNext()) {
                changes.next();
            }
            token = batchToken;
            stamp = Math.max(stamp, h.stamp());
            batches++;
            if (applying.rows() >= GROUP_ROWS) {
                commit();
            }
        }

        void commit() throws SQLException {
            if (c == null) {
                return;
            }
            try {
                long seen = stamp;
                applying.commit(tx -> {
                    SyncSchema.putState(tx, tokenKey, token);
                    rememberStamp(tx, seen);
                });
                stamps.observe(seen);
            } finally {
                close();
            }
        }

        @Override
        public void close() throws SQLException {
            if (c == null) {
                return;
            }
            try (Connection open = c) {
                c = null;
                stamp = 0;
                if (applying != null) {
                    applying.close(); // rolls back what was not committed
                }
                applying = null;
            } finally {
                epoch.readLock().unlock();
            }
        }
    }

    /** Keeps the highest stamp of the hub's batches applied here, in the batch's transaction (two-way channels only care). */
    private void rememberStamp(Connection tx, long stamp) throws SQLException {
        if (stamp > stamps.current()) {
            SyncSchema.putState(tx, SEEN_STAMP, Long.toString(stamps.ceiling() < stamp ? stamps.ceiling() : stamp));
        }
    }

    /**
     * A copy of a two-way channel from the hub (a reload) replaces this site's tables but for the rows this site changed
     * and the hub has not taken in yet (engine/apply/Guards). So the hub's batches are fetched only while every row here
     * is captured: the capture of the current registration is installed, and the initial load of every table of the
     * channel has finished.
     */
    private boolean everyRowCaptured(Registration.Response r, ChannelSpec ch) throws SQLException {
        if (!r.configHash().equals(captureInstalledFor)) {
            return false;
        }
        try (Connection c = db.connection()) {
            try {
                for (io.syncline.api.TableSpec t : ch.tables()) {
                    String state = SyncSchema.getState(c, InitialLoadState.key(ch.name(), t.name().toLowerCase(java.util.Locale.ROOT)));
                    if (!InitialLoadState.DONE.equals(state)) {
                        return false;
                    }
                }
                return true;
            } finally {
                c.commit();
            }
        }
    }

    /**
     * One fetch (docs/protocol.md, "Fetch"): sends this site's ledger of the channel as the acknowledgement, with the
     * route hash of its last reload, and applies what comes back: a reload, then batches, each exactly once.
     */
    private Fetched fetch(Registration.Response r, ChannelSpec ch, long waitMillis, java.util.function.Consumer<HttpURLConnection> opened)
            throws IOException, SQLException {
        String under = incarnation;
        String routeKey = ROUTE + ch.name();
        String tokenKey = TOKEN + ch.name();
        long ack;
        String route;
        String token;
        try (Connection c = db.connection()) {
            ack = BatchApplier.lastApplied(c, r.hub(), ch.name());
            route = SyncSchema.getState(c, routeKey);
            token = SyncSchema.getState(c, tokenKey);
            c.commit();
        }
        URI uri = URI.create(cfg.hubUrl() + "/v1/fetch?channel=" + URLEncoder.encode(ch.name(), StandardCharsets.UTF_8) + "&ack=" + ack
                + "&max=" + r.maxBatches() + (waitMillis > 0 ? "&wait=" + waitMillis : "") + (route == null ? "" : "&route=" + URLEncoder.encode(route, StandardCharsets.UTF_8))
                + (token == null || token.isEmpty() ? "" : "&token=" + URLEncoder.encode(token, StandardCharsets.UTF_8)));
        HttpURLConnection conn = (HttpURLConnection) uri.toURL().openConnection();
        opened.accept(conn);
        try {
            conn.setConnectTimeout(5000);
            conn.setReadTimeout((int) Math.min(Integer.MAX_VALUE, cfg.readTimeout().toMillis() + waitMillis));
            conn.setRequestProperty("Authorization", "Bearer " + r.secret());
            conn.setRequestProperty(Headers.NODE, cfg.nodeId());
            int code = conn.getResponseCode();
            String config = conn.getHeaderField(Headers.CONFIG);
            if (config != null && !config.equals(r.configHash())) {
                reregister = true; // also on an error: "not routed to this site" means our channels are out of date
            }
            if (code == 401) {
                reregister = true;
                throw new IOException("hub refused our credentials: " + Responses.errorBody(conn) + " (registering again)");
            }
            if (code != 200) {
                throw new IOException("hub answered " + code + ": " + Responses.errorBody(conn));
            }
            if (reregister) {
                return new Fetched(0, false); // a reload under an outdated registration could empty a table no longer in the channel
            }
            String newRoute = conn.getHeaderField(HubDistributor.routeHeader());
            ChannelSpec local = ch.fromHub();
            int batches = 0;
            boolean reloaded = false;
            Group group = ch.direction() == ChannelSpec.Direction.TWO_WAY || singly.contains(ch.name()) ? null
                    : new Group(tokenKey);
            try (InputStream in = conn.getInputStream(); WireReader reader = new WireReader(in)) {
                BatchHeader h;
                while ((h = reader.nextBatch()) != null) {
                    if (!h.id().source().equals(r.hub()) || !h.id().channel().equals(ch.name())) {
                        throw new BadBatchException(SyncException.Stage.TRANSPORT, "fetch of channel '" + ch.name() + "' from hub "
                                + r.hub() + " returned batch " + h.id());
                    }
                    Iterator<Change> changes = reader.changes();
                    String batchToken = reader.token() == null ? "" : reader.token(); // "" forgets an older batch's token
                    if (group != null && !reader.isReload()) {
                        group.apply(under, h, local, changes, batchToken);
                        batches++;
                        continue;
                    }
                    if (group != null) {
                        group.commit(); // a reload has a transaction of its own
                    }
                    // A two-way batch is applied after a seal in its own transaction, which no other seal may interleave.
                    ReentrantLock sealLock = ch.direction() == ChannelSpec.Direction.TWO_WAY
                            ? sealLocks.computeIfAbsent(ch.name(), k -> new ReentrantLock()) : null;
                    if (sealLock != null) {
                        sealLock.lock();
                    }
                    epoch.readLock().lock();
                    try (Connection c = db.connection()) {
                        checkIncarnation(under, ch);
                        if (reader.isReload()) {
                            if (newRoute == null) {
                                throw new BadBatchException(SyncException.Stage.TRANSPORT, "reload " + h.id() + " came without a "
                                        + HubDistributor.routeHeader() + " header");
                            }
                            long stamp = h.stamp();
                            BatchApplier.BeforeCommit record = tx -> {
                                SyncSchema.putState(tx, routeKey, newRoute);
                                SyncSchema.putState(tx, tokenKey, batchToken);
                                rememberStamp(tx, stamp);
                            };
                            // In a two-way channel, the rows this site changed and the hub has not taken in yet stay (Guards).
                            applier.reload(c, h, local, changes, record);
                            reloaded = true;
                            LOG.info("site {}: reloaded channel {} from hub {} as of batch {}", cfg.nodeId(), ch.name(), r.hub(),
                                    h.id().sequence());
                        } else {
                            long stamp = h.stamp();
                            applier.apply(c, h, local, changes, tx -> {
                                SyncSchema.putState(tx, tokenKey, batchToken);
                                rememberStamp(tx, stamp);
                            });
                        }
                        stamps.observe(h.stamp());
                    } finally {
                        epoch.readLock().unlock();
                        if (sealLock != null) {
                            sealLock.unlock();
                        }
                    }
                    while (changes.hasNext()) {
                        changes.next();
                    }
                    batches++;
                }
                if (group != null) {
                    group.commit();
                }
            } catch (IOException | SQLException | RuntimeException e) {
                if (group != null && group.batches > 0) {
                    // The group's batches went with the failure: the next fetch applies them one by one, so those before a
                    // bad batch, or before the point where a poor link keeps cutting the answer, still land.
                    singly.add(ch.name());
                }
                throw e;
            } finally {
                if (group != null) {
                    group.close();
                }
            }
            if (batches > 0) {
                singly.remove(ch.name());
            }
            lastContact = clock.instant();
            return new Fetched(batches, reloaded || batches >= r.maxBatches());
        } finally {
            conn.disconnect();
        }
    }

    private void writeBatch(Connection c, WireWriter w, SealedBatch b, String destination) throws SQLException, IOException {
        w.beginBatch(new BatchHeader(new BatchId(cfg.nodeId(), b.channel(), b.sequence()), b.sealedAt(), b.firstCaptured(), b.stamp()));
        int[] n = {0};
        outbox.stream(c, b, destination, (op, table, oldRow, newRow, captured, origin) -> {
            w.change(op, table, oldRow == null ? null : oldRow::writeTo, newRow == null ? null : newRow::writeTo);
            if (++n[0] == 100) {
                w.flush();
                CrashPoints.hit("send-mid-batch");
            }
        });
        w.endBatch();
    }

    private void recordAcks(Connection c, Registration.Response r, Object acks, String under) throws SQLException {
        if (!(acks instanceof Map<?, ?> m)) {
            return;
        }
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (e.getValue() instanceof Number n && upstream(r).stream().anyMatch(ch -> ch.name().equals(e.getKey()))) {
                acknowledge(c, r, e.getKey().toString(), n.longValue(), under);
            }
        }
    }

    /**
     * Records the hub's acknowledgement of {@code channel} up to {@code upTo}, read for the numbering of incarnation
     * {@code under}: none if the site started over since (it would purge or refuse batches of the new numbering).
     */
    private void acknowledge(Connection c, Registration.Response r, String channel, long upTo, String under) throws SQLException {
        DivergedException diverged;
        epoch.readLock().lock();
        try {
            if (!incarnation.equals(under)) {
                return;
            }
            diverged = recordAck(c, r, channel, upTo);
        } finally {
            epoch.readLock().unlock();
        }
        if (diverged != null) {
            startOver(diverged); // outside the read lock, which the start-over's write lock waits for
        }
    }

    /** Records the hub's acknowledgement (the caller holds the epoch read lock); the divergence it shows, or null. */
    private DivergedException recordAck(Connection c, Registration.Response r, String channel, long upTo) throws SQLException {
        try {
            int purged = outbox.acknowledge(c, r.hub(), channel, upTo);
            if (purged > 0) {
                LOG.debug("site {}: hub acknowledged {} up to batch {}; purged {} outbox rows", cfg.nodeId(), channel, upTo, purged);
            }
            return null;
        } catch (DivergedException e) {
            return e;
        }
    }

    private static Map<String, Object> readJson(InputStream in) throws IOException {
        if (in == null) {
            return Map.of();
        }
        try (in) {
            byte[] bytes = in.readNBytes(1 << 20);
            if (bytes.length == 0) {
                return Map.of();
            }
            try {
                return WireFormat.MAPPER.readValue(bytes, new com.fasterxml.jackson.core.type.TypeReference<Map<String, Object>>() {
                });
            } catch (IOException e) {
                return Map.of("error", new String(bytes, StandardCharsets.UTF_8));
            }
        }
    }


    // ---- pull listener ---------------------------------------------------------------------------

    /** A pull whose ack was below what the hub had acknowledged, and the token that confirms it (see confirmLowAck). */
    private record LowAck(long acknowledged, String token) {
    }

    /**
     * Returns when a pull whose {@code ack} is below the {@code acknowledged} one recorded here is confirmed: the hub
     * sent it with the token of this site's previous answer. Otherwise answers 409 with a token. A lower ack means the
     * hub lost batches (its database was restored) only if the hub still says so after it read that answer: the same
     * ack can come from a request the network held up while later pulls went through, and starting over on it would
     * load every table again for nothing. The token is good while the recorded acknowledgement stays where it is.
     */
    private void confirmLowAck(String channel, long ack, long acknowledged, String confirm) {
        LowAck known = lowAcks.get(channel);
        if (known != null && known.acknowledged() == acknowledged && known.token().equals(confirm)) {
            lowAcks.remove(channel, known);
            return;
        }
        LowAck asked = lowAcks.compute(channel, (k, v) -> v != null && v.acknowledged() == acknowledged
                ? v : new LowAck(acknowledged, Secrets.newToken()));
        LOG.warn("site {}: a pull of channel '{}' acknowledges batch {}, below the {} the hub acknowledged before: a delayed "
                + "request, or the hub's database is older than what it acknowledged; asking the hub to confirm",
                cfg.nodeId(), channel, ack, acknowledged);
        throw new HttpError(409, "the hub's ack " + ack + " of channel '" + channel + "' is below the " + acknowledged
                + " it acknowledged before; pull again with this confirm token if the hub's database really is older "
                + "(site " + cfg.nodeId() + " then starts over)",
                Map.of("channel", channel, "expected", ack + 1, "confirm", asked.token()));
    }

    /**
     * Records a pull's {@code ack} for the numbering of incarnation {@code before}, or starts over when the hub
     * confirms an ack below what it acknowledged. Under the epoch read lock, taken before any connection: a start-over
     * queued for the write lock needs a connection of its own once it has the lock, and waiters must not hold them all.
     */
    private void acknowledgePulled(Registration.Response r, String channel, long ack, String before, String confirm)
            throws SQLException {
        DivergedException diverged = null;
        epoch.readLock().lock();
        try (Connection c = db.connection()) {
            if (!before.equals(incarnation)) {
                return; // started over since the pull came in: the caller answers 409
            }
            long acknowledged = outbox.acknowledged(c, r.hub(), channel);
            c.commit();
            if (ack < acknowledged) {
                confirmLowAck(channel, ack, acknowledged, confirm);
                diverged = lostBatches(r, channel, ack + 1, acknowledged);
            } else if (ack > 0) {
                diverged = recordAck(c, r, channel, ack);
            }
        } finally {
            epoch.readLock().unlock();
        }
        if (diverged != null) {
            startOver(diverged); // outside the read lock, which the start-over's write lock waits for
        }
    }

    private void handlePull(HttpExchange ex) throws IOException {
        Registration.Response r = registration;
        if (r == null) {
            throw new HttpError(503, "site " + cfg.nodeId() + " is not registered yet");
        }
        if (!incarnation.equals(registeredIncarnation)) {
            throw new HttpError(503, "site " + cfg.nodeId() + " is registering with the hub; try again shortly");
        }
        String token = Secrets.bearer(ex.getRequestHeaders().getFirst("Authorization"));
        if (!Secrets.matches(token, pullToken)) {
            LOG.warn("site {}: pull from {} refused: wrong credentials", cfg.nodeId(), ex.getRemoteAddress());
            throw new HttpError(401, "wrong credentials for pulling from site '" + cfg.nodeId() + "'");
        }
        String before = incarnation;
        String addressed = ex.getRequestHeaders().getFirst(Headers.INCARNATION);
        if (addressed != null && !addressed.equals(before)) {
            // Sent before this site started over (held up in the network meanwhile): its ack counts batches of the
            // numbering that ended, and acting on it would make the site start over once more.
            throw new HttpError(409, "pull addressed to an earlier database of site " + cfg.nodeId() + " (incarnation "
                    + addressed + "): a request delayed since the site started over; ignored", Map.of("stale", true));
        }
        Map<String, String> q = HttpEndpoint.query(ex);
        String channel = q.get("channel");
        if (channel == null || upstream(r).stream().noneMatch(ch -> ch.name().equals(channel))) {
            throw new HttpError(400, "unknown or missing channel '" + channel + "'");
        }
        Window window = Window.of(q, r.maxBatches());
        long ack = window.ack();
        int max = window.max();
        pullStarted = System.nanoTime(); // before its seal: what is sealed later needs a poke of its own
        String config = ex.getRequestHeaders().getFirst(Headers.CONFIG);
        if (config != null && !config.equals(r.configHash())) {
            reregister = true;
        }
        try {
            acknowledgePulled(r, channel, ack, before, q.get("confirm"));
        } catch (SQLException e) {
            throw new HttpError(503, "site " + cfg.nodeId() + ": database error: " + e.getMessage());
        }
        if (!before.equals(incarnation)) {
            throw new HttpError(409, "site " + cfg.nodeId() + " started over (its database and the hub's no longer agree "
                    + "on what was delivered); it registers again under a new incarnation");
        }
        try {
            seal(channel); // before this pull's connection: a seal may wait for a start-over, which needs one
        } catch (SQLException e) {
            throw new HttpError(503, "site " + cfg.nodeId() + ": database error: " + e.getMessage());
        }
        try (Connection c = db.connection()) {
            List<SealedBatch> batches = outbox.unacknowledged(c, r.hub(), channel, max);
            ex.getResponseHeaders().set(Headers.BACKLOG, backlog(c, r).header());
            ex.getResponseHeaders().set("Content-Type", WireFormat.CONTENT_TYPE);
            ex.sendResponseHeaders(200, 0);
            try (OutputStream out = ex.getResponseBody(); WireWriter w = new WireWriter(out)) {
                try {
                    for (SealedBatch b : batches) {
                        writeBatch(c, w, b, r.hub());
                    }
                } catch (SQLException | IOException | RuntimeException e) {
                    // The answer has begun: the hub must see it cut, not a batch that ends early and a proper end.
                    w.abort();
                    LOG.warn("site {}: pull of channel '{}' by the hub failed part way: {}", cfg.nodeId(), channel, e.toString());
                    throw e;
                }
            }
            lastContact = clock.instant();
        } catch (SQLException e) {
            throw new HttpError(503, "site " + cfg.nodeId() + ": database error: " + e.getMessage());
        }
    }

    // ---- control ---------------------------------------------------------------------------------

    @Override
    public String nodeId() {
        return cfg.nodeId();
    }

    @Override
    public NodeRole role() {
        return NodeRole.SITE;
    }

    @Override
    public NodeStatus status() {
        Registration.Response r = registration;
        Map<String, Long> backlog = new LinkedHashMap<>();
        if (r != null) {
            try (Connection c = db.connection()) {
                for (ChannelSpec ch : upstream(r)) {
                    backlog.put(ch.name(), outbox.backlog(c, r.hub(), ch.name()).rows());
                }
            } catch (SQLException e) {
                throw new SyncException(SyncException.Stage.BATCH, "cannot read backlog: " + e.getMessage(), e);
            }
        }
        return new NodeStatus(cfg.nodeId(), "site", clock.instant(), List.of(), backlog, 0, 0);
    }

    /**
     * True when every change committed so far has been sealed, sent and acknowledged by the hub, and no initial
     * load is pending. Seals first, so a change committed before the call is never missed.
     */
    public boolean isDrained() {
        Registration.Response r = registration;
        if (r == null) {
            return false;
        }
        try {
            sealAll(r);
            try (Connection c = db.connection()) {
                for (ChannelSpec ch : upstream(r)) {
                    if (outbox.backlog(c, r.hub(), ch.name()).batches() > 0) {
                        return false;
                    }
                    for (TableSpec t : ch.tables()) {
                        String v = SyncSchema.getState(c, InitialLoadState.key(ch.name(), t.name().toLowerCase(Locale.ROOT)));
                        if (v != null && !v.equals(InitialLoadState.DONE)) {
                            return false;
                        }
                    }
                }
                c.commit();
                return true;
            }
        } catch (SQLException e) {
            return false;
        }
    }

    /** The URL of this site's pull listener. */
    public String listenerUrl() {
        return listenUrl();
    }

    @Override
    public void syncNow() {
        ticker.execute(() -> {
            Registration.Response r = registration;
            if (r != null) {
                for (ChannelSpec ch : upstream(r)) { // every schedule at once
                    if (ch.schedule() != null) {
                        dueAt.put(Schedule.dueKey(ch), Instant.EPOCH);
                    }
                }
            }
            nextPush = Instant.EPOCH;
            tick();
        });
        fetchers.values().forEach(Fetcher::wakeNow);
    }

    @Override
    public void close() {
        closed = true;
        if (watch != null) {
            watch.close();
        }
        files.close();
        // Not shutdownNow: an interrupt during a JDBC call closes an embedded H2 database's file channel.
        fetchThreads.shutdown();
        fetchers.values().forEach(f -> {
            f.cut();
            f.wake();
        });
        ticker.shutdown();
        try {
            if (!ticker.awaitTermination(10, TimeUnit.SECONDS)) {
                ticker.shutdownNow();
            }
        } catch (InterruptedException e) {
            ticker.shutdownNow();
            Thread.currentThread().interrupt();
        }
        HttpEndpoint ep = listener;
        if (ep != null) {
            ep.close();
        }
        try {
            if (!fetchThreads.awaitTermination(10, TimeUnit.SECONDS)) {
                LOG.warn("site {}: a fetch did not end within 10 s of stopping", cfg.nodeId());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        db.close();
        LOG.info("site {} stopped", cfg.nodeId());
    }
}
