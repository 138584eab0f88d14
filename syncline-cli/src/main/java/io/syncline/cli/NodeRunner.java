package io.syncline.cli;

import io.syncline.node.NodeControl;
import java.util.concurrent.CountDownLatch;

/** Keeps a node running until the process is asked to stop (SIGTERM, Ctrl-C), then closes it. */
final class NodeRunner {
    private NodeRunner() {
    }

    static int runUntilStopped(NodeControl node) {
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            node.close();
            stopped.countDown();
        }, "syncline-shutdown"));
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }
}
