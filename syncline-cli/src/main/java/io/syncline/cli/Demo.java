package io.syncline.cli;

import io.syncline.engine.dialect.h2.H2Dialect;
import io.syncline.engine.verify.TableChecksum;
import io.syncline.node.HubNode;
import io.syncline.node.NodeStatus;
import io.syncline.node.SiteNode;
import io.syncline.node.config.ConfigKey.Role;
import io.syncline.node.config.NodeConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/*
 * The reference scenario in one process: a hub and N sites, each on its own H2 database file, sites
 * alternating between push mode and pull mode. Every site starts with a few products (sent by the initial
 * load) and runs a product-management workload: new products, price and stock changes, deletions. The
 * hub folds every site's product table into one table keyed by (site_id, id).
 *
 * The other way, the hub's catalog (catalog_item) reaches the sites through a hub-to-sites channel: each site is in
 * one of three regions and receives the items of its region and those without one. The hub edits its catalog while
 * the sites work: new items, list prices, items moved to another region, items withdrawn.
 *
 * Both ways, a two-way channel carries shelf_stock, which every site and HQ edit (quantities at the sites, notes at
 * HQ and at the sites): the hub settles colliding edits by column merge and records them, and every site ends with the
 * hub's rows.
 */
final class Demo {
    private static final String TOKEN = "demo-enrollment-token";
    private static final int INITIAL_PRODUCTS = 40;
    private static final int INITIAL_ITEMS = 60;
    private static final String[] REGIONS = {"north", "south", "east"};
    /** What a site of {@code :region} must hold of the hub's catalog: the channel's filter, in SQL. */
    private static final String SHARE = "region IS NULL OR region = '%s'";
    private static final int SHELVES = 25;
    /** Product images per site: written one at a time, then written over, while the workload runs. */
    private static final int IMAGES = 12;

    private final Path root;
    private final int siteCount;
    private final Duration duration;
    private final int rate;
    private final PrintStream out;
    private final AtomicLong committed = new AtomicLong();
    /** Rows changed by the workload plus rows sent by the initial loads: what the hub must end up having applied. */
    private final AtomicLong captured = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    /** Edits of the two-way shelf_stock table, at the sites and at HQ. */
    private final AtomicLong shelfEdits = new AtomicLong();
    /** Product images written at the sites. */
    private final AtomicLong images = new AtomicLong();

    Demo(Path root, int siteCount, Duration duration, int rate, PrintStream out) {
        this.root = root;
        this.siteCount = siteCount;
        this.duration = duration;
        this.rate = rate;
        this.out = out;
    }

    private String url(String name) {
        return "jdbc:h2:" + root.resolve(name).toAbsolutePath() + ";LOCK_TIMEOUT=10000";
    }

    private static String siteId(int i) {
        return String.format("site-%02d", i);
    }

    /** A site's folder of product images (a site-to-hub file channel); the hub keeps each site's in images/<site id>. */
    private Path images(String node) {
        return root.resolve("files").resolve(node).resolve("images");
    }

    /** Writes (or writes over) product image {@code n} of site {@code i}: a few KiB standing in for a photo. */
    private void writeImage(int i, int n, SplittableRandom random) {
        writeFile(images(siteId(i)).resolve(String.format("product-%03d.jpg", n)), 2048 + random.nextInt(30 * 1024), random);
    }

