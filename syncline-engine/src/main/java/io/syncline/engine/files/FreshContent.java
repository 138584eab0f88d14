package io.syncline.engine.files;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The content of small new files a walk has just read to hash them, kept for the sender so that it need not open and
 * read each of them again (a first copy of many small files read each one twice: a fifth of the site's work). Bounded:
 * at most {@code maxBytes} in all, no file longer than {@link #MAX_FILE}; a file that does not fit is read from the
 * folder as before. Each content is taken once, by path, and only for the length and hash it was kept with: the bytes
 * are those that hash, so what is sent is exactly the content recorded (if the file changed since, the next walk
 * records that). Safe for one walk putting and senders taking at once; {@link #clear} drops what was not taken.
 */
public final class FreshContent {
    /** Files up to this length are kept. */
    public static final int MAX_FILE = 256 * 1024;

    private record Kept(long size, String hash, byte[] content) {
    }

    private final long maxBytes;
    private final ConcurrentHashMap<String, Kept> kept = new ConcurrentHashMap<>();
    private final AtomicLong bytes = new AtomicLong();

    /** Keeps at most {@code maxBytes} of content at a time. */
    public FreshContent(long maxBytes) {
        if (maxBytes < 0) {
            throw new IllegalArgumentException("maxBytes must not be negative: " + maxBytes);
        }
        this.maxBytes = maxBytes;
    }

    /** A size for a node: a sixteenth of the largest heap, at most 32 MiB. */
    public static FreshContent forHeap() {
        return new FreshContent(Math.min(32L << 20, Runtime.getRuntime().maxMemory() / 16));
    }

    /** The longest file worth reading whole now: 0 when there is no room for even an empty one's worth. */
    int roomFor() {
        long room = maxBytes - bytes.get();
        return room <= 0 ? 0 : (int) Math.min(MAX_FILE, room);
    }

    /**
     * Keeps {@code content}, which is {@code file}'s and hashes to its hash, if there is room for it; else drops it. A
     * content kept before for the same path is dropped either way.
     */
    void put(FileMeta file, byte[] content) {
        if (content.length != file.size() || content.length > MAX_FILE) {
            throw new IllegalArgumentException("content of " + content.length + " bytes kept for '" + file.path() + "' of "
                    + file.size() + " bytes (at most " + MAX_FILE + ")");
        }
        Kept before = kept.remove(file.path());
        if (before != null) {
            bytes.addAndGet(-before.content().length);
        }
        if (bytes.addAndGet(content.length) > maxBytes) {
            bytes.addAndGet(-content.length);
            return;
        }
        before = kept.put(file.path(), new Kept(file.size(), file.hash(), content));
        if (before != null) { // (one walk puts: only if two did at once)
            bytes.addAndGet(-before.content().length);
        }
    }

    /**
     * The content kept for {@code path}, if it was kept with this length and hash; it is no longer kept either way. Null
     * when there is none: the caller reads the file.
     */
    public byte[] take(String path, long size, String hash) {
        Kept k = kept.remove(path);
        if (k == null) {
            return null;
        }
        bytes.addAndGet(-k.content().length);
        return k.size() == size && k.hash().equals(hash) ? k.content() : null;
    }

    /** Drops everything kept. */
    public void clear() {
        for (String path : kept.keySet()) {
            Kept k = kept.remove(path);
            if (k != null) {
                bytes.addAndGet(-k.content().length);
            }
        }
    }

    /** Bytes kept now. */
    public long bytes() {
        return bytes.get();
    }
}
