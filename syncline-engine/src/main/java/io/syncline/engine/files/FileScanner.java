package io.syncline.engine.files;

import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFileAttributes;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/*
 * Finds what changed in a channel's folder since the state the node last recorded. A file whose length, modification
 * time and permissions are as recorded is taken as unchanged without reading it, except when it was modified in the
 * last two seconds (a write in the same clock tick as the last scan would otherwise go unseen); every other file is
 * hashed. A file that disappeared while another appeared with the same content is a move, so its content is not sent
 * again. A file that changes while it is hashed is left for the next scan (what was recorded of it stands meanwhile:
 * it is not taken as deleted). Symbolic links and other special files are
 * not synced, nor is Syncline's working folder. Patterns are globs: one without '/' matches a file name in any
 * folder ("*.jpg"), one with '/' the whole relative path ("images/**").
 */
public final class FileScanner {
    static final long RACY_MILLIS = 2000;
    private final Path root;
    private final List<PathMatcher> include;
    private final List<PathMatcher> exclude;
    private final List<Boolean> includeByName;
    private final List<Boolean> excludeByName;

    /** A difference between the folder and the recorded state. */
    public sealed interface Change permits Put, Delete, Move {
        String path();
    }

    /** A new file, new content, or new time or permissions. */
    public record Put(FileMeta meta) implements Change {
        public String path() {
            return meta.path();
        }
    }

    /** A file that is gone (or no longer matches the channel's patterns). */
    public record Delete(String path) implements Change {
    }

    /** A file renamed or moved: the same content at another path. */
    public record Move(String from, FileMeta to) implements Change {
        public String path() {
            return to.path();
        }
    }

    public FileScanner(Path root, List<String> include, List<String> exclude) {
        Path real;
        try {
            real = root.toRealPath(); // a folder given as a symbolic link is walked where it leads
        } catch (IOException e) {
            real = root;
        }
        this.root = real;
        this.include = matchers(include);
        this.exclude = matchers(exclude);
        this.includeByName = include.stream().map(p -> !p.contains("/")).toList();
        this.excludeByName = exclude.stream().map(p -> !p.contains("/")).toList();
    }

    private static List<PathMatcher> matchers(List<String> globs) {
        List<PathMatcher> out = new ArrayList<>();
        for (String g : globs) {
            try {
                out.add(FileSystems.getDefault().getPathMatcher("glob:" + g));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("file pattern '" + g + "' is not a valid glob: " + e.getMessage(), e);
            }
        }
        return out;
    }

    /** True when a file (of any kind, links not followed) is at relative path {@code path}, whether the channel takes it or not. */
    public boolean present(String path) {
        return Files.exists(root.resolve(path), java.nio.file.LinkOption.NOFOLLOW_LINKS);
    }

