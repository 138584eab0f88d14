package io.syncline.testkit;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Ports on 127.0.0.1 for servers a test starts itself (a hub it restarts on the same port, a node in another process).
 * A port taken with bind(0) and released could be taken again by anything else bound with port 0 (a FaultProxy, an
 * outgoing connection) before the server binds it: ChaosIT once failed so ("hub could not start: Address already in
 * use"). Ports are therefore picked below the kernel's range of ephemeral ports where it can be read (Linux), never
 * handed out twice in a process, and free when handed out; elsewhere a bind(0) port as before.
 */
public final class FreePorts {
    /** Ports handed out in this process: never twice. */
    private static final Set<Integer> HANDED_OUT = ConcurrentHashMap.newKeySet();
    /** The lowest ephemeral port, read once. */
    private static final int EPHEMERAL_LOW = ephemeralLow();

    private FreePorts() {
    }

    /** A port on 127.0.0.1 that is free now and that no other call in this process has handed out. */
    public static int take() {
        int low = EPHEMERAL_LOW;
        ThreadLocalRandom random = ThreadLocalRandom.current();
        for (int attempt = 0; low > 12_000 && attempt < 100; attempt++) {
            int port = random.nextInt(low - 10_000, low);
            if (HANDED_OUT.add(port)) {
                try (ServerSocket s = new ServerSocket(port, 1, InetAddress.getByName("127.0.0.1"))) {
                    return port;
                } catch (IOException e) {
                    // taken: another one
                }
            }
        }
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The lowest ephemeral port (Linux), or 0 when unknown. */
    private static int ephemeralLow() {
        try {
            String range = Files.readString(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).trim();
            return Integer.parseInt(range.split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }
}
