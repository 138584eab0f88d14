package io.syncline.engine.files;

import io.syncline.api.UnsafePathException;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.file.ClosedDirectoryStreamException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SecureDirectoryStream;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The folders of a receiving folder that files are renamed into, each opened once without following symbolic links
 * (one segment at a time from the root, each looked at in its parent as opened, fstatat, then opened there with
 * openat and O_NOFOLLOW) and kept open, so that a file is renamed into the folder
 * that was checked (renameat), whatever is put at its path afterwards. Checking a path segment by segment (lstat) and
 * then renaming by path, as SafePath allows, costs three or more lookups of the whole path per file and leaves a
 * window in which a link put in place of a folder would be followed; here a file costs one rename, and there is no
 * such window. A symbolic link at the file's own path is replaced by the file, as rename(2) does: never followed.
 * <p>
 * A sender reads the files it sends through them too ({@link #read}).
 * <p>
 * One per FileFolder (an exchange), used by its receiving thread and its flush threads, one at a time (the renames of
 * one file system take turns in the kernel anyway). At most {@link #MAX} folders are open (two descriptors each), the
 * least recently used closed first; {@link #close} closes them all. {@link #of} is null where the platform has no
 * SecureDirectoryStream: files are then renamed by path after SafePath's check.
 */
public final class OpenDirs implements Closeable {
    /** Folders kept open at most. */
    static final int MAX = 32;
    private final Path root;
    /** Open folders by their path from the root ("" the root itself), least recently used first. */
    private final LinkedHashMap<String, SecureDirectoryStream<Path>> open = new LinkedHashMap<>(16, 0.75f, true);
    /**
     * Folders {@link #check} found missing (at most {@link #MAX_MISSING}): not looked for again by it. The files of a
     * first copy arrive before their folders are made (by the renames that follow), and each would cost a failed
     * lookup. A rename always looks (and refuses a link made there since).
     */
    private final Set<String> missing = new HashSet<>();
    static final int MAX_MISSING = 4096;

    private OpenDirs(Path root, SecureDirectoryStream<Path> rootDir) {
        this.root = root;
        open.put("", rootDir);
    }

    /** The folders of {@code root} (a real folder), or null where they cannot be opened this way. */
    public static OpenDirs of(Path root) {
        try {
            DirectoryStream<Path> ds = Files.newDirectoryStream(root);
            if (ds instanceof SecureDirectoryStream<Path> sds) {
                return new OpenDirs(root, sds);
            }
            ds.close();
        } catch (IOException | UnsupportedOperationException e) {
            // renamed by path
        }
        return null;
    }

    /**
     * Renames the file {@code name} of the working folder ({@link SafePath#WORK_DIR}) over the file {@code path} (as
     * checked by SafePath.check) names. False, with nothing done, when a folder of its way does not exist.
     *
     * @throws UnsafePathException when a folder of its way is a symbolic link or a file
     * @throws IOException as the rename fails (a folder in the way)
     */
    synchronized boolean rename(String name, String path) throws IOException {
        int slash = path.lastIndexOf('/');
        SecureDirectoryStream<Path> into = folder(slash < 0 ? "" : path.substring(0, slash), path, false);
        if (into == null) {
            return false;
        }
        SecureDirectoryStream<Path> work = folder(SafePath.WORK_DIR, SafePath.WORK_DIR, false);
        if (work == null) {
            throw new NoSuchFileException(root.resolve(SafePath.WORK_DIR).toString(), null, "the working folder is gone");
        }
        Path from = root.getFileSystem().getPath(name);
        Path to = root.getFileSystem().getPath(path.substring(slash + 1));
        work.move(from, into, to);
        return true;
    }

    /**
     * Opens the file {@code path} (checked as by SafePath.check) names for reading, through its folder as opened here
     * and without following a link at the file itself (O_NOFOLLOW): what a sender reads is in the folder, as SafePath's
     * check and a read by path give, with one lookup instead of one per segment and a read.
     *
     * @throws NoSuchFileException when it, or a folder of its way, does not exist
     * @throws UnsafePathException when a folder of its way, or the file, is a symbolic link, or a folder of its way is a file
     */
    public synchronized InputStream read(String path) throws IOException {
        SafePath.check(path);
        int slash = path.lastIndexOf('/');
        SecureDirectoryStream<Path> in = folder(slash < 0 ? "" : path.substring(0, slash), path, false);
        if (in == null) {
            throw new NoSuchFileException(root.resolve(path).toString());
        }
        try {
            return Channels.newInputStream(in.newByteChannel(root.getFileSystem().getPath(path.substring(slash + 1)),
                    Set.of(StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS)));
        } catch (NoSuchFileException e) {
            throw e;
        } catch (IOException e) { // (a link: ELOOP, an IOException of no finer kind)
            if (Files.isSymbolicLink(root.resolve(path))) {
                throw new UnsafePathException("file path '" + path + "' is a symbolic link; Syncline does not follow links");
            }
            throw e;
        }
    }

    /**
     * Checks that no folder of {@code path}'s way (as checked by SafePath.check) is a symbolic link or a file; folders not
     * there yet pass (they are made when the file is put in place), and so do folders found missing by an earlier check
     * (a link made there since is refused by the rename).
     *
     * @throws UnsafePathException naming the link or the file
     */
    synchronized void check(String path) throws IOException {
        int slash = path.lastIndexOf('/');
        if (slash > 0) {
            folder(path.substring(0, slash), path, true);
        }
    }

    /**
     * The folder {@code rel} ("" the root), opened; null when it or one above it does not exist. Looks at the file system
     * only for folders not open yet ({@code trustMissing}: nor for those found missing before).
     */
    private SecureDirectoryStream<Path> folder(String rel, String path, boolean trustMissing) throws IOException {
        SecureDirectoryStream<Path> d = open.get(rel);
        if (d != null) {
            return d;
        }
        if (rel.isEmpty()) {
            throw new ClosedDirectoryStreamException(); // (the root goes only with close)
        }
        if (trustMissing && missing.contains(rel)) {
            return null;
        }
        int slash = rel.lastIndexOf('/');
        SecureDirectoryStream<Path> parent = folder(slash < 0 ? "" : rel.substring(0, slash), path, trustMissing);
        if (parent == null) {
            return null;
        }
        Path name = root.getFileSystem().getPath(rel.substring(slash + 1));
        // What it is first, in the parent as opened (fstatat, not by path: the path may lead elsewhere by now): a FIFO
        // opened for reading would wait for a writer; a link or a file is refused by name.
        BasicFileAttributes a;
        try {
            a = parent.getFileAttributeView(name, BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS).readAttributes();
        } catch (NoSuchFileException e) {
            a = null;
        }
        if (a == null) {
            if (missing.size() < MAX_MISSING) {
                missing.add(rel);
            }
            return null;
        }
        if (a.isSymbolicLink()) {
            throw SafePath.throughLink(path, rel);
        }
        if (!a.isDirectory()) {
            throw SafePath.notAFolder(path, rel);
        }
        try {
            d = parent.newDirectoryStream(name, LinkOption.NOFOLLOW_LINKS); // replaced by a link since: refused (ELOOP)
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new UnsafePathException("file path '" + path + "': '" + rel + "' is no longer a folder (" + e.getMessage() + ")");
        }
        missing.remove(rel);
        open.put(rel, d);
        if (open.size() > MAX) {
            Iterator<Map.Entry<String, SecureDirectoryStream<Path>>> it = open.entrySet().iterator();
            while (open.size() > MAX && it.hasNext()) {
                Map.Entry<String, SecureDirectoryStream<Path>> eldest = it.next();
                if (!eldest.getKey().isEmpty() && !rel.startsWith(eldest.getKey())) { // (not the root, nor one of d's way)
                    it.remove();
                    closeQuietly(eldest.getValue());
                }
            }
        }
        return d;
    }

    @Override
    public synchronized void close() {
        open.values().forEach(OpenDirs::closeQuietly);
        open.clear();
        missing.clear();
    }

    private static void closeQuietly(SecureDirectoryStream<Path> d) {
        try {
            d.close();
        } catch (IOException e) {
            // nothing was written through it
        }
    }
}
