package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class BackoffTest {
    @Test
    void shouldDoubleEachWaitWithinItsJitterUpToTheCap() {
        Backoff b = new Backoff(Duration.ofMillis(100), Duration.ofSeconds(2), new Random(42));
        long[] ceilings = {100, 200, 400, 800, 1600, 2000, 2000, 2000};
        for (long ceiling : ceilings) {
            assertThat(b.next().toMillis()).isBetween(ceiling / 2, ceiling);
        }
        assertThat(b.failures()).isEqualTo(ceilings.length);
    }

    @Test
    void shouldStartOverFromTheBaseAfterASuccess() {
        Backoff b = new Backoff(Duration.ofMillis(100), Duration.ofMinutes(1), new Random(7));
        for (int i = 0; i < 40; i++) {
            b.next(); // far past the cap, without overflowing
        }
        assertThat(b.next()).isLessThanOrEqualTo(Duration.ofMinutes(1)).isGreaterThanOrEqualTo(Duration.ofSeconds(30));
        b.reset();
        assertThat(b.failures()).isZero();
        assertThat(b.next().toMillis()).isBetween(50L, 100L);
    }

    @Test
    void shouldSpreadTheRetriesOfManySitesThatFailedTogether() {
        Random shared = new Random(1);
        Set<Long> firstWaits = new HashSet<>();
        for (int site = 0; site < 100; site++) {
            firstWaits.add(new Backoff(Duration.ofSeconds(1), Duration.ofMinutes(1), shared).next().toMillis());
        }
        // 100 sites cut off by one hub restart do not come back in the same millisecond.
        assertThat(firstWaits).hasSizeGreaterThan(80);
        assertThat(firstWaits).allMatch(ms -> ms >= 500 && ms <= 1000);
    }

    @Test
    void shouldRefuseABaseAboveItsCap() {
        assertThatThrownBy(() -> new Backoff(Duration.ofSeconds(2), Duration.ofSeconds(1), new Random()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0 < base <= max");
    }
}
