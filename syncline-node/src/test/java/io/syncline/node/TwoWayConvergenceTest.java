package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.fasterxml.jackson.core.JsonGenerator;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChannelSpec;
import io.syncline.api.ConflictPolicy;
import io.syncline.api.OutOfOrderBatchException;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.apply.Guards;
import io.syncline.engine.capture.CaptureInstaller;
import io.syncline.engine.codec.CanonicalWriter;
import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.ConflictLog;
import io.syncline.engine.conflict.HybridClock;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.outbox.OutboxRowSink;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.outbox.SealedBatch;
import io.syncline.engine.schema.SchemaReader;
import io.syncline.engine.schema.TableMeta;
import io.syncline.engine.verify.TableChecksum;
import io.syncline.transport.wire.WireReader;
import io.syncline.transport.wire.WireWriter;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Optional;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Randomized convergence of a two-way channel, driven in-process at engine level (no HTTP, no HubNode or SiteNode):
 * a hub and 2 to 5 sites, each an H2 in-memory database with Syncline's tables and capture, random inserts, updates
 * (some to NULL) and deletes on a few overlapping keys at every node, the hub included, one to three rows per transaction,
 * and random sync steps in random order: seals, pushes of all or only the first unacknowledged batch, lost
 * acknowledgements (the next push re-sends), re-sent batches (duplicates), batches sent ahead of their turn (refused),
 * fetches of only some of the hub's batches (delay), copies of the channel (reloads) at any moment, whole sync rounds, and
 * under policy manual an operator settling open conflicts. In a quarter of the cases the table also has a unique column
 * written with three values, so changes collide on it (UNIQUE_TAKEN at the hub, local rows giving way at the sites). The hub never sends a site its own changes: a site's share
 * leaves them out and carries the marks of its batches ({@link HubDistributor#passes}). The policy is chosen per case; a third of the cases come to rest half-way and then go on. Batches travel
 * through the real wire format, as SiteNode and HubNode send them. Then the system is brought to rest, and:
 * <ul>
 *   <li>every node holds the hub's rows ({@link TableChecksum});</li>
 *   <li>nothing loops: a further round seals nothing anywhere;</li>
 *   <li>no write disappears without a trace: each value written (a tag such as {@code s2-17} in a column) is in the final
 *       rows, or was read by a later write that overwrote that column or deleted the row, or appears in the site or hub
 *       row of a recorded conflict;</li>
 *   <li>every conflict row names its kind, the channel's policy, a winner and a status that fits the policy.</li>
 * </ul>
 * Each case is a seed; the clocks are virtual (advanced by the seed), so a seed replays a case exactly, the conflict
 * decisions of last-writer-wins included. Run one case with {@code -Dsyncline.seed=<n>}; {@code -Dsyncline.cases} and
 * {@code -Dsyncline.firstSeed} choose how many cases run and from which seed (500 from 1 by default),
 * {@code -Dsyncline.minSteps}/{@code maxSteps} the number of random steps (10 to 40), and {@code -Dsyncline.verbose=true}
 * prints every case's steps. A failing case reports {@code seed=<n>}, its steps, every node's rows and the conflict table.
 */
class TwoWayConvergenceTest {
    private static final String CHANNEL = "stock";
    private static final String TABLE = "item";
    /** The hub's node id: not "hub", so that a site-priority list can name the hub either way. */
    private static final String HUB = "hq";
    private static final H2Dialect DIALECT = new H2Dialect();
    private static final int MAX_QUIET_ROUNDS = 50;
    private static final int MIN_STEPS = Integer.getInteger("syncline.minSteps", 10);
    private static final int MAX_STEPS = Integer.getInteger("syncline.maxSteps", 40);
    /** With -Dsyncline.verbose=true every case prints its steps, passing or not. */
    private static final boolean VERBOSE = Boolean.getBoolean("syncline.verbose");
    private static final AtomicLong DATABASES = new AtomicLong();
    /** Over all cases run: conflicts by kind, and the most rounds a case needed to come to rest. */
    private static final Map<String, AtomicInteger> CONFLICTS = new ConcurrentSkipListMap<>();
    private static final AtomicInteger CASES = new AtomicInteger();
    private static final AtomicInteger MOST_ROUNDS = new AtomicInteger();

    @TestFactory
    Stream<DynamicTest> randomCasesConverge() {
        String only = System.getProperty("syncline.seed");
        LongStream seeds;
        if (only != null && !only.isBlank()) {
            seeds = LongStream.of(Long.parseLong(only.trim()));
        } else {
            long first = Long.getLong("syncline.firstSeed", 1);
            seeds = LongStream.range(first, first + Integer.getInteger("syncline.cases", 500));
        }
        return seeds.mapToObj(seed -> dynamicTest("seed=" + seed, () -> new Case(seed).run()));
    }

    @AfterAll
    static void summary() {
        System.out.println("TwoWayConvergenceTest: " + CASES.get() + " case(s) converged; conflicts by kind " + CONFLICTS
                + "; at most " + MOST_ROUNDS.get() + " round(s) to come to rest");
    }

    /** Virtual wall-clock time shared by the nodes of one case; each node's clock is off by its own offset. */
    private static final class VirtualTime {
        long millis = 1_700_000_000_000L;

        void advance(long by) {
            millis += by;
        }
    }

    private static final class NodeClock extends Clock {
        private final VirtualTime time;
        private final long offset;

        NodeClock(VirtualTime time, long offset) {
            this.time = time;
            this.offset = offset;
        }

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            return this;
        }

        @Override
        public long millis() {
            return time.millis + offset;
        }

        @Override
        public Instant instant() {
            return Instant.ofEpochMilli(millis());
        }
    }

    /** One node: its own database (one connection), clocks, outbox and applier, as HubNode and SiteNode hold them. */
    private static final class Node implements AutoCloseable {
        final String id;
        final String url;
        final Connection c;
        final NodeClock clock;
        final HybridClock stamps;
        final OutboxStore outbox;
        final BatchApplier applier;
        /** The hub's two-way context (null at a site); it shares the hub's hybrid logical clock with its outbox. */
        final TwoWay twoWay;
        /** At a site: each batch as it was first sent, to send again after it was acknowledged and purged. */
        final NavigableMap<Long, Sent> sent = new TreeMap<>();

        Node(long seed, String id, VirtualTime time, long offset, boolean hub, boolean unique) throws SQLException {
            this.id = id;
            // No DB_CLOSE_DELAY: the database goes with its one connection.
            this.url = "jdbc:h2:mem:twoway_" + seed + "_" + DATABASES.incrementAndGet() + "_" + id;
            this.c = DriverManager.getConnection(url);
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE " + TABLE + " (id INT PRIMARY KEY, a VARCHAR(40), b VARCHAR(40)"
                        + (unique ? ", u VARCHAR(8) UNIQUE" : "") + ")");
            }
            c.commit();
            this.clock = new NodeClock(time, offset);
            this.stamps = new HybridClock(clock);
            if (hub) {
                this.outbox = new OutboxStore(DIALECT, clock, stamps);
                this.applier = new BatchApplier(DIALECT, clock);
            } else { // as SiteNode: its seals guard the rows of the two-way channel, under which it applies the hub's batches
                Guards guards = new Guards(DIALECT, CHANNEL::equals);
                this.outbox = new OutboxStore(DIALECT, clock, stamps, guards);
                this.applier = new BatchApplier(DIALECT, clock, outbox, guards);
            }
            this.twoWay = hub ? new TwoWay(id, stamps) : null;
        }

        @Override
        public void close() throws SQLException {
            c.close();
        }
    }

    /** A batch's header and changes (op, table, old row, new row as canonical JSON) as first sent. */
    private record Sent(BatchHeader header, List<String[]> changes) {
    }

    /**
     * One write of one row: at {@code node}, {@code key}, read as {@code basedOn} (null: absent) in the writing
     * transaction; {@code values} are the columns it wrote, each with the value it introduced (null: NULL, or a value
     * copied from elsewhere, which has no trace of its own to keep); none for a delete.
     */
    private record Write(int step, String node, int key, Map<String, String> basedOn, Map<String, String> values, boolean delete) {
        /** Whether this write read {@code value} in {@code column} and then overwrote that column or deleted the row. */
        boolean overwrote(String column, String value) {
            return basedOn != null && value.equals(basedOn.get(column)) && (delete || values.containsKey(column));
        }
    }

    private static Map<String, String> values(String a, String b) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("a", a);
        m.put("b", b);
        return m;
    }

    private enum Push { ALL, FIRST, LOSE_ACK, RESEND_APPLIED, AHEAD }

    private enum Fetch { ALL, SOME, RESEND_APPLIED, AHEAD, COPY }

    private static final class Case {
        final long seed;
        final Random rnd;
        final VirtualTime time = new VirtualTime();
        final List<String> log = new ArrayList<>();
        final List<Write> writes = new ArrayList<>();
        final List<Node> sites = new ArrayList<>();
        final List<Node> all = new ArrayList<>();
        Node hub;
        ChannelSpec spec;
        ConflictPolicy policy;
        int keys;
        /** Whether the table has a unique column u besides its key, written with a few values: collisions. */
        boolean unique;

        Case(long seed) {
            this.seed = seed;
            this.rnd = new Random(seed);
        }

        void run() throws Exception {
            try {
                setUp();
                int steps = MIN_STEPS + rnd.nextInt(MAX_STEPS - MIN_STEPS + 1);
                int step = 1;
                for (; step <= steps; step++) {
                    time.advance(rnd.nextInt(40));
                    randomStep(step);
                }
                int rounds = 0;
                if (rnd.nextInt(3) == 0) {
                    // Brought to rest once, then more happens: conflicts of the first part are open (manual) or settled,
                    // and later writes meet the rows they left.
                    log.add("-- quiesce");
                    rounds = quiesce();
                    log.add("-- quiet after " + rounds + " round(s); more steps");
                    for (int more = step + 5 + rnd.nextInt(11); step < more; step++) {
                        time.advance(rnd.nextInt(40));
                        randomStep(step);
                    }
                }
                log.add("-- quiesce");
                rounds = Math.max(rounds, quiesce());
                log.add("-- quiet after " + rounds + " round(s)");
                assertNothingLoops();
                assertConverged();
                assertConflictsAccounted();
                CASES.incrementAndGet();
                if (VERBOSE) {
                    System.out.println(report(null));
                }
                MOST_ROUNDS.accumulateAndGet(rounds, Math::max);
            } catch (Throwable t) {
                throw new AssertionError(report(t), t);
            } finally {
                for (Node n : all) {
                    try {
                        n.close();
                    } catch (SQLException e) {
                        // the in-memory database goes anyway
                    }
                }
            }
        }

        // ---- set-up -----------------------------------------------------------------------------------

        void setUp() throws SQLException {
            int n = 2 + rnd.nextInt(4);
            keys = 2 + rnd.nextInt(5);
            unique = rnd.nextInt(4) == 0;
            List<String> siteIds = new ArrayList<>();
            for (int i = 1; i <= n; i++) {
                siteIds.add("s" + i);
            }
            policy = randomPolicy(siteIds);
            spec = new ChannelSpec(CHANNEL, ChannelSpec.Direction.TWO_WAY, null, List.of(TableSpec.of(TABLE)), policy);
            hub = new Node(seed, HUB, time, 0, true, unique);
            all.add(hub);
            StringBuilder offsets = new StringBuilder();
            for (String id : siteIds) {
                long offset = rnd.nextInt(3) == 0 ? 0 : rnd.nextInt(6001) - 3000; // the sites' clocks disagree
                Node s = new Node(seed, id, time, offset, false, unique);
                sites.add(s);
                all.add(s);
                offsets.append(' ').append(id).append(offset >= 0 ? "+" : "").append(offset).append("ms");
            }
            // Rows every node starts with, written before capture (as after an initial load).
            List<Integer> initial = new ArrayList<>();
            if (rnd.nextBoolean()) {
                for (int k = 1; k <= keys; k++) {
                    if (rnd.nextBoolean()) {
                        initial.add(k);
                        writes.add(new Write(0, "init", k, null, values("init-" + k, "init-" + k), false));
                    }
                }
            }
            for (Node node : all) {
                try (PreparedStatement ps = node.c.prepareStatement("INSERT INTO " + TABLE + " (id, a, b) VALUES (?, ?, ?)")) {
                    for (int k : initial) {
                        ps.setInt(1, k);
                        ps.setString(2, "init-" + k);
                        ps.setString(3, "init-" + k);
                        ps.executeUpdate();
                    }
                }
                node.c.commit();
                new CaptureInstaller(DIALECT, node.clock).install(node.c, List.of(node == hub ? spec.fromHub() : spec));
            }
            log.add("seed=" + seed + ": hub and " + n + " sites (clock offsets" + offsets + "), keys 1.." + keys + ", policy "
                    + policy.kind().label() + (policy.priority().isEmpty() ? "" : " " + policy.priority()) + ", initial rows " + initial);
        }

        ConflictPolicy randomPolicy(List<String> siteIds) {
            return switch (rnd.nextInt(5)) {
                case 0 -> ConflictPolicy.of(ConflictPolicy.Kind.HUB_WINS);
                case 1 -> ConflictPolicy.of(ConflictPolicy.Kind.LAST_WRITER_WINS);
                case 2 -> ConflictPolicy.of(ConflictPolicy.Kind.COLUMN_MERGE);
                case 3 -> ConflictPolicy.of(ConflictPolicy.Kind.MANUAL);
                default -> {
                    List<String> ranked = new ArrayList<>(siteIds);
                    ranked.add(rnd.nextBoolean() ? HUB : "hub"); // the hub by its id or as "hub"
                    Collections.shuffle(ranked, rnd);
                    yield new ConflictPolicy(ConflictPolicy.Kind.SITE_PRIORITY, ranked.subList(0, 1 + rnd.nextInt(ranked.size())), null);
                }
            };
        }

        // ---- random steps ---------------------------------------------------------------------------

        void randomStep(int step) throws Exception {
            int r = rnd.nextInt(100);
            if (r < 45) {
                Node node = rnd.nextInt(sites.size() + 1) == 0 ? hub : randomSite();
                write(step, node);
            } else if (r < 53) {
                Node s = randomSite();
                log.add(step + " " + s.id + " seal: " + sealed(s.outbox.seal(s.c, CHANNEL)));
            } else if (r < 70) {
                Node s = randomSite();
                if (rnd.nextBoolean()) { // as a site's tick does: seal, then send
                    log.add(step + " " + s.id + " seal: " + sealed(s.outbox.seal(s.c, CHANNEL)));
                }
                Push[] kinds = Push.values();
                push(step, s, kinds[rnd.nextInt(kinds.length)]);
            } else if (r < 78) {
                if (policy.kind() == ConflictPolicy.Kind.MANUAL && rnd.nextBoolean()) {
                    settle(step);
                } else {
                    log.add(step + " hub seal: " + sealed(hubSeal()));
                }
            } else if (r < 95) {
                if (rnd.nextInt(3) == 0) { // as the hub does when a site fetches: seal, then send
                    log.add(step + " hub seal: " + sealed(hubSeal()));
                }
                Fetch[] kinds = Fetch.values();
                fetch(step, randomSite(), kinds[rnd.nextInt(kinds.length)]);
            } else {
                round("" + step);
            }
        }

        /**
         * The hub seals; then, as HubDistributor does on its own thread, it records when its own edits in the batch were
         * made (on a second connection), so last-writer-wins orders them by that.
         */
        Optional<SealedBatch> hubSeal() throws SQLException {
            Optional<SealedBatch> b = hub.outbox.seal(hub.c, CHANNEL);
            if (b.isPresent()) {
                try (Connection writer = DriverManager.getConnection(hub.url)) {
                    writer.setAutoCommit(false);
                    hub.applier.recordHubEdits(hub.c, writer, b.get(), spec.fromHub(), HUB, 0, hub.stamps);
                }
            }
            return b;
        }

        Node randomSite() {
            return sites.get(rnd.nextInt(sites.size()));
        }

        static String sealed(Optional<SealedBatch> b) {
            return b.map(x -> "batch " + x.sequence() + " (" + x.rowCount() + " rows, stamp " + x.stamp() + ")").orElse("nothing");
        }

        /** One local transaction at {@code node} (a site's user, or HQ staff at the hub): one to three row writes. */
        void write(int step, Node node) throws SQLException {
            int rows = rnd.nextInt(5) == 0 ? 2 + rnd.nextInt(2) : 1;
            String tag = node.id + "-" + step;
            List<String> done = new ArrayList<>();
            for (int i = 0; i < rows; i++) {
                String value = rows == 1 ? tag : tag + "." + (i + 1); // unique, so every value can be traced
                int key = 1 + rnd.nextInt(keys);
                Map<String, String> before = read(node.c, key);
                if (before == null) {
                    String b = rnd.nextInt(10) == 0 ? null : value;
                    String u = unique && rnd.nextBoolean() ? "u" + (1 + rnd.nextInt(3)) : null;
                    try (PreparedStatement ps = node.c.prepareStatement("INSERT INTO " + TABLE + " (id, a, b" + (unique ? ", u" : "")
                            + ") VALUES (?, ?, ?" + (unique ? ", ?" : "") + ")")) {
                        ps.setInt(1, key);
                        ps.setString(2, value);
                        ps.setString(3, b);
                        if (unique) {
                            ps.setString(4, u);
                        }
                        ps.executeUpdate();
                    } catch (SQLException e) {
                        if (!"23505".equals(e.getSQLState())) {
                            throw e;
                        }
                        done.add("insert " + key + " u=" + u + ": taken here");
                        continue;
                    }
                    writes.add(new Write(step, node.id, key, null, values(value, b), false));
                    done.add("insert " + key + "=" + value + (b == null ? " b=null" : "") + (u == null ? "" : " u=" + u));
                    continue;
                }
                int r = rnd.nextInt(100);
                if (r < 20) {
                    try (PreparedStatement ps = node.c.prepareStatement("DELETE FROM " + TABLE + " WHERE id = ?")) {
                        ps.setInt(1, key);
                        ps.executeUpdate();
                    }
                    writes.add(new Write(step, node.id, key, before, Map.of(), true));
                    done.add("delete " + key + " " + before);
                    continue;
                }
                List<String> columns = r < 55 ? List.of("a") : r < 80 ? List.of("b") : List.of("a", "b");
                String written = rnd.nextInt(10) == 0 ? null : value; // sometimes NULL
                boolean setU = unique && rnd.nextInt(4) == 0;
                String u = setU && rnd.nextInt(4) > 0 ? "u" + (1 + rnd.nextInt(3)) : null;
                String set = columns.stream().map(col -> col + " = ?").collect(Collectors.joining(", ")) + (setU ? ", u = ?" : "");
                try (PreparedStatement ps = node.c.prepareStatement("UPDATE " + TABLE + " SET " + set + " WHERE id = ?")) {
                    int p = 1;
                    for (int j = 0; j < columns.size(); j++) {
                        ps.setString(p++, written);
                    }
                    if (setU) {
                        ps.setString(p++, u);
                    }
                    ps.setInt(p, key);
                    ps.executeUpdate();
                } catch (SQLException e) {
                    if (!"23505".equals(e.getSQLState())) {
                        throw e;
                    }
                    done.add("update " + key + " u=" + u + ": taken here");
                    continue;
                }
                Map<String, String> wrote = new LinkedHashMap<>();
                columns.forEach(col -> wrote.put(col, written));
                writes.add(new Write(step, node.id, key, before, wrote, false));
                done.add("update " + key + " " + String.join("", columns) + "=" + written + " " + before);
            }
            node.c.commit();
            log.add(step + " " + node.id + " write: " + String.join("; ", done));
        }

        /**
         * An operator settles an open conflict (policy manual) as Conflicts.handleSettle does: takes the site's version,
         * the hub's, or a row of their own. For the accounting this is a write at the hub based on the row it holds now.
         */
        void settle(int step) throws SQLException {
            List<Map<String, String>> open = conflicts().stream().filter(c -> "open".equals(c.get("status"))).toList();
            if (open.isEmpty()) {
                log.add(step + " operator: no open conflict to settle");
                return;
            }
            Map<String, String> chosen = open.get(rnd.nextInt(open.size()));
            long id = Long.parseLong(chosen.get("id"));
            String take = List.of("site", "hub", "row").get(rnd.nextInt(3));
            Map<String, Object> key = Json.parseRow(chosen.get("row_key"));
            int k = Integer.parseInt(String.valueOf(key.get("id")));
            Map<String, String> before = read(hub.c, k);
            String tag = "op-" + step;
            Map<String, Object> row = switch (take) {
                case "site" -> Json.parseRow(chosen.get("site_row"));
                case "hub" -> Json.parseRow(chosen.get("hub_row"));
                default -> {
                    Map<String, Object> given = new LinkedHashMap<>();
                    given.put("id", k);
                    given.put("a", tag);
                    given.put("b", tag);
                    yield given;
                }
            };
            ConflictLog.Entry e = ConflictLog.lock(hub.c, id);
            assertThat(e.status()).isEqualTo(ConflictLog.OPEN);
            String table = spec.tables().stream().map(TableSpec::target).filter(t -> t.equalsIgnoreCase(e.table())).findFirst()
                    .orElse(e.table());
            // Forced: the row may have changed since the conflict; the operator's version is written whatever it holds now.
            try {
                hub.applier.settle(hub.c, spec, table, key, Json.parseRow(e.resultRow()), row, true, hub.twoWay);
            } catch (BatchApplier.SettleRefusedException refused) { // its unique value is another row's now
                hub.c.rollback();
                log.add(step + " operator settles conflict " + id + " taking " + take + ": refused, " + refused.getMessage());
                return;
            }
            ConflictLog.settle(hub.c, id, take, row, "operator", hub.clock.instant());
            hub.c.commit();
            writes.add(new Write(step, "operator", k, before, row == null ? Map.of()
                    : take.equals("row") ? values(tag, tag) : values(null, null), row == null));
            log.add(step + " operator settles conflict " + id + " (key " + k + ") taking " + take + ": " + row + " (hub had " + before + ")");
        }

        // ---- site to hub ----------------------------------------------------------------------------

        void push(int step, Node s, Push kind) throws Exception {
            long hubLedger = hubLedger(s);
            List<SealedBatch> unacked = s.outbox.unacknowledged(s.c, HUB, CHANNEL, 1000);
            String prefix = step + " " + s.id + " push " + kind + " (site ack " + s.outbox.acknowledged(s.c, HUB, CHANNEL) + ", hub ledger "
                    + hubLedger + "): ";
            s.c.commit();
            switch (kind) {
                case ALL, FIRST, LOSE_ACK -> {
                    List<SealedBatch> send = kind == Push.FIRST && !unacked.isEmpty() ? unacked.subList(0, 1) : unacked;
                    if (send.isEmpty()) {
                        log.add(prefix + "nothing to send");
                        return;
                    }
                    long before = conflictCount();
                    List<ApplyOutcome> outcomes = receiveAtHub(s, siteStream(s, send));
                    long ack = outcomes.getLast().lastApplied();
                    if (kind != Push.LOSE_ACK) {
                        s.outbox.acknowledge(s.c, HUB, CHANNEL, ack);
                    }
                    log.add(prefix + describe(outcomes) + (kind == Push.LOSE_ACK ? ", ack " + ack + " lost" : ", ack " + ack)
                            + conflictsSince(before));
                }
                case RESEND_APPLIED -> {
                    // A batch the hub has applied, sent again (a retry after a lost answer, or a duplicated request).
                    List<Long> applied = s.sent.keySet().stream().filter(seq -> seq <= hubLedger).toList();
                    if (applied.isEmpty()) {
                        log.add(prefix + "nothing applied to send again");
                        return;
                    }
                    long seq = applied.get(rnd.nextInt(applied.size()));
                    String before = checksum(hub);
                    List<ApplyOutcome> outcomes = receiveAtHub(s, resentStream(List.of(s.sent.get(seq))));
                    assertThat(outcomes).as("batch %s of %s sent again", seq, s.id).singleElement()
                            .isInstanceOf(ApplyOutcome.Duplicate.class);
                    assertThat(outcomes.getFirst().lastApplied()).isEqualTo(hubLedger);
                    assertThat(checksum(hub)).as("hub rows after a duplicate").isEqualTo(before);
                    s.outbox.acknowledge(s.c, HUB, CHANNEL, outcomes.getFirst().lastApplied()); // the hub's answer carries the ack
                    log.add(prefix + "batch " + seq + " again: " + describe(outcomes));
                }
                case AHEAD -> {
                    Optional<SealedBatch> ahead = unacked.stream().filter(b -> b.sequence() == hubLedger + 2).findFirst();
                    if (ahead.isEmpty()) {
                        log.add(prefix + "no batch " + (hubLedger + 2) + " to send ahead");
                        return;
                    }
                    String before = checksum(hub);
                    byte[] stream = siteStream(s, List.of(ahead.get()));
                    assertThatThrownBy(() -> receiveAtHub(s, stream)).isInstanceOf(OutOfOrderBatchException.class);
                    assertThat(hubLedger(s)).as("hub ledger after a batch out of order").isEqualTo(hubLedger);
                    assertThat(checksum(hub)).as("hub rows after a batch out of order").isEqualTo(before);
                    log.add(prefix + "batch " + (hubLedger + 2) + " ahead of its turn: refused");
                }
            }
        }

        long hubLedger(Node s) throws SQLException {
            long ledger = BatchApplier.lastApplied(hub.c, s.id, CHANNEL);
            hub.c.commit();
            return ledger;
        }

        /** Writes batches of a site as SiteNode.writeBatch does (changes that came from the hub left out). */
        byte[] siteStream(Node s, List<SealedBatch> batches) throws SQLException, IOException {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            try (WireWriter w = new WireWriter(out)) {
                for (SealedBatch b : batches) {
                    BatchHeader h = new BatchHeader(new BatchId(s.id, b.channel(), b.sequence()), b.sealedAt(), b.firstCaptured(), b.stamp());
                    w.beginBatch(h);
                    List<String[]> copy = new ArrayList<>();
                    s.outbox.stream(s.c, b, HUB, (op, table, oldRow, newRow, captured, origin) -> {
                        w.change(op, table, oldRow == null ? null : oldRow::writeTo, newRow == null ? null : newRow::writeTo);
                        copy.add(new String[] {op, table, text(oldRow), text(newRow)});
                    });
                    w.endBatch();
                    s.sent.putIfAbsent(b.sequence(), new Sent(h, copy));
                }
            }
            return out.toByteArray();
        }

        static byte[] resentStream(List<Sent> batches) throws IOException {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            try (WireWriter w = new WireWriter(out)) {
                for (Sent b : batches) {
                    w.beginBatch(b.header());
                    for (String[] ch : b.changes()) {
                        w.change(ch[0], ch[1], ch[2], ch[3]);
                    }
                    w.endBatch();
                }
            }
            return out.toByteArray();
        }

        /** Applies a site's stream at the hub as HubNode.receive does; returns each batch's outcome. */
        List<ApplyOutcome> receiveAtHub(Node s, byte[] stream) throws IOException {
            List<ApplyOutcome> outcomes = new ArrayList<>();
            try (WireReader reader = new WireReader(new ByteArrayInputStream(stream))) {
                BatchHeader h;
                while ((h = reader.nextBatch()) != null) {
                    assertThat(h.id().source()).isEqualTo(s.id);
                    Iterator<Change> changes = reader.changes();
                    ApplyOutcome outcome = hub.applier.applyTwoWay(hub.c, h, spec, changes, hub.twoWay);
                    while (changes.hasNext()) {
                        changes.next();
                    }
                    outcomes.add(outcome);
                }
            }
            return outcomes;
        }

        // ---- hub to sites ---------------------------------------------------------------------------

        void fetch(int step, Node s, Fetch kind) throws Exception {
            long ledger = siteLedger(s);
            String prefix = step + " " + s.id + " fetch " + kind + " (ledger " + ledger + "): ";
            switch (kind) {
                case ALL, SOME -> {
                    List<SealedBatch> batches = hub.outbox.sealedAfter(hub.c, CHANNEL, ledger, kind == Fetch.ALL ? 1000 : 1 + rnd.nextInt(2));
                    if (batches.isEmpty()) {
                        log.add(prefix + "nothing new");
                        return;
                    }
                    log.add(prefix + describe(applyAtSite(s, hubStream(s, batches))));
                }
                case RESEND_APPLIED -> {
                    if (ledger == 0) {
                        log.add(prefix + "nothing applied to send again");
                        return;
                    }
                    long seq = 1 + rnd.nextInt((int) ledger);
                    String before = checksum(s);
                    List<ApplyOutcome> outcomes = applyAtSite(s, hubStream(s, hub.outbox.sealedAfter(hub.c, CHANNEL, seq - 1, 1)));
                    assertThat(outcomes).as("hub batch %s sent to %s again", seq, s.id).singleElement()
                            .isInstanceOf(ApplyOutcome.Duplicate.class);
                    assertThat(checksum(s)).as("site rows after a duplicate").isEqualTo(before);
                    log.add(prefix + "batch " + seq + " again: " + describe(outcomes));
                }
                case COPY -> {
                    // As HubDistributor.sendReload does for a two-way channel: the hub seals batch N and records the site at
                    // N; the copy starts with the mark of the site's last batch it holds, then every row.
                    long holds = hubLedger(s);
                    OutboxStore.ReloadPoint point = hub.outbox.openReload(hub.c, s.id, CHANNEL);
                    assertThat(BatchApplier.lastApplied(hub.c, s.id, CHANNEL)).isEqualTo(holds);
                    hub.c.commit();
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    try (WireWriter w = new WireWriter(out)) {
                        w.beginBatch(new BatchHeader(new BatchId(HUB, CHANNEL, point.batch()), hub.clock.instant(), null, hub.stamps.tick()),
                                true, point.token());
                        w.change("M", "", null, "{\"batch\":" + holds + "}");
                        TableMeta meta = SchemaReader.read(hub.c, TABLE);
                        try (Statement st = hub.c.createStatement(); ResultSet rs = st.executeQuery("SELECT * FROM " + TABLE)) {
                            while (rs.next()) {
                                w.change("R", TABLE, null, CanonicalWriter.row(meta.columns(), rs, false));
                            }
                        }
                        hub.c.commit();
                        w.endBatch();
                    }
                    List<ApplyOutcome> outcomes = new ArrayList<>();
                    try (WireReader reader = new WireReader(new ByteArrayInputStream(out.toByteArray()))) {
                        BatchHeader h = reader.nextBatch();
                        assertThat(reader.isReload()).isTrue();
                        outcomes.add(s.applier.reload(s.c, h, spec.fromHub(), reader.changes(), null));
                        s.stamps.observe(h.stamp());
                    }
                    log.add(prefix + "copy as of batch " + point.batch() + " holding its batch " + holds + ": " + describe(outcomes));
                }
                case AHEAD -> {
                    List<SealedBatch> ahead = hub.outbox.sealedAfter(hub.c, CHANNEL, ledger + 1, 1);
                    if (ahead.isEmpty()) {
                        log.add(prefix + "no batch " + (ledger + 2) + " to send ahead");
                        return;
                    }
                    String before = checksum(s);
                    byte[] stream = hubStream(s, ahead);
                    assertThatThrownBy(() -> applyAtSite(s, stream)).isInstanceOf(OutOfOrderBatchException.class);
                    assertThat(siteLedger(s)).isEqualTo(ledger);
                    assertThat(checksum(s)).as("site rows after a batch out of order").isEqualTo(before);
                    log.add(prefix + "batch " + (ledger + 2) + " ahead of its turn: refused");
                }
            }
        }

        long siteLedger(Node s) throws SQLException {
            long ledger = BatchApplier.lastApplied(s.c, HUB, CHANNEL);
            s.c.commit();
            return ledger;
        }

        /**
         * Writes hub batches as HubDistributor.handleFetch does for a site (no row filter): streamed for the hub itself,
         * then the site's share: every change but the site's own, and the marks of the site's batches.
         */
        byte[] hubStream(Node site, List<SealedBatch> batches) throws SQLException, IOException {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            try (WireWriter w = new WireWriter(out)) {
                for (SealedBatch b : batches) {
                    w.beginBatch(new BatchHeader(new BatchId(HUB, CHANNEL, b.sequence()), b.sealedAt(), b.firstCaptured(), b.stamp()), false,
                            hub.outbox.token(hub.c, CHANNEL, b.sequence()));
                    hub.outbox.stream(hub.c, b, HUB, (op, table, oldRow, newRow, captured, origin) -> {
                        if (HubDistributor.passes(true, op, origin, site.id)) {
                            w.change(op, table, oldRow == null ? null : oldRow::writeTo, newRow == null ? null : newRow::writeTo);
                        }
                    });
                    w.endBatch();
                }
            }
            return out.toByteArray();
        }

        /** Applies a hub stream at a site as SiteNode.fetch does. */
        List<ApplyOutcome> applyAtSite(Node s, byte[] stream) {
            List<ApplyOutcome> outcomes = new ArrayList<>();
            ChannelSpec local = spec.fromHub();
            try (WireReader reader = new WireReader(new ByteArrayInputStream(stream))) {
                BatchHeader h;
                while ((h = reader.nextBatch()) != null) {
                    assertThat(h.id().source()).isEqualTo(HUB);
                    Iterator<Change> changes = reader.changes();
                    ApplyOutcome outcome = s.applier.apply(s.c, h, local, changes);
                    s.stamps.observe(h.stamp());
                    while (changes.hasNext()) {
                        changes.next();
                    }
                    outcomes.add(outcome);
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            return outcomes;
        }

        static String describe(List<ApplyOutcome> outcomes) {
            return outcomes.stream().map(o -> switch (o) {
                case ApplyOutcome.Applied a -> "#" + a.id().sequence() + " applied (" + a.changes() + ")";
                case ApplyOutcome.Duplicate d -> "#" + d.id().sequence() + " duplicate (ledger " + d.lastApplied() + ")";
            }).collect(Collectors.joining(", "));
        }

        // ---- rest -------------------------------------------------------------------------------------

        /**
         * Rounds of: every site (in random order) seals, pushes everything unacknowledged and records the ack; the hub
         * seals; every site fetches everything. Until a round seals nothing and applies nothing anywhere.
         */
        int quiesce() throws Exception {
            for (int round = 1; round <= MAX_QUIET_ROUNDS; round++) {
                time.advance(rnd.nextInt(100));
                if (!round("r" + round)) {
                    return round;
                }
            }
            throw new AssertionError("not quiet after " + MAX_QUIET_ROUNDS + " rounds: changes keep going round");
        }

        /** One round of {@link #quiesce()}; true when anything was sealed or applied. */
        boolean round(String label) throws Exception {
            boolean moved = false;
            List<Node> order = new ArrayList<>(sites);
            Collections.shuffle(order, rnd);
            for (Node s : order) {
                Optional<SealedBatch> b = s.outbox.seal(s.c, CHANNEL);
                moved |= b.isPresent();
                List<SealedBatch> unacked = s.outbox.unacknowledged(s.c, HUB, CHANNEL, 1000);
                if (!unacked.isEmpty()) {
                    long before = conflictCount();
                    List<ApplyOutcome> outcomes = receiveAtHub(s, siteStream(s, unacked));
                    s.outbox.acknowledge(s.c, HUB, CHANNEL, outcomes.getLast().lastApplied());
                    moved |= outcomes.stream().anyMatch(o -> o instanceof ApplyOutcome.Applied);
                    log.add(label + " " + s.id + " seal " + sealed(b) + ", push: " + describe(outcomes) + conflictsSince(before));
                }
            }
            Optional<SealedBatch> hb = hubSeal();
            moved |= hb.isPresent();
            if (hb.isPresent()) {
                log.add(label + " hub seal: " + sealed(hb));
            }
            Collections.shuffle(order, rnd);
            for (Node s : order) {
                List<SealedBatch> batches = hub.outbox.sealedAfter(hub.c, CHANNEL, siteLedger(s), 1000);
                if (!batches.isEmpty()) {
                    moved = true;
                    log.add(label + " " + s.id + " fetch: " + describe(applyAtSite(s, hubStream(s, batches))));
                }
            }
            return moved;
        }

        /** At rest, a further round finds nothing to seal, send or fetch anywhere: no change travels in a loop. */
        void assertNothingLoops() throws SQLException {
            for (Node s : sites) {
                assertThat(s.outbox.seal(s.c, CHANNEL)).as("site %s seals at rest", s.id).isEmpty();
                assertThat(s.outbox.unacknowledged(s.c, HUB, CHANNEL, 1000)).as("site %s unacknowledged at rest", s.id).isEmpty();
                assertThat(hubLedger(s)).as("hub ledger of %s", s.id).isEqualTo(s.outbox.lastSealed(s.c, CHANNEL));
                s.c.commit();
            }
            assertThat(hub.outbox.seal(hub.c, CHANNEL)).as("hub seals at rest").isEmpty();
            long last = hub.outbox.lastSealed(hub.c, CHANNEL);
            hub.c.commit();
            for (Node s : sites) {
                assertThat(siteLedger(s)).as("site %s has every hub batch", s.id).isEqualTo(last);
            }
        }

        void assertConverged() throws SQLException {
            TableChecksum.Result expected = TableChecksum.of(hub.c, DIALECT, TABLE);
            List<String> differ = new ArrayList<>();
            for (Node s : sites) {
                if (!TableChecksum.of(s.c, DIALECT, TABLE).equals(expected)) {
                    differ.add(s.id);
                }
            }
            assertThat(differ).as("sites whose rows differ from the hub's").isEmpty();
        }

        void assertConflictsAccounted() throws SQLException {
            Map<Integer, Map<String, String>> rows = rows(hub);
            List<Map<String, String>> conflicts = conflicts();
            java.util.HashSet<String> traced = new java.util.HashSet<>();
            for (Map<String, String> c : conflicts) {
                assertThat(c.get("kind")).as("conflict %s kind", c.get("id"))
                        .isIn(unique ? List.of("INSERT_EXISTS", "UPDATE_UPDATE", "UPDATE_DELETED", "DELETE_UPDATED", "UNIQUE_TAKEN")
                                : List.of("INSERT_EXISTS", "UPDATE_UPDATE", "UPDATE_DELETED", "DELETE_UPDATED"));
                boolean taken = "UNIQUE_TAKEN".equals(c.get("kind")); // settled by a fixed rule: the value's holder keeps it
                assertThat(c.get("policy")).as("conflict %s policy", c.get("id")).isEqualTo(taken ? "unique" : policy.kind().label());
                assertThat(c.get("status")).as("conflict %s status", c.get("id"))
                        .isIn(policy.kind() == ConflictPolicy.Kind.MANUAL ? List.of("open", "settled") : List.of("resolved"));
                assertThat(c.get("winner")).as("conflict %s winner", c.get("id")).isNotNull()
                        .isIn("settled".equals(c.get("status")) ? List.of("site", "hub", "row")
                                : Stream.concat(all.stream().map(n -> n.id), Stream.of("merge")).toList());
                CONFLICTS.computeIfAbsent(c.get("kind"), k -> new AtomicInteger()).incrementAndGet();
                for (String side : List.of("site_row", "hub_row")) {
                    Map<String, Object> row = Json.parseRow(c.get(side));
                    if (row != null) {
                        for (String col : List.of("a", "b")) {
                            if (row.get(col) != null) {
                                traced.add(col + "=" + row.get(col));
                            }
                        }
                    }
                }
            }
            List<String> lost = new ArrayList<>();
            for (Write w : writes) {
                for (Map.Entry<String, String> v : w.values().entrySet()) {
                    String col = v.getKey();
                    String value = v.getValue();
                    if (value == null) {
                        continue;
                    }
                    Map<String, String> now = rows.get(w.key());
                    boolean kept = now != null && value.equals(now.get(col));
                    boolean overwritten = writes.stream().anyMatch(later -> later.key() == w.key() && later.overwrote(col, value));
                    if (!kept && !overwritten && !traced.contains(col + "=" + value)) {
                        lost.add(col + "=" + value + " (key " + w.key() + ", written at " + w.node() + " in step " + w.step() + ")");
                    }
                }
            }
            assertThat(lost).as("values gone without being overwritten by a write that read them and without a conflict that names them")
                    .isEmpty();
        }

        // ---- reading and reporting ------------------------------------------------------------------

        long conflictCount() throws SQLException {
            try (Statement st = hub.c.createStatement(); ResultSet rs = st.executeQuery("SELECT COUNT(*) FROM sync_conflict")) {
                rs.next();
                long n = rs.getLong(1);
                hub.c.commit();
                return n;
            }
        }

        String conflictsSince(long before) throws SQLException {
            long now = conflictCount();
            return now == before ? "" : ", " + (now - before) + " conflict(s)";
        }

        static String checksum(Node n) throws SQLException {
            return TableChecksum.of(n.c, DIALECT, TABLE).toString();
        }

        static Map<String, String> read(Connection c, int key) throws SQLException {
            try (PreparedStatement ps = c.prepareStatement("SELECT a, b FROM " + TABLE + " WHERE id = ?")) {
                ps.setInt(1, key);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) {
                        return null;
                    }
                    Map<String, String> row = new TreeMap<>();
                    row.put("a", rs.getString(1));
                    row.put("b", rs.getString(2));
                    return row;
                }
            }
        }

        static Map<Integer, Map<String, String>> rows(Node n) throws SQLException {
            Map<Integer, Map<String, String>> rows = new TreeMap<>();
            try (Statement st = n.c.createStatement(); ResultSet rs = st.executeQuery("SELECT id, a, b FROM " + TABLE + " ORDER BY id")) {
                while (rs.next()) {
                    Map<String, String> row = new TreeMap<>();
                    row.put("a", rs.getString(2));
                    row.put("b", rs.getString(3));
                    rows.put(rs.getInt(1), row);
                }
            }
            n.c.commit();
            return rows;
        }

        List<Map<String, String>> conflicts() throws SQLException {
            List<Map<String, String>> out = new ArrayList<>();
            try (Statement st = hub.c.createStatement(); ResultSet rs = st.executeQuery("SELECT id, row_key, site, batch_seq, kind, policy, "
                    + "winner, status, base_row, site_row, hub_row, result_row, site_stamp, hub_stamp FROM sync_conflict ORDER BY id")) {
                int cols = rs.getMetaData().getColumnCount();
                while (rs.next()) {
                    Map<String, String> row = new LinkedHashMap<>();
                    for (int i = 1; i <= cols; i++) {
                        row.put(rs.getMetaData().getColumnLabel(i).toLowerCase(java.util.Locale.ROOT), rs.getString(i));
                    }
                    out.add(row);
                }
            }
            hub.c.commit();
            return out;
        }

        String report(Throwable t) {
            StringBuilder b = new StringBuilder("seed=" + seed + " (replay: -Dsyncline.seed=" + seed + "): " + (t == null ? "passed" : t)
                    + "\nsteps:\n");
            log.forEach(line -> b.append("  ").append(line).append('\n'));
            try {
                for (Node n : all) {
                    b.append("rows at ").append(n.id).append(": ").append(rows(n)).append('\n');
                }
                b.append("conflicts:\n");
                for (Map<String, String> c : conflicts()) {
                    b.append("  ").append(c).append('\n');
                }
            } catch (SQLException | RuntimeException e) {
                b.append("(could not read the nodes: ").append(e).append(")\n");
            }
            return b.toString();
        }

        static String text(OutboxRowSink.Row row) throws IOException {
            if (row == null) {
                return null;
            }
            StringWriter out = new StringWriter(64);
            try (JsonGenerator g = Json.FACTORY.createGenerator(out)) {
                row.writeTo(g);
            }
            return out.toString();
        }
    }
}
