package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class FreshContentTest {
    private static final String CH = "images";

    private static FileMeta meta(String path, byte[] content) {
        return new FileMeta(path, content.length, 1_000, 0644, ContentHash.of(content));
    }

    /** What a walk does: reserves room, reads the file into it, keeps it. False when there was no room. */
    private static boolean keep(FreshContent kept, String path, byte[] content) {
        int at = kept.reserve(content.length);
        if (at < 0) {
            return false;
        }
        System.arraycopy(content, 0, kept.buffer(), at, content.length);
        kept.keep(CH, meta(path, content));
        return true;
    }

    /** What a sender does: takes a content into its array (one of MAX_FILE bytes); here a copy of what it got, or null. */
    static byte[] taken(FreshContent kept, String channel, String path, long size, String hash) {
        byte[] into = new byte[FreshContent.MAX_FILE];
        int n = kept.take(channel, path, size, hash, into);
        return n < 0 ? null : java.util.Arrays.copyOf(into, n);
    }

    @Test
    void shouldGiveEachContentOnceAndOnlyForTheChannelLengthAndHashItWasKeptWith() {
        FreshContent kept = new FreshContent(1024);
        byte[] a = "content of a".getBytes(StandardCharsets.UTF_8);
        assertThat(keep(kept, "a", a)).isTrue();
        assertThat(taken(kept, "other", "a", a.length, ContentHash.of(a))).as("another channel's a").isNull();
        assertThat(taken(kept, CH, "a", a.length, ContentHash.of(a))).isEqualTo(a);
        assertThat(taken(kept, CH, "a", a.length, ContentHash.of(a))).as("taken once").isNull();

        byte[] b = "content of b".getBytes(StandardCharsets.UTF_8);
        keep(kept, "b", b);
        assertThat(taken(kept, CH, "b", b.length, ContentHash.of("content of B".getBytes(StandardCharsets.UTF_8))))
                .as("the file was recorded with other content").isNull();
        keep(kept, "b", b);
        assertThat(taken(kept, CH, "b", b.length + 1, ContentHash.of(b))).isNull();
        assertThat(taken(kept, CH, "c", 0, ContentHash.of(new byte[0]))).as("never kept").isNull();
        byte[] empty = new byte[0];
        keep(kept, "e", empty);
        assertThat(taken(kept, CH, "e", 0, ContentHash.of(empty))).isEmpty();
        assertThat(kept.bytes()).as("all taken").isZero();

        keep(kept, "d", a);
        assertThatThrownBy(() -> kept.take(CH, "d", a.length, ContentHash.of(a), new byte[a.length - 1]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("'d'");
        assertThat(taken(kept, CH, "d", a.length, ContentHash.of(a))).as("still kept after the refusal").isEqualTo(a);
    }

    @Test
    void shouldFreeWithEachContentTakenThoseKeptBeforeItAndRefuseWhatHasNoRoom() {
        FreshContent kept = new FreshContent(100);
        byte[] x = new byte[40];
        byte[] y = new byte[40];
        byte[] z = new byte[30];
        y[0] = 1;
        z[0] = 2;
        assertThat(keep(kept, "x", x)).isTrue();
        assertThat(keep(kept, "y", y)).isTrue();
        assertThat(keep(kept, "z", z)).as("40 + 40 + 30 > 100").isFalse();
        assertThat(taken(kept, CH, "y", 40, ContentHash.of(y))).isEqualTo(y);
        assertThat(kept.bytes()).as("y and x before it freed").isZero();
        assertThat(taken(kept, CH, "x", 40, ContentHash.of(x))).as("freed with y").isNull();
        assertThat(keep(kept, "z", z)).as("room at the ring's end: 80 to 100 is too short, so from 0").isTrue();
        assertThat(kept.bytes()).as("the 20 bytes skipped at the end count until z is taken").isEqualTo(50);
        assertThat(keep(kept, "w", new byte[60])).as("50 + 60 > 100").isFalse();
        assertThat(taken(kept, CH, "z", 30, ContentHash.of(z))).isEqualTo(z);
        assertThat(keep(kept, "w", new byte[60])).as("at 30 to 90").isTrue();
        kept.clear();
        assertThat(kept.bytes()).isZero();
        assertThat(taken(kept, CH, "w", 60, ContentHash.of(new byte[60]))).as("cleared").isNull();

        assertThat(new FreshContent(10 << 20).reserve(FreshContent.MAX_FILE + 1)).as("no file longer than MAX_FILE").isNegative();
        assertThatThrownBy(() -> new FreshContent(100).keep(CH, meta("n", new byte[1]))).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("'n'");
        FreshContent many = new FreshContent(100);
        for (int i = 0; i < FreshContent.MAX_ENTRIES; i++) {
            assertThat(keep(many, "e" + i, new byte[0])).isTrue();
        }
        assertThat(keep(many, "one more", new byte[0])).as("at most MAX_ENTRIES files, empty ones too").isFalse();
    }

    @Test
    void shouldMakeRingsOnlyWhileTheProcesssBudgetLasts() {
        AtomicLong budget = new AtomicLong(250);
        FreshContent first = new FreshContent(100, budget);
        FreshContent second = new FreshContent(100, budget);
        FreshContent third = new FreshContent(100, budget);
        assertThat(budget.get()).as("nothing taken before a file needs it").isEqualTo(250);
        assertThat(keep(first, "a", new byte[10])).isTrue();
        assertThat(keep(second, "a", new byte[10])).isTrue();
        assertThat(keep(third, "a", new byte[10])).as("50 left").isFalse();
        assertThat(budget.get()).isEqualTo(50);
        assertThat(keep(first, "b", new byte[10])).as("its ring, made once").isTrue();
        assertThat(budget.get()).isEqualTo(50);
        first.close();
        assertThat(budget.get()).as("given back").isEqualTo(150);
        assertThat(taken(first, CH, "b", 10, ContentHash.of(new byte[10]))).isNull();
        assertThat(keep(first, "c", new byte[10])).as("nothing kept once closed").isFalse();
        assertThat(keep(third, "a", new byte[10])).isTrue();
        assertThat(budget.get()).isEqualTo(50);

        AtomicLong short_ = new AtomicLong(3 << 19); // 1.5 MiB: less than a ring of 32 MiB, more than MIN_RING
        FreshContent shorter = new FreshContent(32 << 20, short_);
        int fit = 0;
        while (keep(shorter, "f" + fit, new byte[FreshContent.MAX_FILE])) {
            fit++;
        }
        assertThat(fit).as("a ring of what the budget had left").isEqualTo(6);
        assertThat(short_.get()).isZero();
        assertThat(keep(new FreshContent(32 << 20, short_), "g", new byte[1])).as("nothing left").isFalse();
    }

    @Test
    void shouldForgetWhatATakeFreedSoThatAWalkOfManyFilesKeepsGoing() {
        FreshContent kept = new FreshContent(1024);
        byte[] one = {1};
        for (int i = 0; i < 2 * FreshContent.MAX_ENTRIES; i += 2) {
            assertThat(keep(kept, "f" + i, one)).as("f" + i).isTrue();
            assertThat(keep(kept, "f" + (i + 1), one)).as("f" + (i + 1)).isTrue();
            // The sender takes only the second (the first was, say, skipped by the hub): the first is freed with it.
            assertThat(taken(kept, CH, "f" + (i + 1), 1, ContentHash.of(one))).isEqualTo(one);
            assertThat(kept.entries()).as("nothing left kept after f" + (i + 1)).isZero();
        }
        assertThat(taken(kept, CH, "f0", 1, ContentHash.of(one))).as("freed").isNull();
    }

    @Test
    void shouldHandOutExactlyWhatWasKeptWhileOneThreadKeepsAndAnotherTakes() throws Exception {
        FreshContent kept = new FreshContent(64 * 1024);
        int files = 20_000;
        List<byte[]> contents = new ArrayList<>();
        for (int i = 0; i < files; i++) {
            contents.add(("file " + i + " ").repeat(1 + i % 50).getBytes(StandardCharsets.UTF_8));
        }
        List<String> hashes = contents.stream().map(ContentHash::of).toList();
        AtomicLong keptCount = new AtomicLong();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<?> walk = pool.submit(() -> {
                for (int i = 0; i < files; i++) {
                    if (keep(kept, "f" + i, contents.get(i))) {
                        keptCount.incrementAndGet();
                    }
                }
                return null;
            });
            Future<Integer> sender = pool.submit(() -> {
                int got = 0;
                byte[] into = new byte[FreshContent.MAX_FILE]; // (one array for every take, as a sender has)
                for (int round = 0; round < 100 && got < files; round++) {
                    for (int i = 0; i < files; i++) {
                        byte[] c = contents.get(i);
                        int n = kept.take(CH, "f" + i, c.length, hashes.get(i), into);
                        if (n >= 0) {
                            assertThat(java.util.Arrays.copyOf(into, n)).as("f" + i).isEqualTo(c);
                            got++;
                        }
                    }
                }
                return got;
            });
            walk.get(60, TimeUnit.SECONDS);
            int got = sender.get(60, TimeUnit.SECONDS);
            assertThat(got).as("some taken (each checked above)").isPositive();
        } finally {
            pool.shutdownNow();
        }
    }
}
