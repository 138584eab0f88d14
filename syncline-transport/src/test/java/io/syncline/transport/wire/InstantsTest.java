package io.syncline.transport.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The header timestamps read directly are exactly what {@link Instant#parse} reads; anything else goes to it. */
class InstantsTest {
    @Test
    void shouldReadEveryInstantAsItsOwnToStringAsInstantParseDoes() {
        SplittableRandom random = new SplittableRandom(42);
        for (int i = 0; i < 100_000; i++) {
            // 1900 to 2200, with 0, 3, 6 or 9 fraction digits as Instant.toString writes them
            long seconds = random.nextLong(-2_208_988_800L, 7_258_118_400L);
            int nanos = switch (i % 4) {
                case 0 -> 0;
                case 1 -> random.nextInt(1000) * 1_000_000;
                case 2 -> random.nextInt(1_000_000) * 1_000;
                default -> random.nextInt(1_000_000_000);
            };
            Instant t = Instant.ofEpochSecond(seconds, nanos);
            assertThat(Instants.parse(t.toString())).as(t.toString()).isEqualTo(t).isEqualTo(Instant.parse(t.toString()));
        }
    }

    @Test
    void shouldReadOtherFractionLengthsAndLeaveOtherFormsToInstantParse() {
        for (String s : new String[] {"2026-11-29T17:22:22.1Z", "2026-11-29T17:22:22.12345Z", "2024-02-29T00:00:00Z",
                "+10000-01-01T00:00:00Z", "1970-01-01T00:00:00.000000001Z", "2026-11-29T24:00:00Z", "2026-11-29T17:22:22.Z"}) {
            assertThat(Instants.parse(s)).as(s).isEqualTo(Instant.parse(s));
        }
    }

    @Test
    void shouldRefuseWhatInstantParseRefusesWithItsMessage() {
        for (String s : new String[] {"2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-29T17:2x:22Z",
                "2026-11-29 17:22:22Z", "yesterday", ""}) {
            assertThatThrownBy(() -> Instants.parse(s)).as(s).isInstanceOf(DateTimeParseException.class);
        }
    }
}