    /** Writes {@code size} random bytes to {@code f} as an application would (write, then rename); whether it did. */
    private boolean writeFile(Path f, int size, SplittableRandom random) {
        byte[] b = new byte[size];
        random.nextBytes(b);
        try {
            Files.createDirectories(f.getParent());
            Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
            Files.write(tmp, b);
            Files.move(tmp, f, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            images.incrementAndGet();
            return true;
        } catch (IOException e) {
            failed.incrementAndGet();
            return false;
        }
    }

    /** Whether the hub holds exactly site {@code i}'s images; with {@code counts}, fills in {site files, hub files}. */
    private boolean imagesMatch(int i, long[] counts) {
        Path site = images(siteId(i));
        Path hub = images("hq").resolve(siteId(i));
        try (Stream<Path> a = Files.exists(site) ? Files.list(site) : Stream.empty();
             Stream<Path> b = Files.exists(hub) ? Files.list(hub) : Stream.empty()) {
            List<Path> mine = a.filter(p -> p.toString().endsWith(".jpg")).toList();
            List<Path> theirs = b.filter(p -> p.toString().endsWith(".jpg")).toList();
            if (counts != null) {
                counts[0] = mine.size();
                counts[1] = theirs.size();
            }
            if (mine.size() != theirs.size()) {
                return false;
            }
            for (Path p : mine) {
                Path h = hub.resolve(p.getFileName().toString());
                if (!Files.exists(h) || Files.mismatch(p, h) != -1) {
                    return false;
                }
            }
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    boolean run() throws Exception {
        out.printf("Syncline demo: hub + %d sites on H2 in %s; workload %s at %d tx/s per site%n", siteCount, root, duration, rate);
        createSchemas();
        captured.set((long) INITIAL_PRODUCTS * siteCount);
        StringBuilder overrides = new StringBuilder();
        for (int i = 1; i <= siteCount; i++) {
            overrides.append("  ").append(siteId(i)).append(": {").append(i % 2 == 1 ? "mode: pull, interval: 500ms, " : "")
                    .append("attributes: {region: ").append(region(i)).append("}}\n");
        }
        NodeConfig hubCfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "%s", poolSize: 16}
                http: {threads: 24}
                enrollment: {token: "%s"}
                sync: {mode: push, interval: 500ms}
                sites:
                %s
                capture: {interval: 200ms}
                channels:
                  - name: products
                    tables: [{name: product, hubColumn: site_id, files: {image: images}}]
                  - name: catalog
                    direction: hub-to-sites
                    tables: [{name: catalog_item, filter: "region IS NULL OR region = :site.region"}]
                  - name: shelf
                    direction: two-way
                    conflict: {policy: column-merge}
                    tables: [{name: shelf_stock}]
                fileChannels:
                  - {name: images, include: ["*.jpg"]}
                folders: {images: "%s"}
                """.formatted(url("hub"), TOKEN, overrides.isEmpty() ? "  {}" : overrides.toString().stripTrailing(), images("hq")),
                Role.HUB, Map.of());
        long start = System.nanoTime();
        List<SiteNode> sites = new ArrayList<>();
        ScheduledExecutorService workload = Executors.newScheduledThreadPool(4, daemon("syncline-demo-workload"));
        ScheduledExecutorService progress = Executors.newSingleThreadScheduledExecutor(daemon("syncline-demo-progress"));
        HubNode hub = HubNode.start(hubCfg, Clock.systemUTC());
        try {
            out.printf("hub hq listening on %s%n", hub.url());
            for (int i = 1; i <= siteCount; i++) {
                Files.createDirectories(images(siteId(i))); // a site's folder must be there: a missing one is an error, not "all deleted"
                sites.add(SiteNode.start(NodeConfig.parse("""
                        node: {id: %s}
                        database: {url: "%s", poolSize: 3}
                        hub: {url: "%s", token: "%s"}
                        capture: {interval: 200ms}
                        folders: {images: "%s"}
                        """.formatted(siteId(i), url(siteId(i)), hub.url(), TOKEN, images(siteId(i))), Role.SITE, Map.of()), Clock.systemUTC()));
            }
            out.printf("%d sites started (odd sites pulled by the hub, even sites push) in %d ms%n", siteCount,
                    (System.nanoTime() - start) / 1_000_000);
            long period = Math.max(1, 1000 / rate);
            for (int i = 1; i <= siteCount; i++) {
                SiteWorkload w = new SiteWorkload(url(siteId(i)), i);
                workload.scheduleAtFixedRate(w::step, (i * 37L) % period, period, TimeUnit.MILLISECONDS);
            }
            for (int i = 1; i <= siteCount; i++) {
                int site = i;
                SplittableRandom random = new SplittableRandom(i);
                AtomicInteger next = new AtomicInteger();
                workload.scheduleAtFixedRate(() -> writeImage(site, next.getAndIncrement() % IMAGES + 1, random), (i * 53L) % 2000, 2000,
                        TimeUnit.MILLISECONDS);
            }
            CatalogWorkload catalog = new CatalogWorkload(url("hub"), shelfEdits);
            workload.scheduleAtFixedRate(catalog::step, 0, 100, TimeUnit.MILLISECONDS);
            long t0 = System.nanoTime();
            progress.scheduleAtFixedRate(() -> printProgress(hub, t0), 5, 5, TimeUnit.SECONDS);
            Thread.sleep(duration.toMillis());
            workload.shutdown();
            if (!workload.awaitTermination(30, TimeUnit.SECONDS)) {
                workload.shutdownNow();
            }
            out.printf("workload stopped after %s: %d transactions committed at the sites (%d refused by the database); draining...%n",
                    duration, committed.get(), failed.get());
            long drainStart = System.nanoTime();
            hub.syncNow();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
            List<SiteNode> waiting = new ArrayList<>(sites);
            while (!waiting.isEmpty() && System.nanoTime() < deadline) {
                waiting.removeIf(SiteNode::isDrained);
                if (!waiting.isEmpty()) {
                    Thread.sleep(200);
                }
            }
            List<Integer> behind = new ArrayList<>();
            for (int i = 1; i <= siteCount; i++) {
                behind.add(i);
            }
            while (!behind.isEmpty() && System.nanoTime() < deadline) {
                behind.removeIf(i -> catalogMatches(i) && shelfMatches(i) && imagesMatch(i, null));
                if (!behind.isEmpty()) {
                    Thread.sleep(200);
                }
            }
            progress.shutdownNow();
            if (!waiting.isEmpty()) {
                out.printf("WARNING: %d sites did not drain within 180 s: %s%n", waiting.size(),
                        waiting.stream().map(SiteNode::nodeId).toList());
            } else if (!behind.isEmpty()) {
                out.printf("WARNING: %d sites did not receive the hub's catalog and shelves, or the hub their images, within 180 s: %s%n",
                        behind.size(),
                        behind.stream().map(Demo::siteId).toList());
            } else {
                out.printf("all sites drained, hold their share of the hub's catalog (%d catalog changes) and the hub's shelves "
                        + "(%d shelf edits at the sites and HQ, %d conflicts settled), and the hub holds their product images (%d written), "
                        + "in %d ms%n", catalog.changes.get(), shelfEdits.get(), hub.status().conflicts(), images.get(),
                        (System.nanoTime() - drainStart) / 1_000_000);
            }
            printProgress(hub, t0);
        } finally {
            workload.shutdownNow();
            progress.shutdownNow();
            quietShutdown();
            hub.close();
            closeAll(sites);
        }
        return compare();
    }

    /** Nodes stopping one after another would warn about each other; that is expected at the end of the demo. */
    private static void quietShutdown() {
        org.slf4j.Logger logger = org.slf4j.LoggerFactory.getLogger("io.syncline");
        if (logger instanceof ch.qos.logback.classic.Logger l && !l.isInfoEnabled()) {
            l.setLevel(ch.qos.logback.classic.Level.ERROR);
        }
    }

    private static void closeAll(List<SiteNode> sites) {
        for (SiteNode s : sites) {
            s.close();
        }
        sites.clear();
    }

    private void printProgress(HubNode hub, long t0) {
        try {
            NodeStatus st = hub.status();
            long applied = st.sites().stream().mapToLong(NodeStatus.SiteStatus::rowsApplied).sum();
            long pending = st.sites().stream().mapToLong(NodeStatus.SiteStatus::pendingChanges).sum();
            NodeStatus.SiteStatus worst = st.sites().stream().max(Comparator.comparingLong(NodeStatus.SiteStatus::lagMillis)).orElse(null);
            long online = st.sites().stream().filter(s -> s.state().equals("ONLINE")).count();
            out.printf("[%4ds] captured at sites %7d | applied at hub %7d | pending %6d | worst lag %5d ms%s | online %d/%d%n",
                    (System.nanoTime() - t0) / 1_000_000_000L, captured.get() , applied, pending,
                    worst == null ? 0 : worst.lagMillis(), worst == null || worst.lagMillis() == 0 ? "" : " (" + worst.site() + ")",
                    online, siteCount);
        } catch (RuntimeException e) {
            out.println("progress unavailable: " + e.getMessage());
        }
    }

    private static String shelf(int n) {
        return String.format("A-%02d", n);
    }

    private static String region(int site) {
        return REGIONS[site % REGIONS.length];
    }

    /** Whether site {@code i} holds exactly its share of the hub's catalog. */
    private boolean catalogMatches(int i) {
        try (Connection hub = DriverManager.getConnection(url("hub")); Connection site = DriverManager.getConnection(url(siteId(i)))) {
            H2Dialect d = new H2Dialect();
            return TableChecksum.where(hub, d, "catalog_item", SHARE.formatted(region(i))).equals(TableChecksum.of(site, d, "catalog_item"));
        } catch (SQLException e) {
            return false;
        }
    }

    /** Whether site {@code i} holds the hub's shelf_stock (a two-way table). */
    private boolean shelfMatches(int i) {
        try (Connection hub = DriverManager.getConnection(url("hub")); Connection site = DriverManager.getConnection(url(siteId(i)))) {
            H2Dialect d = new H2Dialect();
            return TableChecksum.of(hub, d, "shelf_stock").equals(TableChecksum.of(site, d, "shelf_stock"));
        } catch (SQLException e) {
            return false;
        }
    }

    private static final String SHELF_STOCK = "CREATE TABLE IF NOT EXISTS shelf_stock (shelf VARCHAR(16) PRIMARY KEY, qty INT NOT NULL, "
            + "note VARCHAR(200))";

    private static final String CATALOG_ITEM = "CREATE TABLE IF NOT EXISTS catalog_item (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, "
            + "list_price DECIMAL(12,2) NOT NULL, region VARCHAR(16), updated_at TIMESTAMP NOT NULL)";

    private void createSchemas() throws SQLException {
        try (Connection c = DriverManager.getConnection(url("hub")); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS product (site_id VARCHAR(64) NOT NULL, id BIGINT NOT NULL, sku VARCHAR(32) NOT NULL, "
                    + "name VARCHAR(200) NOT NULL, price DECIMAL(12,2) NOT NULL, stock INT NOT NULL, updated_at TIMESTAMP NOT NULL, "
                    + "image VARCHAR(64), PRIMARY KEY (site_id, id))");
            s.execute(CATALOG_ITEM);
            s.execute(SHELF_STOCK);
            try (PreparedStatement ps = c.prepareStatement("MERGE INTO shelf_stock KEY (shelf) VALUES (?, ?, ?)")) {
                for (int p = 1; p <= SHELVES; p++) {
                    ps.setString(1, shelf(p));
                    ps.setInt(2, 100);
                    ps.setString(3, "new shelf");
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            try (PreparedStatement ps = c.prepareStatement("MERGE INTO catalog_item KEY (id) VALUES (?, ?, ?, ?, ?)")) {
                for (int p = 1; p <= INITIAL_ITEMS; p++) {
                    ps.setLong(1, p);
                    ps.setString(2, "Catalog item " + p);
                    ps.setBigDecimal(3, BigDecimal.valueOf(500 + p * 11L, 2));
                    ps.setString(4, p % 4 == 0 ? null : REGIONS[p % REGIONS.length]);
                    ps.setObject(5, LocalDateTime.of(2026, 1, 1, 8, 0));
                    ps.addBatch();
                }
                ps.executeBatch();
            }
        }
        for (int i = 1; i <= siteCount; i++) {
            try (Connection c = DriverManager.getConnection(url(siteId(i))); Statement s = c.createStatement()) {
                s.execute(CATALOG_ITEM);
                s.execute(SHELF_STOCK);
                s.execute("CREATE TABLE IF NOT EXISTS product (id BIGINT PRIMARY KEY, sku VARCHAR(32) NOT NULL, name VARCHAR(200) NOT NULL, "
                        + "price DECIMAL(12,2) NOT NULL, stock INT NOT NULL, updated_at TIMESTAMP NOT NULL, image VARCHAR(64))");
                try (PreparedStatement ps = c.prepareStatement("MERGE INTO product KEY (id) VALUES (?, ?, ?, ?, ?, ?, NULL)")) {
                    for (int p = 1; p <= INITIAL_PRODUCTS; p++) {
                        ps.setLong(1, p);
                        ps.setString(2, "SKU-" + i + "-" + p);
                        ps.setString(3, "Product " + p + " of " + siteId(i));
                        ps.setBigDecimal(4, BigDecimal.valueOf(100 + p * 7L, 2));
                        ps.setInt(5, p * 3);
                        ps.setObject(6, LocalDateTime.of(2026, 1, 1, 9, 0));
                        ps.addBatch();
                    }
                    ps.executeBatch();
                }
            }
        }
    }

    /** One writer: each step is one transaction on the writer's own connection; steps never overlap. */
    private abstract static class Workload {
        private final String url;
        private Connection connection;

        Workload(String url) {
            this.url = url;
        }

        /** The statements of one step, on {@code c}; returns the rows they changed. */
        abstract int transaction(Connection c) throws SQLException;

        /** After a step committed. */
        void committed(int changed) {
        }

        /** After the database refused a step (rolled back). */
        void refused() {
        }

        final synchronized void step() {
            try {
                if (connection == null) {
                    connection = DriverManager.getConnection(url);
                    connection.setAutoCommit(false);
                }
                int changed = transaction(connection);
                connection.commit();
                committed(changed);
            } catch (SQLException e) {
                refused();
                try {
                    if (connection != null) {
                        connection.rollback();
                    }
                } catch (SQLException ignored) {
                    connection = null;
                }
            }
        }
    }

    /** One site's product-management workload. */
    private final class SiteWorkload extends Workload {
        private final SplittableRandom random;
        private final AtomicInteger nextId = new AtomicInteger(INITIAL_PRODUCTS);

        private final int site;

        SiteWorkload(String url, int seed) {
            super(url);
            this.random = new SplittableRandom(seed);
            this.site = seed;
        }

        @Override
        int transaction(Connection c) throws SQLException {
            int dice = random.nextInt(100);
            if (dice < 5) {
                shelfEdits.incrementAndGet();
                boolean qty = random.nextBoolean();
                try (PreparedStatement ps = c.prepareStatement(qty ? "UPDATE shelf_stock SET qty = GREATEST(0, qty + ?) WHERE shelf = ?"
                        : "UPDATE shelf_stock SET note = ? WHERE shelf = ?")) {
                    ps.setObject(1, qty ? (Object) random.nextInt(-5, 6) : "counted at " + siteId(site));
                    ps.setString(2, shelf(1 + random.nextInt(SHELVES)));
                    return ps.executeUpdate();
                }
            }
            if (dice < 40) {
                return update(c, "UPDATE product SET price = price + ?, updated_at = ? WHERE id = ?",
                        BigDecimal.valueOf(random.nextInt(-50, 80), 2));
            } else if (dice < 70) {
                return update(c, "UPDATE product SET stock = GREATEST(0, stock + ?), updated_at = ? WHERE id = ?", random.nextInt(-5, 10));
            } else if (dice < 90) {
                int id = nextId.incrementAndGet();
                // As a store's application would: the new product's photo is saved, then the product row references it. The
                // hub shows the row only once the photo is there too (files: {image: images}).
                String image = String.format("item-%05d.jpg", id);
                if (!writeFile(images(siteId(site)).resolve(image), 1024 + random.nextInt(3 * 1024), random)) {
                    image = null;
                }
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO product VALUES (?, ?, ?, ?, ?, ?, ?)")) {
                    ps.setLong(1, id);
                    ps.setString(2, "NEW-" + id);
                    ps.setString(3, "New product " + id + " \u00e9t\u00e9 \u2603");
                    ps.setBigDecimal(4, BigDecimal.valueOf(random.nextInt(100, 100_000), 2));
                    ps.setInt(5, random.nextInt(0, 100));
                    ps.setObject(6, LocalDateTime.now().withNano(0));
                    ps.setString(7, image);
                    return ps.executeUpdate();
                }
            }
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM product WHERE id = ?")) {
                ps.setLong(1, randomId());
                return ps.executeUpdate();
            }
        }

        @Override
        void committed(int changed) {
            committed.incrementAndGet();
            captured.addAndGet(changed);
        }

        @Override
        void refused() {
            failed.incrementAndGet();
        }

        private long randomId() {
            return 1 + random.nextInt(nextId.get());
        }

        private int update(Connection c, String sql, Object delta) throws SQLException {
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setObject(1, delta);
                ps.setObject(2, LocalDateTime.now().withNano(0));
                ps.setLong(3, randomId());
                return ps.executeUpdate();
            }
        }
    }

    /** HQ's catalog work: new items, list prices, items moved to another region or to every region, withdrawals. */
    private static final class CatalogWorkload extends Workload {
        private final SplittableRandom random = new SplittableRandom(2026);
        private final AtomicInteger nextId = new AtomicInteger(INITIAL_ITEMS);
        private final AtomicLong changes = new AtomicLong();
        private final AtomicLong shelfEdits;

        CatalogWorkload(String url, AtomicLong shelfEdits) {
            super(url);
            this.shelfEdits = shelfEdits;
        }

        @Override
        int transaction(Connection c) throws SQLException {
            if (random.nextInt(10) == 0) { // HQ notes on shelves: they meet the sites' edits of the same rows
                shelfEdits.incrementAndGet();
                try (PreparedStatement ps = c.prepareStatement("UPDATE shelf_stock SET note = ? WHERE shelf = ?")) {
                    ps.setString(1, "checked by HQ " + random.nextInt(1000));
                    ps.setString(2, shelf(1 + random.nextInt(SHELVES)));
                    return ps.executeUpdate();
                }
            }
            int dice = random.nextInt(100);
            long id = 1 + random.nextInt(nextId.get());
            String region = random.nextInt(4) == 0 ? null : REGIONS[random.nextInt(REGIONS.length)];
            String sql = dice < 50 ? "UPDATE catalog_item SET list_price = list_price + ?, updated_at = ? WHERE id = ?"
                    : dice < 75 ? "UPDATE catalog_item SET region = ?, updated_at = ? WHERE id = ?"
                    : dice < 92 ? "INSERT INTO catalog_item (list_price, updated_at, id, name, region) VALUES (?, ?, ?, ?, ?)"
                    : "DELETE FROM catalog_item WHERE id = ?";
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                if (dice >= 92) {
                    ps.setLong(1, id);
                } else {
                    ps.setObject(1, dice < 50 ? BigDecimal.valueOf(random.nextInt(-20, 50), 2)
                            : dice < 75 ? region : BigDecimal.valueOf(random.nextInt(100, 100_000), 2));
                    ps.setObject(2, LocalDateTime.now().withNano(0));
                    ps.setLong(3, dice < 75 ? id : nextId.incrementAndGet());
                    if (dice >= 75) {
                        ps.setString(4, "New catalog item \u00e9t\u00e9");
                        ps.setString(5, region);
                    }
                }
                return ps.executeUpdate();
            }
        }

        @Override
        void committed(int changed) {
            changes.addAndGet(changed);
        }
    }

    private boolean compare() throws SQLException {
        out.println();
        out.printf("%-9s %10s %10s  %-12s  %-12s  %-6s %8s %8s  %-12s  %-7s  %s%n", "site", "rows@site", "rows@hub", "sum@site", "sum@hub",
                "region", "catalog", "share", "shelves", "images", "match");
        int mismatches = 0;
        long totalRows = 0;
        H2Dialect dialect = new H2Dialect();
        try (Connection hub = DriverManager.getConnection(url("hub"))) {
            TableChecksum.Result shelvesAtHub = TableChecksum.of(hub, dialect, "shelf_stock");
            for (int i = 1; i <= siteCount; i++) {
                String id = siteId(i);
                TableChecksum.Result atSite;
                try (Connection site = DriverManager.getConnection(url(id))) {
                    atSite = TableChecksum.of(site, dialect, "product");
                }
                TableChecksum.Result atHub = TableChecksum.of(hub, dialect, "product", "site_id", id);
                TableChecksum.Result catalogAtSite;
                TableChecksum.Result shelves;
                try (Connection site = DriverManager.getConnection(url(id))) {
                    catalogAtSite = TableChecksum.of(site, dialect, "catalog_item");
                    shelves = TableChecksum.of(site, dialect, "shelf_stock");
                }
                TableChecksum.Result share = TableChecksum.where(hub, dialect, "catalog_item", SHARE.formatted(region(i)));
                long[] pics = new long[2];
                boolean imagesOk = imagesMatch(i, pics);
                boolean match = atSite.equals(atHub) && catalogAtSite.equals(share) && shelves.equals(shelvesAtHub) && imagesOk;
                mismatches += match ? 0 : 1;
                totalRows += atSite.rows();
                out.printf("%-9s %10d %10d  %-12s  %-12s  %-6s %8d %8d  %-12s  %-7s  %s%n", id, atSite.rows(), atHub.rows(), atSite.shortSha(),
                        atHub.shortSha(), region(i), catalogAtSite.rows(), share.rows(), shelves.shortSha(), pics[0] + "/" + pics[1],
                        match ? "yes" : "NO");
            }
            long hubRows;
            try (Statement s = hub.createStatement(); ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM product")) {
                rs.next();
                hubRows = rs.getLong(1);
            }
            long conflicts;
            try (Statement s = hub.createStatement(); ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM sync_conflict")) {
                rs.next();
                conflicts = rs.getLong(1);
            }
            // Rows and files together: no product at the hub names an image the hub does not hold.
            long withImage = 0;
            long imageMissing = 0;
            try (Statement s = hub.createStatement();
                 ResultSet rs = s.executeQuery("SELECT site_id, image FROM product WHERE image IS NOT NULL")) {
                while (rs.next()) {
                    withImage++;
                    if (!Files.isRegularFile(images("hq").resolve(rs.getString(1)).resolve(rs.getString(2)))) {
                        imageMissing++;
                    }
                }
            }
            out.printf("%nproducts at the hub that reference an image: %d; of them without their image at the hub: %d%n", withImage,
                    imageMissing);

            out.printf("%nhub table holds %d rows; the sites hold %d. Catalog and share: the site's copy of the hub's catalog_item, "
                    + "and the hub's rows of the site's region or of none. Shelves: the site's shelf_stock (two-way), the hub's is %s; "
                    + "%d conflicts settled by column merge, each in sync_conflict. Images: the site's product images and the hub's copy "
                    + "of them (a file channel; every file compared byte for byte).%n%s%n", hubRows, totalRows, shelvesAtHub.shortSha(), conflicts,
                    mismatches == 0 && hubRows == totalRows ? "Every site matches the hub." : mismatches + " sites DO NOT match.");
            return mismatches == 0 && hubRows == totalRows && imageMissing == 0;
        }
    }

    private static java.util.concurrent.ThreadFactory daemon(String name) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    static void deleteTree(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort clean-up of a temporary folder
                }
            });
        } catch (IOException ignored) {
            // nothing to clean
        }
    }
}
