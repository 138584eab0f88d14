package io.syncline.engine.files;

import java.util.HashMap;
import java.util.Map;

/**
 * The content of small new files a walk has just read to hash them, kept for the sender so that it need not open and
 * read each of them again (a first copy of many small files read each one twice: a fifth of the site's work).
 *
 * <p>Bounded, and without garbage: the walk reads each file straight into one ring buffer, allocated once (at the first
 * file) and then reused for the node's life, of at most {@code capacity} bytes and {@link #MAX_ENTRIES} files (see
 * {@link #forHeap} for the process's limit); a file longer than
 * {@link #MAX_FILE}, or one that finds no room, is hashed as a stream and read from the folder again when sent, as before.
 * (Kept as an array per file, as first written, they made the benchmark's copy of 10,000 small files slower, not
 * faster: probably because thousands of them at a time outlived young collections, to be copied and promoted.)
 *
 * <p>Each content is taken once, by channel and path, and only for the length and hash it was kept with: the bytes are
 * those that hash, so what is sent is exactly the content recorded (a file changed since is recorded again by the next
 * walk). Contents are taken in about the order they were kept (the order changes are numbered and sent in): taking one
 * frees it and every content kept before it, taken or not. One walk keeps at a time (the caller's thread); senders take
 * on other threads. {@link #clear} frees everything, when no walk runs.
 */
public final class FreshContent {
    /** Files up to this length are kept. */
    public static final int MAX_FILE = 256 * 1024;
    /** At most this many files are kept at once (empty files take no room in the ring). */
    public static final int MAX_ENTRIES = 16_384;

    private record Kept(String key, long size, String hash, long start) {
    }

    /** What the rings of {@link #forHeap} may take in all, in the process (null until the first is made). */
    private static java.util.concurrent.atomic.AtomicLong processBudget;

    /** The ring's length: as asked, or (from a budget) what was left of it when the ring was made. */
    private int capacity;
    /** Where the ring's bytes come from (null: no limit but capacity). */
    private final java.util.concurrent.atomic.AtomicLong budget;
    private byte[] ring; // (allocated at the first file)
    /** Positions in the ring's stream of bytes: kept contents are in [tail, head); reserved is the next one's start. */
    private long head;
    private long tail;
    private long reserved = -1;
    private boolean closed;
    private final Map<String, Kept> kept = new HashMap<>();
    /** What was kept, in the order kept: those a take freed leave the map with it (see forgetFreed). */
    private final java.util.ArrayDeque<Kept> order = new java.util.ArrayDeque<>();

    /** Keeps at most {@code capacity} bytes of content at a time. */
    public FreshContent(int capacity) {
        this(capacity, null);
    }

    /** As above, its ring taken from {@code budget} when it is made (none while the budget has less left). */
    FreshContent(int capacity, java.util.concurrent.atomic.AtomicLong budget) {
        if (capacity < 0) {
            throw new IllegalArgumentException("capacity must not be negative: " + capacity);
        }
        this.capacity = capacity;
        this.budget = budget;
    }

    /**
     * One for a node: a ring of at most 32 MiB, made when first needed, while the rings made so far in the process take
     * less than a sixteenth of the largest heap (one node per process: its ring; several, as in the demo: the first to
     * need one, the others read files again).
     */
    public static FreshContent forHeap() {
        java.util.concurrent.atomic.AtomicLong b;
        synchronized (FreshContent.class) {
            if (processBudget == null) {
                processBudget = new java.util.concurrent.atomic.AtomicLong(Runtime.getRuntime().maxMemory() / 16);
            }
            b = processBudget;
        }
        return new FreshContent(32 << 20, b);
    }

    /** A ring from a budget is no shorter than this (else there is none). */
    static final int MIN_RING = 1 << 20;

    /**
     * Whether the ring is there, or could be made now: from a budget, of its capacity or what is left of the budget if
     * that is less, but at least {@link #MIN_RING}.
     */
    private boolean ringMade() {
        if (ring != null) {
            return true;
        }
        int length = capacity;
        while (budget != null) {
            long left = budget.get();
            length = (int) Math.min(capacity, left);
            if (length < Math.min(capacity, MIN_RING)) {
                return false;
            }
            if (budget.compareAndSet(left, left - length)) {
                break;
            }
        }
        try {
            ring = new byte[length];
        } catch (OutOfMemoryError e) {
            if (budget != null) {
                budget.addAndGet(length);
            }
            return false;
        }
        capacity = length;
        return true;
    }

