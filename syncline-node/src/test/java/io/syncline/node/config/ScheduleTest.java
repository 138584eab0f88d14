package io.syncline.node.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ScheduleTest {
    private static final Instant AT = Instant.parse("2026-11-29T13:17:00Z");

    @Test
    void shouldBeRealTimeUnlessToldOtherwise() {
        assertThat(Schedule.of(null).realtime()).isTrue();
        assertThat(Schedule.of("realtime").realtime()).isTrue();
        assertThat(Schedule.of(" RealTime ").realtime()).isTrue();
    }

    @Test
    void shouldRunAFixedIntervalFromTheLastRun() {
        Schedule s = Schedule.of("15m");
        assertThat(s).isEqualTo(new Schedule.Every(Duration.ofMinutes(15)));
        assertThat(s.next(AT, ZoneOffset.UTC)).isEqualTo(AT.plusSeconds(900));
    }

    @Test
    void shouldRunACronExpressionAtItsTimesInTheGivenZone() {
        Schedule nightly = Schedule.of("0 2 * * *");
        assertThat(nightly.realtime()).isFalse();
        assertThat(nightly.next(AT, ZoneOffset.UTC)).isEqualTo(Instant.parse("2026-11-30T02:00:00Z"));
        // 02:00 in Paris (UTC+1 in November) is 01:00 UTC.
        assertThat(nightly.next(AT, ZoneId.of("Europe/Paris"))).isEqualTo(Instant.parse("2026-11-30T01:00:00Z"));
        assertThat(Schedule.of("*/10 * * * 1-5").next(AT, ZoneOffset.UTC)).isEqualTo(Instant.parse("2026-11-30T00:00:00Z"));
    }

    @Test
    void shouldNameWhatIsWrongWithABadSchedule() {
        assertThatThrownBy(() -> Schedule.of("soon")).hasMessageContaining("'soon'").hasMessageContaining("cron expression");
        assertThatThrownBy(() -> Schedule.of("0 25 * * *")).hasMessageContaining("'0 25 * * *'").hasMessageContaining("five fields");
        assertThatThrownBy(() -> Schedule.of("0ms")).hasMessageContaining("positive");
    }

    @Test
    void shouldRefuseABadScheduleInAHubConfigurationNamingTheKey() {
        assertThatThrownBy(() -> NodeConfig.parse("""
                node: {id: hq}
                database: {url: "jdbc:h2:mem:x"}
                enrollment: {token: t}
                channels:
                  - {name: sales, tables: [{name: sale}]}
                  - {name: nightly, schedule: "0 2 * *", tables: [{name: stock}]}
                """, ConfigKey.Role.HUB, Map.of()).channels())
                .hasMessageContaining("channels[1].schedule").hasMessageContaining("'0 2 * *'");
    }
}
