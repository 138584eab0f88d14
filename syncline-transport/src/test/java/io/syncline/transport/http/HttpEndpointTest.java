package io.syncline.transport.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Flow control of the HTTP endpoint: bounded work at once, long polls that wait without a slot, 503 when busy. */
class HttpEndpointTest {
    private final ExecutorService clients = Executors.newFixedThreadPool(8, r -> {
        Thread t = new Thread(r, "test-client");
        t.setDaemon(true);
        return t;
    });
    private final List<HttpEndpoint> endpoints = new ArrayList<>();

    @AfterEach
    void tearDown() {
        clients.shutdownNow();
        endpoints.forEach(HttpEndpoint::close);
    }

    private HttpEndpoint endpoint(int threads, Duration busyWait) throws IOException {
        HttpEndpoint ep = new HttpEndpoint("test", "127.0.0.1", 0, threads, busyWait);
        endpoints.add(ep);
        return ep;
    }

    private Future<Integer> get(HttpEndpoint ep, String path) {
        return clients.submit(() -> {
            HttpURLConnection c = (HttpURLConnection) URI.create("http://127.0.0.1:" + ep.port() + path).toURL().openConnection();
            c.setReadTimeout(30_000);
            try {
                int code = c.getResponseCode();
                try (InputStream in = code < 400 ? c.getInputStream() : c.getErrorStream()) {
                    if (in != null) {
                        in.readAllBytes();
                    }
                }
                return code;
            } finally {
                c.disconnect();
            }
        });
    }

    @Test
    void shouldWorkOnNoMoreRequestsAtOnceThanItsThreads() throws Exception {
        HttpEndpoint ep = endpoint(2, Duration.ofSeconds(30));
        AtomicInteger running = new AtomicInteger();
        AtomicInteger most = new AtomicInteger();
        CountDownLatch release = new CountDownLatch(1);
        ep.route("/work", "GET", ex -> {
            most.accumulateAndGet(running.incrementAndGet(), Math::max);
            try {
                release.await(20, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            running.decrementAndGet();
            HttpEndpoint.sendJson(ex, 200, Map.of("ok", true));
        });
        ep.start();
        List<Future<Integer>> answers = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            answers.add(get(ep, "/work"));
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> running.get() == 2);
        // The other four wait for a slot: the count does not grow while the first two hold theirs.
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(2)).until(() -> running.get() == 2);
        release.countDown();
        for (Future<Integer> a : answers) {
            assertThat(a.get(20, TimeUnit.SECONDS)).isEqualTo(200);
        }
        assertThat(most.get()).isEqualTo(2);
    }

    @Test
    void shouldLetLongPollsWaitWithoutTakingTheSlotsOfOtherRequests() throws Exception {
        HttpEndpoint ep = endpoint(1, Duration.ofSeconds(30));
        CountDownLatch news = new CountDownLatch(1);
        AtomicInteger waiting = new AtomicInteger();
        ep.route("/poll", "GET", ex -> {
            waiting.incrementAndGet();
            try {
                HttpEndpoint.idle(() -> news.await(20, TimeUnit.SECONDS));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            HttpEndpoint.sendJson(ex, 200, Map.of("news", true));
        });
        ep.route("/work", "GET", ex -> HttpEndpoint.sendJson(ex, 200, Map.of("ok", true)));
        ep.start();
        List<Future<Integer>> polls = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            polls.add(get(ep, "/poll"));
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> waiting.get() == 3);
        // One slot, three polls waiting in it: other requests are still served.
        assertThat(get(ep, "/work").get(10, TimeUnit.SECONDS)).isEqualTo(200);
        news.countDown();
        for (Future<Integer> p : polls) {
            assertThat(p.get(20, TimeUnit.SECONDS)).isEqualTo(200);
        }
    }

    @Test
    void shouldAnswer503WhenNoSlotFreesInTime() throws Exception {
        HttpEndpoint ep = endpoint(1, Duration.ofMillis(200));
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger running = new AtomicInteger();
        ep.route("/work", "GET", ex -> {
            running.incrementAndGet();
            try {
                release.await(20, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            HttpEndpoint.sendJson(ex, 200, Map.of("ok", true));
        });
        ep.start();
        Future<Integer> first = get(ep, "/work");
        await().atMost(Duration.ofSeconds(10)).until(() -> running.get() == 1);
        assertThat(get(ep, "/work").get(10, TimeUnit.SECONDS)).as("a second request finds the only slot taken").isEqualTo(503);
        release.countDown();
        assertThat(first.get(10, TimeUnit.SECONDS)).isEqualTo(200);
    }
}
