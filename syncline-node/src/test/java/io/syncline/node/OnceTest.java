package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class OnceTest {
    @Test
    void shouldTellEachThingOnceAndNothingNewPastItsBoundSayingSoOnce() {
        AtomicInteger full = new AtomicInteger();
        Once once = new Once(full::incrementAndGet);
        assertThat(once.first("a")).isTrue();
        assertThat(once.first("a")).isFalse();
        assertThat(once.first("b")).isTrue();
        for (int i = 2; i < Once.MAX; i++) {
            assertThat(once.first("x" + i)).isTrue();
        }
        assertThat(full).hasValue(0);
        assertThat(once.first("a")).as("remembered").isFalse();
        assertThat(once.first("one more")).as("past the bound: not told").isFalse();
        assertThat(once.first("and another")).isFalse();
        assertThat(full).as("said once that more are not told").hasValue(1);
        assertThat(once.first("b")).isFalse();
    }
}
