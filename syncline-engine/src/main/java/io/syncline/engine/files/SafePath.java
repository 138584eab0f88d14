package io.syncline.engine.files;

import io.syncline.api.UnsafePathException;
import java.io.IOException;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * Paths of files as they travel between nodes: relative to the channel's folder, segments separated by '/', never
 * trusted. {@link #check} refuses every form that could name something outside the folder before a path is used, and
 * {@link #resolve} refuses a path that would pass through a symbolic link (which could point anywhere).
 */
public final class SafePath {
    /** Syncline's working folder inside every channel folder (temporary and partial files); never synced. */
    public static final String WORK_DIR = ".syncline-tmp";
    static final int MAX_LENGTH = 4096;

    private SafePath() {
    }

    /**
     * Returns {@code path} if it is a plain relative path, else throws naming what is wrong with it.
     *
     * @throws UnsafePathException for null, empty, too long, absolute, drive-lettered, backslashed, control characters,
     *     empty, '.' or '..' segments, or a path inside {@link #WORK_DIR}
     */
    public static String check(String path) {
        if (path == null || path.isEmpty()) {
            throw new UnsafePathException("file path is empty");
        }
        String shown = path.length() > 200 ? path.substring(0, 200) + "..." : path;
        if (path.length() > MAX_LENGTH) {
            throw new UnsafePathException("file path '" + shown + "' is longer than " + MAX_LENGTH + " characters");
        }
        for (int i = 0; i < path.length(); i++) {
            char ch = path.charAt(i);
            if (ch < 0x20 || ch == 0x7f) {
                throw new UnsafePathException("file path '" + printable(shown) + "' holds a control character (code " + (int) ch + ")");
            }
            if (ch == '\\') {
                throw new UnsafePathException("file path '" + shown + "' holds a backslash; paths use '/' between folders");
            }
        }
        if (path.startsWith("/")) {
            throw new UnsafePathException("file path '" + shown + "' is absolute; it must be relative to the channel's folder");
        }
        if (path.length() >= 2 && path.charAt(1) == ':' && Character.isLetter(path.charAt(0))) {
            throw new UnsafePathException("file path '" + shown + "' starts with a drive letter; it must be relative to the channel's folder");
        }
        String[] segments = path.split("/", -1);
        for (String s : segments) {
            if (s.isEmpty()) {
                throw new UnsafePathException("file path '" + shown + "' has an empty segment (a '/' at the start or end, or '//')");
            }
            if (s.equals("..") || s.equals(".")) {
                throw new UnsafePathException("file path '" + shown + "' has a '" + s + "' segment; only plain names are allowed");
            }
        }
        if (segments[0].equals(WORK_DIR)) {
            throw new UnsafePathException("file path '" + shown + "' is inside Syncline's working folder " + WORK_DIR);
        }
        return path;
    }

    /**
     * The file {@code path} (checked as by {@link #check}) names under {@code root}. Every part of the way that exists
     * must be a real folder, not a symbolic link, and the file itself must not be a link: a link placed in the folder
     * could otherwise lead a write or a delete anywhere.
     */
    public static Path resolve(Path root, String path) throws IOException {
        check(path);
        Path p = root;
        String[] segments = path.split("/");
        boolean exists = true;
        for (int i = 0; i < segments.length; i++) {
            p = step(root, p, segments[i], path);
            if (!exists) {
                continue; // under a folder that is not there, nothing is: no need to ask the file system again
            }
            // One lstat a segment (a new file's path is mostly missing parts: the first missing one ends the questions).
            BasicFileAttributes a = p.getFileSystem().provider().readAttributesIfExists(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            if (a == null) {
                exists = false;
            } else if (a.isSymbolicLink()) {
                throw throughLink(path, String.join("/", java.util.Arrays.copyOf(segments, i + 1)));
            } else if (i < segments.length - 1 && !a.isDirectory()) {
                throw notAFolder(path, String.join("/", java.util.Arrays.copyOf(segments, i + 1)));
            }
        }
        return p;
    }

    /** {@code path}'s way passes through the symbolic link {@code way} (its first segments). */
    static UnsafePathException throughLink(String path, String way) {
        return new UnsafePathException("file path '" + path + "' goes through the symbolic link '" + way + "'; Syncline does not follow links");
    }

    /** {@code path}'s way passes through {@code way} (its first segments), which is not a folder (FileFolder reads this). */
    static UnsafePathException notAFolder(String path, String way) {
        return new UnsafePathException("file path '" + path + "': '" + way + "' is a file, not a folder");
    }

    /**
     * The file {@code path} (checked as by {@link #check}) names under {@code root}, without looking at the file system:
     * for a caller that puts the file in place through folders it opened without following links (OpenDirs).
     */
    static Path join(Path root, String path) {
        check(path);
        Path p = root;
        for (String segment : path.split("/")) {
            p = step(root, p, segment, path);
        }
        return p;
    }

    private static Path step(Path root, Path p, String segment, String path) {
        Path next = p.resolve(segment);
        if (!next.normalize().startsWith(root.normalize())) { // a segment the file system reads as a way up
            throw new UnsafePathException("file path '" + path + "' leads outside the channel's folder");
        }
        return next;
    }

    /** The relative '/'-separated form of {@code file} under {@code root}. */
    public static String of(Path root, Path file) {
        StringBuilder sb = new StringBuilder();
        for (Path part : root.relativize(file)) {
            if (!sb.isEmpty()) {
                sb.append('/');
            }
            sb.append(part);
        }
        return sb.toString();
    }

    private static String printable(String s) {
        StringBuilder sb = new StringBuilder();
        for (char ch : s.toCharArray()) {
            sb.append(ch < 0x20 || ch == 0x7f ? '?' : ch);
        }
        return sb.toString();
    }
}
