package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class OnceTest {
    @Test
    void shouldTellEachThingOnceAndForgetAllPastItsBound() {
        Once once = new Once();
        assertThat(once.first("a")).isTrue();
        assertThat(once.first("a")).isFalse();
        assertThat(once.first("b")).isTrue();
        for (int i = 2; i < Once.MAX; i++) {
            assertThat(once.first("x" + i)).isTrue();
        }
        assertThat(once.first("a")).as("still within the bound").isFalse();
        assertThat(once.first("one more")).as("past the bound: everything forgotten, this one kept").isTrue();
        assertThat(once.first("a")).as("told again, once").isTrue();
        assertThat(once.first("a")).isFalse();
        assertThat(once.first("one more")).isFalse();
    }
}
