package io.syncline.node.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.node.config.ConfigKey.Role;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

class NodeConfigTest {
    private static final String HUB = """
            node: {id: hq}
            database: {url: "jdbc:h2:mem:x", password: "${DB_PW}"}
            enrollment: {token: "${TOKEN}"}
            sites: {s7: {mode: pull, interval: 5s, url: "http://10.0.0.7:8081"}}
            channels:
              - name: products
                tables: [{name: product, hubColumn: site_id}, {name: price}]
            """;

    @Test
    void shouldParseHubConfigWithSecretsFromEnvironment() {
        NodeConfig cfg = NodeConfig.parse(HUB, Role.HUB, Map.of("DB_PW", "pw", "TOKEN", "t0k"));
        assertThat(cfg.databasePassword()).isEqualTo("pw");
        assertThat(cfg.enrollmentToken()).isEqualTo("t0k");
        assertThat(cfg.channels()).hasSize(1);
        assertThat(cfg.channels().get(0).tables().get(0).hubColumn()).isEqualTo("site_id");
        assertThat(cfg.schedule("s7")).isEqualTo(new SiteSchedule(SiteSchedule.Mode.PULL, Duration.ofSeconds(5), "http://10.0.0.7:8081"));
        assertThat(cfg.schedule("other")).isEqualTo(new SiteSchedule(SiteSchedule.Mode.PUSH, Duration.ofSeconds(1), null));
    }

    @Test
    void shouldNameMissingEnvironmentVariableAndKey() {
        assertThatThrownBy(() -> NodeConfig.parse(HUB, Role.HUB, Map.of("DB_PW", "pw")))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("enrollment.token: environment variable TOKEN is not set");
    }

    @Test
    void shouldReportEveryProblemNamingItsKey() {
        String bad = """
                node: {id: "bad id"}
                database: {poolSize: lots}
                capture: {interval: 5s}
                http: {port: 70000}
                channels:
                  - name: products
                    tables: [{hubColumn: site_id}]
                """;
        assertThatThrownBy(() -> NodeConfig.parse(bad, Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("node.id: 'bad id' is not a valid name")
                .hasMessageContaining("database.poolSize: expected a non-negative whole number, got 'lots'")
                .hasMessageContaining("capture.interval: is a site setting; a hub does not read it")
                .hasMessageContaining("http.port: port must be 0..65535")
                .hasMessageContaining("channels[0].tables[0].name: required, missing")
                .hasMessageContaining("database.url: required, missing")
                .hasMessageContaining("enrollment.token: required, missing");
    }

    @Test
    void shouldSuggestTheKeyMeantByATypo() {
        String site = """
                node: {id: s1}
                database: {url: "jdbc:h2:mem:s1"}
                hub: {url: "http://127.0.0.1:1", token: t}
                capture: {intervall: 5s}
                """;
        assertThatThrownBy(() -> NodeConfig.parse(site, Role.SITE, Map.of()))
                .hasMessageContaining("capture.intervall: unknown key (did you mean 'capture.interval'?)");
    }

    @Test
    void shouldRefuseBadDurationAndUrlNamingTheKey() {
        String site = """
                node: {id: s1}
                database: {url: "jdbc:h2:mem:s1"}
                hub: {url: "ftp://hq", token: t}
                capture: {interval: soon}
                """;
        assertThatThrownBy(() -> NodeConfig.parse(site, Role.SITE, Map.of()))
                .hasMessageContaining("hub.url: expected an http:// or https:// URL, got 'ftp://hq'")
                .hasMessageContaining("capture.interval: expected a duration such as 500ms");
    }

    @Test
    void shouldRefuseATableInTwoChannels() {
        String hub = """
                node: {id: hq}
                database: {url: "jdbc:h2:mem:x"}
                enrollment: {token: t}
                channels:
                  - {name: a, tables: [{name: product}]}
                  - {name: b, tables: [{name: PRODUCT}]}
                """;
        assertThatThrownBy(() -> NodeConfig.parse(hub, Role.HUB, Map.of()))
                .hasMessageContaining("a table is in more than one channel");
    }
}