    /**
     * One file looked at alone, as a walk of its folder would look at it (hashed unless its record {@code known} says
     * it is unchanged): its state now, or {@code known} while it is being written (as a walk leaves it). Null when
     * {@code path} is not a plain file the channel takes (gone, a folder, a link or a way through one, left out by the
     * patterns), when the file has other names (hard links: written through one of them, the others changed too, and
     * the file system names only the one written), or when it is new and being written: its folder must be walked.
     */
    public FileMeta lookAt(String path, FileMeta known, long nowMillis) throws IOException {
        if (!matches(path)) {
            return null;
        }
        Path file;
        BasicFileAttributes attrs;
        try {
            file = SafePath.resolve(root, path);
            try {
                attrs = Files.readAttributes(file, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            } catch (UnsupportedOperationException e) {
                attrs = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            }
        } catch (io.syncline.api.UnsafePathException | NoSuchFileException e) {
            return null;
        }
        if (!attrs.isRegularFile() || links(file) > 1) {
            return null; // (a file with other names may have changed under them too, which a walk of the folders finds)
        }
        return look(file, path, attrs, known, null, nowMillis, null).meta();
    }

    /** How many names the file has (hard links; 1 where the file system does not say). */
    private static int links(Path file) throws IOException {
        try {
            return ((Number) Files.getAttribute(file, "unix:nlink", LinkOption.NOFOLLOW_LINKS)).intValue();
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return 1;
        }
    }

    /** True when the channel takes the file at relative path {@code path}. */
    public boolean matches(String path) {
        String name = path.substring(path.lastIndexOf('/') + 1);
        boolean in = include.isEmpty();
        for (int i = 0; i < include.size() && !in; i++) {
            in = include.get(i).matches(Path.of(includeByName.get(i) ? name : path));
        }
        for (int i = 0; i < exclude.size() && in; i++) {
            in = !exclude.get(i).matches(Path.of(excludeByName.get(i) ? name : path));
        }
        return in;
    }

    /**
     * The changes from {@code known} (path to what was last recorded) to the folder now: deletions first, then moves,
     * then the other new and changed files, each in path order.
     */
    public List<Change> scan(Map<String, FileMeta> known, long nowMillis) throws IOException {
        return scan(known, nowMillis, skipped -> { });
    }

    /** As above; {@code unsyncable} hears of each file whose path cannot travel (SafePath.check refuses it), with the reason. */
    public List<Change> scan(Map<String, FileMeta> known, long nowMillis, java.util.function.Consumer<String> unsyncable) throws IOException {
        return scan(known, nowMillis, unsyncable, null);
    }

    /**
     * As above, for only the folders {@code under} (relative paths, each walked with everything below it; null: the
     * whole folder): the files recorded elsewhere in {@code known} are left out, neither compared nor taken as deleted.
     * A folder in the list that is gone, or is no longer a folder (a file, a link: links are never followed), has nothing
     * in it. Lets a node that heard from the file system where something changed walk only there.
     */
    public List<Change> scan(Map<String, FileMeta> known, long nowMillis, java.util.function.Consumer<String> unsyncable, List<String> under)
            throws IOException {
        return scan(known, nowMillis, unsyncable, under, Map.of());
    }

    /**
     * As above; a file whose length, time and permissions are as in {@code hashed} (by path: what a walk of this folder
     * hashed a moment ago) takes its hash from there instead of being read again.
     */
    public List<Change> scan(Map<String, FileMeta> known, long nowMillis, java.util.function.Consumer<String> unsyncable, List<String> under,
                             Map<String, FileMeta> hashed) throws IOException {
        return scan(known, nowMillis, unsyncable, under, hashed, null);
    }

    /** Told of each file a walk finds that has no record, as soon as it is found (the walk goes on after it). */
    @FunctionalInterface
    public interface Fresh {
        /**
         * {@code whole}: the walk read the file whole, into the room {@link #content} reserved for it last, and its
         * bytes there hash to {@code file}'s hash (the receiver may keep them).
         */
        void found(FileMeta file, boolean whole) throws IOException;

        /** Where a new file is read whole to hash it, when it has room for it; null: hashed as a stream. */
        default FreshContent content() {
            return null;
        }
    }

    /**
     * As above; {@code fresh} (or null) is told of each file found that has no record in {@code known}, as soon as it
     * is found, before the walk goes on: the returned list still has it as a Put, or a Move when it is a file of
     * {@code known} gone from where it was.
     */
    public List<Change> scan(Map<String, FileMeta> known, long nowMillis, java.util.function.Consumer<String> unsyncable, List<String> under,
                             Map<String, FileMeta> hashed, Fresh fresh) throws IOException {
        if (under != null) {
            Map<String, FileMeta> inside = new HashMap<>();
            for (FileMeta k : known.values()) {
                if (within(k.path(), under)) {
                    inside.put(k.path(), k);
                }
            }
            known = inside;
        }
        Map<String, FileMeta> found = new TreeMap<>();
        Walk walk = new Walk(known, hashed, nowMillis, unsyncable, found, fresh);
        if (under == null) {
            walk.all();
        } else {
            walk.only(under);
        }
        List<Change> changes = new ArrayList<>();
        Map<String, String> goneByContent = new HashMap<>(); // content hash and length -> a path that is gone
        Map<String, FileMeta> gone = new LinkedHashMap<>();
        for (FileMeta k : new TreeMap<>(known).values()) {
            if (!found.containsKey(k.path())) {
                gone.put(k.path(), k);
                goneByContent.putIfAbsent(k.hash() + ":" + k.size(), k.path());
            }
        }
        List<Change> moves = new ArrayList<>();
        List<Change> puts = new ArrayList<>();
        for (FileMeta f : found.values()) {
            FileMeta k = known.get(f.path());
            if (k == null) {
                String from = goneByContent.remove(f.hash() + ":" + f.size());
                if (from != null) {
                    gone.remove(from);
                    moves.add(new Move(from, f));
                    continue;
                }
                puts.add(new Put(f));
            } else if (!k.equals(f)) {
                puts.add(new Put(f));
            }
        }
        for (String p : gone.keySet()) {
            changes.add(new Delete(p));
        }
        // Moves before the other new files: a file renamed away makes room for a folder of its old name (report ->
        // report_v1, then report/page1).
        changes.addAll(moves);
        changes.addAll(puts);
        return changes;
    }

    /**
     * One walk of the folder: each entry's attributes are read once, with its permissions (a walk with
     * Files.walkFileTree reads them a second time for every file, since its visitor gets only the basic ones).
     * Links, devices and pipes are left out; so is the working folder. What cannot be read is left as recorded.
     */
    private final class Walk {
        private final Map<String, FileMeta> known;
        private final Map<String, FileMeta> hashed;
        private final long nowMillis;
        private final java.util.function.Consumer<String> unsyncable;
        private final Map<String, FileMeta> found;
        private final Fresh fresh;
        private final boolean posix;
        private final Path work = root.resolve(SafePath.WORK_DIR);

        Walk(Map<String, FileMeta> known, Map<String, FileMeta> hashed, long nowMillis, java.util.function.Consumer<String> unsyncable,
             Map<String, FileMeta> found, Fresh fresh) {
            this.known = known;
            this.hashed = hashed;
            this.nowMillis = nowMillis;
            this.unsyncable = unsyncable;
            this.found = found;
            this.fresh = fresh;
            boolean p;
            try {
                p = Files.getFileStore(root).supportsFileAttributeView("posix");
            } catch (IOException e) {
                p = false; // the root is not there: the walk finds nothing (the caller checks the folder first)
            }
            this.posix = p;
        }

        /** Every folder from the root down, one open at a time (no recursion: a deep tree needs no deep stack). */
        void all() throws IOException {
            java.util.ArrayDeque<Path> folders = new java.util.ArrayDeque<>();
            folders.push(root);
            walk(folders);
        }

        /**
         * The folders {@code under} and everything below them, each only when the way to it from the root is made of
         * real folders (as a whole walk would find it: links are not followed) and is not the working folder.
         */
        void only(List<String> under) throws IOException {
            java.util.ArrayDeque<Path> folders = new java.util.ArrayDeque<>();
            for (String u : under) {
                if (u.isEmpty()) {
                    throw new IllegalArgumentException("a folder to walk is named by a non-empty relative path (null walks the whole folder)");
                }
                SafePath.check(u);
                Path dir = root;
                for (String part : u.split("/")) {
                    dir = dir.resolve(part);
                    if (dir.equals(work) || !isFolder(dir)) {
                        dir = null;
                        break;
                    }
                }
                if (dir != null) {
                    folders.push(dir);
                }
            }
            walk(folders);
        }

        private boolean isFolder(Path dir) throws IOException {
            try {
                return Files.readAttributes(dir, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).isDirectory();
            } catch (NoSuchFileException e) {
                return false;
            } catch (java.nio.file.AccessDeniedException e) {
                unreadable(dir, e);
                return false;
            }
        }

        private void walk(java.util.ArrayDeque<Path> folders) throws IOException {
            for (Path dir = folders.poll(); dir != null; dir = folders.poll()) {
                folder(dir, dir == root, folders);
            }
        }

        private void folder(Path dir, boolean isRoot, java.util.ArrayDeque<Path> folders) throws IOException {
            try (java.nio.file.DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
                for (Path entry : entries) {
                    BasicFileAttributes attrs;
                    try {
                        attrs = posix ? Files.readAttributes(entry, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS)
                                : Files.readAttributes(entry, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                    } catch (NoSuchFileException e) {
                        continue; // deleted while we walked
                    } catch (java.nio.file.AccessDeniedException e) {
                        unreadable(entry, e);
                        continue;
                    }
                    if (attrs.isDirectory()) {
                        if (!entry.equals(work)) {
                            folders.push(entry);
                        }
                    } else if (attrs.isRegularFile()) {
                        file(entry, attrs);
                    } // links, devices, pipes
                }
            } catch (NoSuchFileException e) {
                // deleted while we walked (or, the root, not there: nothing found)
            } catch (java.nio.file.AccessDeniedException e) {
                if (isRoot) {
                    throw e;
                }
                unreadable(dir, e);
            } catch (java.nio.file.DirectoryIteratorException e) {
                if (e.getCause() instanceof java.nio.file.AccessDeniedException denied && !isRoot) {
                    unreadable(dir, denied);
                } else {
                    throw e.getCause();
                }
            }
        }

        private void file(Path file, BasicFileAttributes attrs) throws IOException {
            String path = SafePath.of(root, file);
            try {
                SafePath.check(path);
            } catch (io.syncline.api.UnsafePathException e) {
                unsyncable.accept(e.getMessage());
                return;
            }
            if (!matches(path)) {
                return;
            }
            FileMeta was = known.get(path);
            Looked now;
            try {
                now = look(file, path, attrs, was, hashed.get(path), nowMillis, fresh != null && was == null ? fresh.content() : null);
            } catch (java.nio.file.AccessDeniedException e) {
                unsyncable.accept("'" + path + "' cannot be read; it is left as it was");
                now = new Looked(was, false);
            }
            if (now.meta() != null) {
                found.put(path, now.meta());
                if (fresh != null && was == null) {
                    fresh.found(now.meta(), now.whole());
                }
            }
        }

        /** A file or folder this node may not read is left out, with a warning; what was recorded of it is kept. */
        private void unreadable(Path p, IOException e) {
            String path = SafePath.of(root, p);
            unsyncable.accept("'" + path + "' cannot be read (" + e.getClass().getSimpleName() + "); it is left as it was");
            String prefix = path + "/";
            for (FileMeta k : known.values()) {
                if (k.path().equals(path) || k.path().startsWith(prefix)) {
                    found.put(k.path(), k); // not taken as deleted
                }
            }
        }
    }

    /** What a look at a file found: its state (or null), and whether it was read whole into the room reserved for it. */
    private record Looked(FileMeta meta, boolean whole) {
    }

    /**
     * The file as it is now, hashing it unless the record says it is unchanged; when it changed while it was hashed (it
     * is being written), what was recorded of it ({@code known}, or null for a new file): it is looked at again at the
     * next walk, and meanwhile is neither sent half-written nor taken as deleted. Null when it is gone. A file that is
     * hashed is read whole into {@code content} (or null) when it has room for it.
     */
    private Looked look(Path file, String path, BasicFileAttributes attrs, FileMeta known, FileMeta hashed, long nowMillis, FreshContent content)
            throws IOException {
        long mtime = attrs.lastModifiedTime().toMillis();
        int mode = attrs instanceof PosixFileAttributes p ? FileFolder.mode(p.permissions()) : mode(file);
        if (hashed != null && hashed.size() == attrs.size() && hashed.mtimeMillis() == mtime && hashed.mode() == mode) {
            return new Looked(hashed, false);
        }
        if (known != null && known.size() == attrs.size() && known.mtimeMillis() == mtime && known.mode() == mode
                && nowMillis - mtime > RACY_MILLIS && !known.hash().equals(ContentHash.UNKNOWN)) {
            return new Looked(known, false);
        }
        String hash;
        int at = content == null || attrs.size() > FreshContent.MAX_FILE ? -1 : content.reserve((int) attrs.size());
        try {
            if (at >= 0) {
                byte[] ring = content.buffer();
                int size = (int) attrs.size();
                int n;
                try (java.io.InputStream in = Files.newInputStream(file)) {
                    n = in.readNBytes(ring, at, size); // (no more: a file that grows as it is read is not read on)
                }
                if (n < size) {
                    return new Looked(known, false); // shortened while read: being written, the next scan takes it
                }
                hash = ContentHash.of(ring, at, size);
            } else {
                hash = ContentHash.of(file);
            }
        } catch (NoSuchFileException e) {
            return new Looked(null, false);
        }
        BasicFileAttributes after;
        try {
            after = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        } catch (NoSuchFileException e) {
            return new Looked(null, false);
        }
        if (after.size() != attrs.size() || after.lastModifiedTime().toMillis() != mtime) {
            return new Looked(known, false); // being written: the next scan takes it
        }
        return new Looked(new FileMeta(path, attrs.size(), mtime, mode, hash), at >= 0);
    }

    /** True when relative path {@code path} is in one of the folders {@code under} (at any depth). */
    static boolean within(String path, List<String> under) {
        for (String u : under) {
            if (path.length() > u.length() && path.startsWith(u) && path.charAt(u.length()) == '/') {
                return true;
            }
        }
        return false;
    }

    static int mode(Path file) throws IOException {
        try {
            return FileFolder.mode(Files.readAttributes(file, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS).permissions());
        } catch (UnsupportedOperationException e) {
            return -1;
        }
    }
}
