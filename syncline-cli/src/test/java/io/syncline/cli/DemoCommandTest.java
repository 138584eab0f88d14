package io.syncline.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's first command, small: a hub and a few sites converge and the demo says so. */
class DemoCommandTest {
    @Test
    void shouldEndWithEverySiteMatchingTheHub(@TempDir Path dir) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        boolean ok;
        try (PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
            ok = new Demo(dir, 4, Duration.ofSeconds(3), 10, out).run();
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertThat(ok).as(text).isTrue();
        assertThat(text).contains("site-01", "site-04", "Every site matches the hub.").doesNotContain(" NO");
    }

    @Test
    void shouldRefuseAnImpossibleSiteCount() {
        assertThat(Main.run("demo", "--sites", "0")).isEqualTo(2);
    }
}
