package io.syncline.node;

import io.syncline.api.FileChannelSpec;
import io.syncline.engine.files.SafePath;
import java.io.IOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.FileSystems;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * Runs the walks of the folders a node sends files from, on one thread of its own: each folder is walked at start,
 * when the file system reports a change in it (WatchService; a burst of events is one walk, once no event came for
 * QUIET_MILLIS, or SETTLE_MILLIS after its first) and every `interval` in any case, the safety net for lost notifications and for what changed while the node
 * was down. A walk that fails is tried again after a growing pause. Folders are watched before they are walked, and
 * folders that appear are watched from the next walk on. No interrupts: they would close the embedded databases' files.
 */
final class FolderWatch implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FolderWatch.class);
    /** A burst of events has settled when none came for this long... */
    private static final long QUIET_MILLIS = 20;
    /** ...or when this long has passed since its first event, whichever comes first. */
    private static final long SETTLE_MILLIS = 100;

    /** A folder to walk, and its channel. */
    record Target(FileChannelSpec channel, Path folder) {
    }

    /** Walks one folder (and sends what it found); throws to have it tried again soon. */
    @FunctionalInterface
    interface Walk {
        void walk(Target t) throws Exception;
    }

    private final String name;
    private final Duration interval;
    private final Supplier<List<Target>> targets;
    private final Walk walk;
    private final WatchService watcher;
    private final Map<Path, WatchKey> watched = new ConcurrentHashMap<>();
    private final Backoff backoff = new Backoff(Duration.ofMillis(500), Duration.ofSeconds(30), new java.util.Random());
    private final Thread thread;
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

    /** Walks every folder soon (within a quarter of a second). */
    void wake() {
        woken = true;
    }

    private void loop() {
        while (!closed) {
            boolean failed = false;
            for (Target t : targets.get()) {
                try {
                    // A sending folder that is not there (not mounted, moved) is an error, never "every file deleted".
                    if (!Files.isDirectory(t.folder())) {
                        throw new IOException("folder " + t.folder() + " does not exist or is not a folder (not mounted?); nothing "
                                + "is sent, and no file is taken as deleted, until it is there");
                    }
                    try {
                        watch(t.folder());
                    } catch (IOException | RuntimeException e) { // e.g. the system's limit of watches: the timed walks go on
                        LOG.warn("{}: cannot watch {} ({}); changes there are seen at the next timed walk", name, t.folder(), e.toString());
                    }
                    walk.walk(t);
                } catch (Exception e) {
                    failed = true;
                    lastError = "files of channel '" + t.channel().name() + "': " + e.getMessage();
                    LOG.warn("{}: {}", name, lastError);
                }
            }
            if (!failed) {
                backoff.reset();
            }
            waitForChange(System.nanoTime() + (failed ? backoff.next() : interval).toNanos());
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

    private static void drain(WatchKey k) {
        k.pollEvents();
        k.reset();
    }

    /** Watches every folder under {@code root} but Syncline's own working folder. */
    private void watch(Path root) throws IOException {
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
                if (dir.getFileName() != null && dir.getFileName().toString().equals(SafePath.WORK_DIR) && root.equals(dir.getParent())) {
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
