package io.syncline.node;

import io.syncline.api.FileChannelSpec;
import io.syncline.engine.files.SafePath;
import java.io.IOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.FileSystems;
import java.nio.file.FileVisitResult;
import java.nio.file.LinkOption;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchEvent;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * Runs the walks of the folders a node sends files from, on one thread of its own: each folder is walked in full at
 * start and `interval` after the end of the last whole walk (the safety net for lost notifications and for what changed
 * while the node was down), and, in between, in part when the file system reports a change (WatchService): only the
 * folders it named, each with everything below it, so that one changed file in a tree of a million does not cost a
 * million looks. A burst of events is one walk, once no event came for QUIET_MILLIS, or SETTLE_MILLIS after its first.
 * A change in a folder's top level, a lost event (overflow) or a wake makes the walk a whole one; more than MAX_FOLDERS
 * folders at once, a walk of the deepest folder that holds them all (whole when that is the top). A walk that fails is
 * tried again, in full, after a growing pause; one whose walk was recorded but whose sending failed
 * (AfterWalkException) is tried again after the pause without a whole walk; a folder that is busy keeps what was heard
 * of it and is walked again after BUSY_MILLIS. A file a walk found gone and held back (Walk#walk)
 * has its folder walked again with the next burst, or after HOLD_MILLIS if none comes, so that a move whose two ends
 * are heard in different bursts is one walk's, and found. Folders are watched before they are walked: every
 * folder at a whole walk, a folder that appears as soon as its creation is heard of. No interrupts: they would close the
 * embedded databases' files.
 */
final class FolderWatch implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FolderWatch.class);
    /** A burst of events has settled when none came for this long... */
    private static final long QUIET_MILLIS = 20;
    /** ...or when this long has passed since its first event, whichever comes first. */
    private static final long SETTLE_MILLIS = 100;
    /**
     * A walk of more folders than this (after those inside others are left out) walks the deepest folder that holds them
     * all instead (the whole folder when that is its top).
     */
    static final int MAX_FOLDERS = 64;
    /** Folders heard of before a walk beyond this many make it a whole walk (bounds what is kept meanwhile). */
    private static final int MAX_HEARD = 4096;
    /** A folder that was busy is walked again after this long. */
    private static final long BUSY_MILLIS = 250;
    /** The folder of a file found gone and held back is walked again after this long, if no burst came before. */
    static final long HOLD_MILLIS = 250;
    /** Files reported modified beyond this many in one burst: their folders are walked (see Walk#walk's edited). */
    static final int MAX_EDITED = 1_000;

    /** A folder to walk, and its channel. */
    record Target(FileChannelSpec channel, Path folder) {
    }

    /** Walks one folder (and sends what it found); throws to have it tried again, in full, after a pause. */
    @FunctionalInterface
    interface Walk {
        /**
         * @param under the folders, relative to the target's, where the file system reported changes, each to walk with
         *              everything below it; empty: none there (what was recorded before may still be sent); null: the
         *              whole folder
         * @param edited null, or the files (relative paths, in {@code under}) that are all that changed there: the file
         *              system reported only changes of content, time or permissions, no file or folder made, moved or
         *              deleted. The walk may look at these files alone instead of walking {@code under}
         * @param held  the paths, relative to the target's folder, of files a walk of heard folders found gone and did not
         *              record as deleted yet (FileOutbox.recordWalk): read and replaced by the walk; their folders are
         *              walked again, with the next burst or soon (after a failed walk, the next is a whole one, which
         *              needs none of it)
         * @return false when the folder cannot be walked now (busy): what was heard of it is kept, and it is walked again soon
         * @throws AfterWalkException when the walk was recorded but what comes after it (the sending) failed: tried again
         *                            after a pause, without a whole walk
         */
        boolean walk(Target t, List<String> under, List<String> edited, Set<String> held) throws Exception;
    }

    /** See {@link Walk#walk}: the walk was recorded; what came after it failed. */
    static final class AfterWalkException extends Exception {
        AfterWalkException(Exception cause) {
            super(cause.getMessage(), cause);
        }
    }

    /** A watched folder: its key, and the file (inode) it was watched as, to notice a folder renamed and another made in its place. */
    private record Watched(WatchKey key, Object fileKey) {
    }

    private final String name;
    private final Duration interval;
    private final Supplier<List<Target>> targets;
    private final Walk walk;
    private final WatchService watcher;
    private final Map<Path, Watched> watched = new ConcurrentHashMap<>();
    private final Backoff backoff = new Backoff(Duration.ofMillis(500), Duration.ofSeconds(30), new java.util.Random());
    private final Thread thread;
    /** Folders where changes were heard of since the last walk (this thread only). */
    private final Set<Path> heard = new HashSet<>();
    /**
     * Files reported modified (content, time or permissions) since the last walk, while nothing was reported made, moved
     * or deleted; null once something was, or beyond MAX_EDITED (this thread only). See Walk#walk's edited.
     */
    private Set<Path> edited = new HashSet<>();
    /** Folders that appeared since the last walk, to watch before it (this thread only). */
    private final Set<Path> appeared = new HashSet<>();
    /** Per target, the files its last walk held back (Walk#walk; this thread only). */
    private final Map<Target, Set<String>> held = new java.util.HashMap<>();
    /** The targets walked in full since their last failure (this thread only): the others are walked in full. */
    private final Set<Target> whole = new HashSet<>();
    /** The next walk is a whole one (the start, an overflow, a wake). */
    private final java.util.concurrent.atomic.AtomicBoolean everything = new java.util.concurrent.atomic.AtomicBoolean(true);
    private volatile boolean closed;
    private volatile boolean woken;
    volatile String lastError;

    FolderWatch(String threadName, Duration interval, Supplier<List<Target>> targets, Walk walk) throws IOException {
        this.name = threadName;
        this.interval = interval;
        this.targets = targets;
        this.walk = walk;
        this.watcher = FileSystems.getDefault().newWatchService();
        this.thread = new Thread(this::loop, threadName);
        thread.setDaemon(true);
        thread.start();
    }

    /** Walks every folder in full soon (within a quarter of a second). */
    void wake() {
        everything.set(true);
        woken = true;
    }

    private void loop() {
        long nextWhole = System.nanoTime();
        while (!closed) {
            boolean full = everything.getAndSet(false) | System.nanoTime() - nextWhole >= 0;
            if (full) {
                whole.clear();
            }
            List<Path> changed = new ArrayList<>(heard);
            List<Path> fresh = new ArrayList<>(appeared);
            List<Path> edits = full || edited == null ? null : new ArrayList<>(edited);
            heard.clear();
            appeared.clear();
            edited = new HashSet<>();
            boolean failed = false;
            boolean busy = false;
            boolean holding = false;
            List<Target> all = targets.get();
            held.keySet().retainAll(all);
            whole.retainAll(all); // (a target that comes back is walked in full: what was held of it is forgotten)
            for (Target t : all) {
                Set<String> heldBack = held.computeIfAbsent(t, k -> new HashSet<>());
                try {
                    // A sending folder that is not there (not mounted, moved) is an error, never "every file deleted".
                    if (!Files.isDirectory(t.folder())) {
                        throw new IOException("folder " + t.folder() + " does not exist or is not a folder (not mounted?); nothing "
                                + "is sent, and no file is taken as deleted, until it is there");
                    }
                    List<String> under = whole.contains(t) ? under(t.folder(), changed) : null;
                    // Only edits heard (nothing made, moved or deleted) and nothing held back, whose folders must be
                    // looked at again: the walk may look at the edited files alone, and no folder is new to watch.
                    List<String> files = whole.contains(t) && edits != null && heldBack.isEmpty() ? edited(t.folder(), edits) : null;
                    if (files == null && under == null) {
                        watchQuietly(t.folder(), all, true);
                    } else if (files == null) {
                        for (Path f : fresh) {
                            if (f.startsWith(t.folder())) {
                                watchQuietly(f, all, false);
                            }
                        }
                    }
                    if (!walk.walk(t, under, files, heldBack)) {
                        busy = true;
                        if (under == null) {
                            whole.remove(t);
                        }
                        for (Path d : changed) {
                            if (d.startsWith(t.folder())) {
                                heard.add(d);
                            }
                        }
                        edited = null; // (what this walk was told is not kept: its folders are walked)
                        continue;
                    }
                    whole.add(t);
                    holding |= hear(t, heldBack);
                } catch (AfterWalkException e) {
                    failed = true;
                    whole.add(t); // the walk was recorded: only the sending is tried again
                    holding |= hear(t, heldBack);
                    lastError = "files of channel '" + t.channel().name() + "': " + e.getMessage();
                    LOG.warn("{}: {}", name, lastError);
                } catch (Exception e) {
                    failed = true;
                    whole.remove(t);
                    lastError = "files of channel '" + t.channel().name() + "': " + e.getMessage();
                    LOG.warn("{}: {}", name, lastError);
                }
            }
            watched.entrySet().removeIf(e -> !e.getValue().key().isValid());
            if (full) {
                nextWhole = System.nanoTime() + interval.toNanos(); // from its end: a walk longer than the interval leaves room for others
            }
            if (!failed) {
                backoff.reset();
            }
            long until = failed ? System.nanoTime() + backoff.next().toNanos() : nextWhole;
            // (a failure's pause stands even when another folder was busy: a failing one is not walked again at once)
            long soon = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(holding ? HOLD_MILLIS : BUSY_MILLIS);
            waitForChange((busy || holding) && !failed ? Math.min(until, soon) : until);
        }
    }

    /**
     * The files of {@code edits} in {@code folder}, relative to it and in path order; null when none is in it, or when
     * one of them is a folder or has a name that cannot travel (the folders heard are walked then).
     */
    static List<String> edited(Path folder, List<Path> edits) {
        java.util.TreeSet<String> out = new java.util.TreeSet<>();
        for (Path f : edits) {
            if (!f.startsWith(folder) || f.equals(folder)) {
                continue; // another target's
            }
            if (Files.isDirectory(f, LinkOption.NOFOLLOW_LINKS)) {
                return null; // a folder's time or permissions: what is in it is walked
            }
            String path = SafePath.of(folder, f);
            try {
                SafePath.check(path);
            } catch (io.syncline.api.UnsafePathException e) {
                return null;
            }
            out.add(path);
        }
        return out.isEmpty() ? null : new ArrayList<>(out);
    }

    /** Has the folders of the files {@code heldBack} from {@code t} walked again with the next walk; true if any. */
    private boolean hear(Target t, Set<String> heldBack) {
        for (String path : heldBack) {
            heard.add(t.folder().resolve(path).getParent());
        }
        return !heldBack.isEmpty();
    }

    /** Watches the folders under {@code start}; with {@code whole}, forgets those gone from under it. Failures are logged. */
    private void watchQuietly(Path start, List<Target> all, boolean whole) {
        try {
            Set<Path> found = watch(start, all);
            if (whole) {
                forgetGone(start, found);
            }
        } catch (IOException | RuntimeException e) { // e.g. the system's limit of watches: the timed walks go on
            LOG.warn("{}: cannot watch {} ({}); changes there are seen at the next timed walk", name, start, e.toString());
        }
    }

    /**
     * The folders, relative to {@code folder}, to walk for changes heard of in {@code changed}, without those inside
     * another; null (walk it all) when a change was in its top level; with more than MAX_FOLDERS folders, the deepest
     * folder that holds them all (null when that is the top). A folder that is no longer there is walked from the nearest one above it that is (a folder renamed or removed since: its
     * parent heard of that, and is walked too); so is one whose name cannot travel (SafePath.check; a whole walk leaves
     * its files out with a warning).
     */
    static List<String> under(Path folder, List<Path> changed) {
        // Ordered with '/' first, so that a folder comes right before those inside it ("a", "a/b", "a b").
        java.util.TreeSet<String> rel = new java.util.TreeSet<>(java.util.Comparator.comparing((String r) -> r.replace('/', '\0')));
        for (Path d : changed) {
            if (!d.startsWith(folder)) {
                continue;
            }
            while (!d.equals(folder) && (!Files.isDirectory(d, LinkOption.NOFOLLOW_LINKS) || !travels(SafePath.of(folder, d)))) {
                d = d.getParent();
            }
            if (d.equals(folder)) {
                return null;
            }
            rel.add(SafePath.of(folder, d));
        }
        List<String> out = new ArrayList<>();
        for (String r : rel) {
            if (out.isEmpty() || !(r.startsWith(out.get(out.size() - 1)) && r.charAt(out.get(out.size() - 1).length()) == '/')) {
                out.add(r);
            }
        }
        if (out.size() <= MAX_FOLDERS) {
            return out;
        }
        String common = commonFolder(out);
        return common == null ? null : List.of(common);
    }

    /** The deepest folder that holds every one of {@code folders} (relative, '/'-separated), or null for the top. */
    private static String commonFolder(List<String> folders) {
        String[] common = folders.get(0).split("/");
        int n = common.length;
        for (String f : folders) {
            String[] s = f.split("/");
            int i = 0;
            while (i < n && i < s.length && s[i].equals(common[i])) {
                i++;
            }
            n = i;
        }
        return n == 0 ? null : String.join("/", java.util.Arrays.copyOf(common, n));
    }

    private static boolean travels(String path) {
        try {
            SafePath.check(path);
            return true;
        } catch (io.syncline.api.UnsafePathException e) {
            return false;
        }
    }

    /** Sleeps until {@code deadline} (System.nanoTime), a wake, or a change in a watched folder (then lets the burst settle). */
    private void waitForChange(long deadline) {
        try {
            while (!closed && !woken) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return;
                }
                WatchKey k = watcher.poll(Math.min(left, TimeUnit.MILLISECONDS.toNanos(250)), TimeUnit.NANOSECONDS);
                if (k != null) {
                    long settled = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(SETTLE_MILLIS);
                    do {
                        drain(k);
                        long wait = Math.min(TimeUnit.MILLISECONDS.toNanos(QUIET_MILLIS), settled - System.nanoTime());
                        k = wait > 0 ? watcher.poll(wait, TimeUnit.NANOSECONDS) : null;
                    } while (k != null);
                    while ((k = watcher.poll()) != null) { // (what came at the last moment goes with it)
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

    /** Notes where the key's events happened: its folder, and the folders that appeared in it. */
    private void drain(WatchKey k) {
        Path dir = (Path) k.watchable();
        for (WatchEvent<?> e : k.pollEvents()) {
            if (e.kind() == StandardWatchEventKinds.OVERFLOW) {
                everything.set(true); // events were lost
                edited = null;
                continue;
            }
            heard.add(dir);
            if (edited != null) {
                if (e.kind() == StandardWatchEventKinds.ENTRY_MODIFY && e.context() instanceof Path child && edited.size() < MAX_EDITED) {
                    edited.add(dir.resolve(child));
                } else {
                    edited = null; // made, moved or deleted (or too many): the folders are walked
                }
            }
            if (e.kind() == StandardWatchEventKinds.ENTRY_CREATE && e.context() instanceof Path child
                    && Files.isDirectory(dir.resolve(child), LinkOption.NOFOLLOW_LINKS)) {
                appeared.add(dir.resolve(child));
            }
        }
        k.reset();
        if (heard.size() + appeared.size() > MAX_HEARD) {
            everything.set(true);
            heard.clear();
            appeared.clear();
            edited = null;
        }
    }

    /**
     * Watches every folder under {@code start} (itself included) but Syncline's own working folder of a target; returns
     * the folders it found. A {@code start} that is a symbolic link (a target's folder given as one) is walked where it
     * leads, and its folders are watched by their names under it, which the events and the walks use; unless another
     * target's folder is inside it or around it: the file system watches a folder once, under one name, and the other
     * target would lose its watches (it is walked at the timed walks only, with a warning).
     */
    private Set<Path> watch(Path start, List<Target> all) throws IOException {
        Set<Path> found = new HashSet<>();
        Path real = Files.isSymbolicLink(start) ? start.toRealPath() : start;
        if (real != start) {
            for (Target other : all) {
                Path o;
                try {
                    o = other.folder().equals(start) ? null : other.folder().toRealPath();
                } catch (IOException e) {
                    continue; // not there (that target's walk says so)
                }
                if (o != null && (o.startsWith(real) || real.startsWith(o))) {
                    throw new IOException("it leads to " + real + ", which shares folders with the folder of channel '"
                            + other.channel().name() + "' (" + other.folder() + ")");
                }
            }
        }
        Files.walkFileTree(real, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path visited, BasicFileAttributes attrs) throws IOException {
                Path dir = real == start ? visited : start.resolve(real.relativize(visited));
                if (dir.getFileName() != null && dir.getFileName().toString().equals(SafePath.WORK_DIR)
                        && all.stream().anyMatch(t -> t.folder().equals(dir.getParent()))) {
                    return FileVisitResult.SKIP_SUBTREE;
                }
                found.add(dir);
                Watched w = watched.get(dir);
                if (w == null || !w.key().isValid() || !dir.equals(w.key().watchable()) || !java.util.Objects.equals(w.fileKey(), attrs.fileKey())) {
                    WatchKey k = register(dir);
                    if (w != null && w.key() != k) {
                        w.key().cancel(); // another folder's, that had this name (moved away; it might still be watched)
                    }
                    if (!dir.equals(k.watchable())) {
                        // The file system watches this folder already, under the name it had (renamed since): events
                        // would name that one. Watched again under this name.
                        k.cancel();
                        k = register(dir);
                    }
                    watched.put(dir, new Watched(k, attrs.fileKey()));
                }
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFileFailed(Path file, IOException e) {
                return FileVisitResult.CONTINUE;
            }
        });
        return found;
    }

    /**
     * After a whole walk of {@code folder}: stops watching what is no longer a folder under it by that name (a folder
     * moved out of it is still watched by the file system, which would name it as it was).
     */
    private void forgetGone(Path folder, Set<Path> found) {
        for (var it = watched.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Path, Watched> e = it.next();
            if (e.getKey().startsWith(folder) && !found.contains(e.getKey())) {
                e.getValue().key().cancel();
                it.remove();
            }
        }
    }

    private WatchKey register(Path dir) throws IOException {
        return dir.register(watcher, StandardWatchEventKinds.ENTRY_CREATE, StandardWatchEventKinds.ENTRY_DELETE, StandardWatchEventKinds.ENTRY_MODIFY);
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
            LOG.warn("{}: did not end within 10 s of stopping", name);
        }
    }
}
