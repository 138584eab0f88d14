package io.syncline.engine.files;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/*
 * Frees the space of large files a receiver replaced or deleted after the fact, on a thread of its own, so that the
 * file's new version is in place (and the exchange answered) without waiting for it. Unlinking the last name of a file
 * frees its blocks and drops its cached pages there and then: on ext4 about 0.85 s a GiB (measured on this project's
 * machine, rename over a cached 1 GiB file: 0.80 to 0.94 s; with the old file linked elsewhere first: under 1 ms, and
 * deleting that link later took the 0.8 to 0.9 s instead). So the old version of a large file gets a second name in the
 * working folder (<uuid>.old) just before the new one is renamed over it, and that name is deleted here afterwards. A
 * file system without hard links simply pays the cost in place. What a process that died left behind is deleted at
 * the folder's first use in the next process (FileFolder's first look at its working folder). Only files of LARGE bytes
 * or more: below, the two extra calls cost more than they save. The space is given back later than before: a batch
 * that deletes large files and then receives others on a nearly full disk can run out of space meanwhile (it fails and
 * is retried, keeping what it wrote, as any failed transfer).
 */
final class Reaper {
    /** Files from this size on are set aside rather than freed in place. */
    static final long LARGE = 1L << 20;
    static final String SUFFIX = ".old";
    /** What the reaper names a second name: a random UUID and {@link #SUFFIX} (only such names are deleted as leftovers). */
    private static final java.util.regex.Pattern NAME = java.util.regex.Pattern.compile("[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\\.old");
    /**
     * One daemon thread; at most 1,024 files waiting (beyond, the caller deletes its own). Daemon, like the flush
     * threads: a file it had not deleted when the process ended is deleted when the folder is next used. Package-private
     * so that a test can hold it and see what waits.
     */
    static final ThreadPoolExecutor THREAD = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new ArrayBlockingQueue<>(1024), r -> {
        Thread t = new Thread(r, "syncline-file-reaper");
        t.setDaemon(true);
        return t;
    }, new ThreadPoolExecutor.CallerRunsPolicy());

    private Reaper() {
    }

    /**
     * Gives {@code file} a second name in {@code work} when it is a regular file of at least {@link #LARGE} bytes, so
     * that renaming over it or deleting it does not free it; returns that name (for {@link #release} or {@link #keep}),
     * or null when nothing was done (no such file, small, not a regular file, no hard links here). Costs one stat(2)
     * for a small or missing file (no exception).
     */
    static Path setAside(Path file, Path work) {
        if (file.toFile().length() < LARGE) { // 0 when missing; follows a link, which the check below does not
            return null;
        }
        try {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            if (!a.isRegularFile() || a.size() < LARGE) {
                return null;
            }
            Path aside = work.resolve(UUID.randomUUID() + SUFFIX);
            Files.createLink(aside, file); // on Linux, link(2) does not follow a link that replaced the file meanwhile
            return aside;
        } catch (IOException | UnsupportedOperationException e) {
            return null; // (gone, or no hard links on this file system): freed in place
        }
    }

    /** The file was replaced or deleted: its second name {@code aside} (null: none) is deleted on the reaper's thread. */
    static void release(Path aside) {
        if (aside != null) {
            THREAD.execute(() -> deleteQuietly(aside));
        }
    }

    /** The replacement failed and the file stays where it was: its second name {@code aside} (null: none) goes at once. */
    static void keep(Path aside) {
        if (aside != null) {
            deleteQuietly(aside); // the file still has its own name: nothing is freed, this is quick
        }
    }

    /** Deletes, on the reaper's thread, the second names a process that died left in {@code work} (named as above only). */
    static void releaseLeftovers(Path work) throws IOException {
        try (DirectoryStream<Path> left = Files.newDirectoryStream(work, f -> NAME.matcher(f.getFileName().toString()).matches())) {
            for (Path f : left) {
                release(f);
            }
        }
    }

    private static void deleteQuietly(Path f) {
        try {
            Files.deleteIfExists(f);
        } catch (IOException e) {
            // left for the next start's look at the working folder
        }
    }
}