    private static String key(String channel, String path) {
        return channel + '\0' + path;
    }

    /**
     * Room for a file of {@code size} bytes: the offset in {@link #buffer} to read it into (then {@link #keep} it, or
     * leave it: the room is offered again), or -1 when there is none. One walk asks at a time.
     */
    synchronized int reserve(int size) {
        reserved = -1;
        if (closed || size > MAX_FILE || order.size() >= MAX_ENTRIES || !ringMade() || size > capacity) {
            return -1; // (capacity once the ring is made: a ring from a budget can be shorter than asked)
        }
        long start = head;
        long at = offset(start);
        if (at + size > capacity) {
            start += capacity - at; // (to the ring's start: a content is never split)
        }
        if (start + size - tail > capacity) {
            return -1;
        }
        reserved = start;
        return offset(start);
    }

    /** The ring: the bytes at the offset {@link #reserve} gave are the reserving walk's to write until it keeps them. */
    synchronized byte[] buffer() {
        return ring;
    }

    /**
     * Keeps the content of {@code file} (of channel {@code channel}), which the walk has read into the room it reserved
     * last and which hashes to the file's hash. A content kept before for the same path is dropped.
     */
    synchronized void keep(String channel, FileMeta file) {
        if (closed) {
            return; // (the node stopped while its walk went on)
        }
        if (reserved < 0) {
            throw new IllegalStateException("'" + file.path() + "' kept without room reserved for it");
        }
        Kept k = new Kept(key(channel, file.path()), file.size(), file.hash(), reserved);
        kept.put(k.key(), k);
        order.add(k);
        head = reserved + file.size();
        reserved = -1;
    }

    /**
     * Copies the content kept for {@code path} of channel {@code channel} into {@code into} (from its start), if it was
     * kept with this length and hash and has not been freed; it is no longer kept either way. Returns the length copied,
     * or -1 when there is none: the caller reads the file. The caller's array, reused from file to file, is the only
     * copy made (the ring is the walk's to write again once a content is taken).
     *
     * @throws IllegalArgumentException when {@code into} is shorter than {@code size} and {@code size} is not over
     *     {@link #MAX_FILE} (an array of MAX_FILE bytes always has room)
     */
    public synchronized int take(String channel, String path, long size, String hash, byte[] into) {
        if (size > into.length && size <= MAX_FILE) {
            throw new IllegalArgumentException("an array of " + into.length + " bytes has no room for '" + path + "' (" + size + " bytes)");
        }
        Kept k = kept.remove(key(channel, path));
        if (k == null || k.start() < tail || closed) {
            return -1; // (freed with a content taken after it)
        }
        tail = k.start() + k.size();
        forgetFreed();
        if (k.size() != size || !k.hash().equals(hash)) {
            return -1;
        }
        System.arraycopy(ring, offset(k.start()), into, 0, (int) size);
        return (int) size;
    }

    /**
     * Drops what the tail has passed from the map (kept before a content taken since, and not taken): they are freed,
     * and would otherwise count toward {@link #MAX_ENTRIES} until the next clear.
     */
    private void forgetFreed() {
        Kept first;
        while ((first = order.peek()) != null && first.start() < tail) {
            order.poll();
            kept.remove(first.key(), first); // (unless kept again since, later in the ring)
        }
    }

    /** Where the ring's stream position {@code position} is in the ring. */
    private int offset(long position) {
        return (int) (position % Math.max(1, capacity));
    }

    /** Frees everything kept (the ring itself stays, for the next walk). */
    public synchronized void clear() {
        kept.clear();
        order.clear();
        tail = head;
        reserved = -1;
    }

    /**
     * Frees everything, and gives the ring's length back to the process's budget: nothing is kept from now on. (The
     * ring itself goes with this object: a walk still under way may be reading into it.)
     */
    public synchronized void close() {
        clear();
        if (!closed && ring != null && budget != null) {
            budget.addAndGet(capacity);
        }
        closed = true;
    }

    /** Bytes of the ring in use now (kept, or freed only by a later take). */
    public synchronized long bytes() {
        return head - tail;
    }

    /** Contents kept now (some perhaps freed already, by a later take). */
    synchronized int entries() {
        return kept.size();
    }
}
