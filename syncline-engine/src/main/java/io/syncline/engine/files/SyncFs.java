package io.syncline.engine.files;

import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Linux's {@code syncfs(2)}: one call that writes to disk everything written to a file system and not flushed yet, and
 * reports a write-back error that happened on it since the last call through the same descriptor (Linux 5.8 and
 * later; also the file system's own failures, such as a journal commit, from 5.17). Called through the Foreign Function
 * API, final in Java 22; reached by reflection, since this code is built for Java 21. {@link #open} gives
 * {@code Optional.empty()} where it is not to be had (another system, a kernel before 5.17, Java 21, native access
 * denied with {@code --illegal-native-access=deny}), and the caller then flushes each file. Whether a given file system
 * makes syncfs durable is the caller's question (GroupFlush allows a few local ones).
 */
final class SyncFs implements AutoCloseable {
    private static final int O_RDONLY = 0;
    /** Not inherited by a program the process starts (the same value on x86-64 and arm64). */
    private static final int O_CLOEXEC = 02000000;
    /** open(2), syncfs(2) and close(2); null when not to be had (see {@link #unavailable}). */
    private static final MethodHandle OPEN;
    private static final MethodHandle SYNCFS;
    private static final MethodHandle CLOSE;
    /** Arena.ofConfined() and its allocateFrom(String), for open's path. */
    private static final java.lang.reflect.Method OF_CONFINED;
    private static final java.lang.reflect.Method ALLOCATE_FROM;
    /** Why syncfs is not used, or null when it is. */
    private static final String UNAVAILABLE;

    static {
        MethodHandle open = null, syncfs = null, close = null;
        java.lang.reflect.Method ofConfined = null, allocateFrom = null;
        String why = null;
        if (!System.getProperty("os.name", "").equals("Linux")) {
            why = "not Linux";
        } else if (!kernelAtLeast(System.getProperty("os.version", ""), 5, 17)) {
            why = "Linux " + System.getProperty("os.version") + " (before 5.17, syncfs does not report every failure to write)";
        } else if (Runtime.version().feature() < 22) {
            why = "Java " + Runtime.version().feature() + " (the Foreign Function API is final from Java 22)";
        } else {
            try {
                Class<?> linkerType = Class.forName("java.lang.foreign.Linker");
                Class<?> layoutType = Class.forName("java.lang.foreign.MemoryLayout");
                Class<?> valueLayout = Class.forName("java.lang.foreign.ValueLayout");
                Class<?> descriptorType = Class.forName("java.lang.foreign.FunctionDescriptor");
                Class<?> segmentType = Class.forName("java.lang.foreign.MemorySegment");
                Class<?> optionType = Class.forName("java.lang.foreign.Linker$Option");
                Class<?> arenaType = Class.forName("java.lang.foreign.Arena");
                Object linker = linkerType.getMethod("nativeLinker").invoke(null);
                Object lookup = linkerType.getMethod("defaultLookup").invoke(linker);
                java.lang.reflect.Method find = Class.forName("java.lang.foreign.SymbolLookup").getMethod("find", String.class);
                Object jint = valueLayout.getField("JAVA_INT").get(null);
                Object address = valueLayout.getField("ADDRESS").get(null);
                java.lang.reflect.Method of = descriptorType.getMethod("of", layoutType, layoutType.arrayType());
                java.lang.reflect.Method downcall = linkerType.getMethod("downcallHandle", segmentType, descriptorType, optionType.arrayType());
                Object noOptions = java.lang.reflect.Array.newInstance(optionType, 0);
                Object[] intArg = (Object[]) java.lang.reflect.Array.newInstance(layoutType, 1);
                intArg[0] = jint;
                Object[] openArgs = (Object[]) java.lang.reflect.Array.newInstance(layoutType, 2);
                openArgs[0] = address;
                openArgs[1] = jint;
                open = (MethodHandle) downcall.invoke(linker, symbol(find, lookup, "open"), of.invoke(null, jint, openArgs), noOptions);
                syncfs = (MethodHandle) downcall.invoke(linker, symbol(find, lookup, "syncfs"), of.invoke(null, jint, intArg), noOptions);
                close = (MethodHandle) downcall.invoke(linker, symbol(find, lookup, "close"), of.invoke(null, jint, intArg), noOptions);
                ofConfined = arenaType.getMethod("ofConfined");
                allocateFrom = Class.forName("java.lang.foreign.SegmentAllocator").getMethod("allocateFrom", String.class);
            } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
                Throwable cause = e instanceof java.lang.reflect.InvocationTargetException t ? t.getCause() : e;
                why = "the Foreign Function API is not usable (" + cause + "; Java started with --illegal-native-access=deny needs"
                        + " --enable-native-access=ALL-UNNAMED)";
                open = syncfs = close = null;
            }
        }
        OPEN = open;
        SYNCFS = syncfs;
        CLOSE = close;
        OF_CONFINED = ofConfined;
        ALLOCATE_FROM = allocateFrom;
        UNAVAILABLE = why;
    }

    private static Object symbol(java.lang.reflect.Method find, Object lookup, String name) throws ReflectiveOperationException {
        return ((Optional<?>) find.invoke(lookup, name)).orElseThrow(() -> new NoSuchMethodException("C library function " + name));
    }

    static boolean kernelAtLeast(String version, int major, int minor) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("^(\\d+)\\.(\\d+)").matcher(version);
        if (!m.find()) {
            return false;
        }
        int ma = Integer.parseInt(m.group(1));
        return ma > major || ma == major && Integer.parseInt(m.group(2)) >= minor;
    }

    /** Why syncfs is not used here, or null when it is. */
    static String unavailable() {
        return UNAVAILABLE;
    }

    private final Path on;
    private final int fd;
    private boolean closed;

    private SyncFs(Path on, int fd) {
        this.on = on;
        this.fd = fd;
    }

    /**
     * A descriptor of {@code folder}'s file system: {@link #sync} reports the write-back errors that happen on it from
     * now on. Empty where syncfs is not to be had.
     */
    static Optional<SyncFs> open(Path folder) throws IOException {
        if (UNAVAILABLE != null) {
            return Optional.empty();
        }
        int fd;
        try (AutoCloseable arena = (AutoCloseable) OF_CONFINED.invoke(null)) {
            Object path = ALLOCATE_FROM.invoke(arena, folder.toString());
            fd = (int) OPEN.invoke(path, O_RDONLY | O_CLOEXEC);
        } catch (Throwable e) {
            throw new IOException("could not open " + folder + " for syncfs: " + e, e);
        }
        if (fd < 0) {
            throw new IOException("could not open " + folder + " for syncfs (open returned " + fd + ")");
        }
        return Optional.of(new SyncFs(folder, fd));
    }

    /**
     * Writes everything written to the file system and not flushed yet to disk. Throws when that failed, or when a
     * write-back on the file system failed since the last call (or since {@link #open}).
     */
    synchronized void sync() throws IOException {
        if (closed) {
            throw new IOException("syncfs descriptor of " + on + " is closed");
        }
        int r;
        try {
            r = (int) SYNCFS.invokeExact(fd);
        } catch (Throwable e) {
            throw new IOException("syncfs on the file system of " + on + " failed: " + e, e);
        }
        if (r != 0) {
            throw new IOException("syncfs on the file system of " + on + " failed: data written there may not be on disk");
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            try {
                int ignored = (int) CLOSE.invokeExact(fd);
            } catch (Throwable e) {
                // nothing to do: the descriptor is gone with the process at the latest
            }
        }
    }
}
