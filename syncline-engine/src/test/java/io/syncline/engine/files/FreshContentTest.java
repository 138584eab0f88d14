package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class FreshContentTest {
    private static FileMeta meta(String path, byte[] content) {
        return new FileMeta(path, content.length, 1_000, 0644, ContentHash.of(content));
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void shouldGiveEachContentOnceAndOnlyForTheLengthAndHashItWasKeptWith() {
        FreshContent kept = new FreshContent(1024);
        byte[] a = bytes("content of a");
        kept.put(meta("a", a), a);
        assertThat(kept.bytes()).isEqualTo(a.length);
        assertThat(kept.take("a", a.length, ContentHash.of(a))).isEqualTo(a);
        assertThat(kept.take("a", a.length, ContentHash.of(a))).as("taken once").isNull();
        assertThat(kept.bytes()).isZero();

        byte[] b = bytes("content of b");
        kept.put(meta("b", b), b);
        assertThat(kept.take("b", b.length, ContentHash.of(bytes("content of B")))).as("the file was recorded with other content").isNull();
        assertThat(kept.bytes()).as("dropped all the same").isZero();
        kept.put(meta("b", b), b);
        assertThat(kept.take("b", b.length + 1, ContentHash.of(b))).isNull();
        assertThat(kept.take("c", 0, ContentHash.of(new byte[0]))).as("never kept").isNull();
    }

    @Test
    void shouldKeepNoMoreThanItsBoundAndMakeRoomAsContentIsTakenOrCleared() {
        FreshContent kept = new FreshContent(100);
        byte[] sixty = new byte[60];
        byte[] fifty = new byte[50];
        assertThat(kept.roomFor()).isEqualTo(100);
        kept.put(meta("x", sixty), sixty);
        assertThat(kept.roomFor()).isEqualTo(40);
        kept.put(meta("y", fifty), fifty);
        assertThat(kept.bytes()).as("no room for y").isEqualTo(60);
        assertThat(kept.take("y", 50, ContentHash.of(fifty))).isNull();
        kept.put(meta("x", fifty), fifty);
        assertThat(kept.bytes()).as("x's new content replaces its old").isEqualTo(50);
        kept.clear();
        assertThat(kept.bytes()).isZero();
        assertThat(kept.roomFor()).isEqualTo(100);
        assertThat(kept.take("x", 50, ContentHash.of(fifty))).isNull();

        assertThat(new FreshContent(10L << 20).roomFor()).as("no file longer than MAX_FILE").isEqualTo(FreshContent.MAX_FILE);
        byte[] large = new byte[FreshContent.MAX_FILE + 1];
        assertThatThrownBy(() -> new FreshContent(10L << 20).put(meta("large", large), large)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'large'");
        assertThatThrownBy(() -> kept.put(meta("short", sixty), fifty)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'short'");
    }

    @Test
    void shouldCountItsBytesRightWhileOneThreadPutsAndOthersTakeAndClear() throws Exception {
        FreshContent kept = new FreshContent(64 * 1024);
        int files = 20_000;
        List<FileMeta> metas = new ArrayList<>();
        for (int i = 0; i < files; i++) {
            byte[] b = bytes("file " + i);
            metas.add(meta("f" + i, b));
        }
        ExecutorService pool = Executors.newFixedThreadPool(3);
        CountDownLatch start = new CountDownLatch(1);
        try {
            Future<?> putter = pool.submit(() -> {
                start.await();
                for (FileMeta m : metas) {
                    kept.put(m, bytes("file " + m.path().substring(1)));
                }
                return null;
            });
            Future<Integer> taker = pool.submit(() -> {
                start.await();
                int got = 0;
                for (FileMeta m : metas) {
                    byte[] b = kept.take(m.path(), m.size(), m.hash());
                    if (b != null) {
                        assertThat(ContentHash.of(b)).isEqualTo(m.hash());
                        got++;
                    }
                }
                return got;
            });
            Future<?> clearer = pool.submit(() -> {
                start.await();
                for (int i = 0; i < 200; i++) {
                    kept.clear();
                    Thread.yield();
                }
                return null;
            });
            start.countDown();
            putter.get(60, TimeUnit.SECONDS);
            taker.get(60, TimeUnit.SECONDS);
            clearer.get(60, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
        }
        long left = 0;
        for (FileMeta m : metas) {
            byte[] b = kept.take(m.path(), m.size(), m.hash());
            left += b == null ? 0 : b.length;
        }
        assertThat(kept.bytes()).as("the count matches what is kept: nothing, once all is taken").isZero();
        assertThat(left).isLessThanOrEqualTo(64 * 1024);
    }
}
