package io.syncline.node.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.node.config.ConfigKey.Role;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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
                hub: {url: "http://127.0.0.1:1"}
                http: {port: 70000}
                files: {partialMaxAge: PT-5M, scanInterval: 99999999d}
                channels:
                  - name: products
                    tables: [{hubColumn: site_id}]
                """;
        assertThatThrownBy(() -> NodeConfig.parse(bad, Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("node.id: 'bad id' is not a valid name")
                .hasMessageContaining("database.poolSize: expected a non-negative whole number, got 'lots'")
                .hasMessageContaining("hub.url: is a site setting; a hub does not read it")
                .hasMessageContaining("http.port: port must be 0..65535")
                .hasMessageContaining("files.partialMaxAge: expected a duration from 0 to 36500d, got 'PT-5M'")
                .hasMessageContaining("files.scanInterval: expected a duration from 0 to 36500d, got '99999999d'")
                .hasMessageContaining("channels[0].tables[0].name: required, missing")
                .hasMessageContaining("database.url: required, missing")
                .hasMessageContaining("enrollment.token: required, missing");
    }

    @Test
    void shouldReadHubToSitesChannelsWithTheirRoutingAndSiteAttributes() {
        NodeConfig cfg = NodeConfig.parse("""
                node: {id: hq}
                database: {url: "jdbc:h2:mem:hq"}
                enrollment: {token: t}
                sites:
                  store-1: {attributes: {region: north, storeType: mall}}
                channels:
                  - name: catalog
                    direction: hub-to-sites
                    sites: "storeType = 'mall'"
                    tables: [{name: promo, target: hq_promo, filter: "region = :site.region"}]
                """, Role.HUB, Map.of());
        ChannelSpec ch = cfg.channels().getFirst();
        assertThat(ch.direction()).isEqualTo(ChannelSpec.Direction.HUB_TO_SITES);
        assertThat(ch.sites()).isEqualTo("storeType = 'mall'");
        assertThat(ch.tables().getFirst()).isEqualTo(new TableSpec("promo", "hq_promo", null, "region = :site.region"));
        assertThat(cfg.siteAttributes("store-1")).containsExactly(Map.entry("region", "north"), Map.entry("storeType", "mall"),
                Map.entry("id", "store-1"));
        assertThat(cfg.siteAttributes("store-2")).containsExactly(Map.entry("id", "store-2"));
    }

    @Test
    void shouldReadFileColumnsAndRefuseOnesNoFileChannelCanServe() {
        String base = """
                node: {id: hq}
                database: {url: "jdbc:h2:mem:hq"}
                enrollment: {token: t}
                channels:
                  - {name: products, tables: [{name: product, files: {Image: images, sheet: %s}}]}
                fileChannels:
                  - {name: images}
                  - {name: docs, direction: hub-to-sites}
                """;
        NodeConfig cfg = NodeConfig.parse(base.formatted("images"), Role.HUB, Map.of());
        assertThat(cfg.channels().getFirst().tables().getFirst().files()).isEqualTo(Map.of("image", "images", "sheet", "images"));
        assertThat(cfg.fileReferenceWait()).isEqualTo(Duration.ofMinutes(10));

        assertThatThrownBy(() -> NodeConfig.parse(base.formatted("specs"), Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("channel 'products' table 'product' column 'sheet' references file channel 'specs', which is not defined");
        assertThatThrownBy(() -> NodeConfig.parse(base.formatted("docs"), Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("column 'sheet' references file channel 'docs', which flows hub-to-sites while the table's "
                        + "channel flows site-to-hub");
        assertThatThrownBy(() -> NodeConfig.parse(base.replace("- {name: products, tables", "- {name: products, direction: two-way, tables")
                .replace("- {name: images}", "- {name: images, direction: two-way}").formatted("images"), Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("references file channel 'images', which flows two-way while the table's channel flows "
                        + "two-way: a row can wait only for a file that travels the same way, site-to-hub or hub-to-sites");
        assertThatThrownBy(() -> NodeConfig.parse(base.formatted("'no good'"), Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("channels[0].tables[0].files.sheet: 'no good' is not a valid name");
    }

    @Test
    void shouldRefuseRoutingThatCannotWork() {
        String bad = """
                node: {id: hq}
                database: {url: "jdbc:h2:mem:hq"}
                enrollment: {token: t}
                channels:
                  - name: catalog
                    direction: hub-to-sites
                    sites: "region IN ('north'"
                    tables: [{name: promo, filter: "region = = 1"}]
                  - name: up
                    direction: sideways
                    tables: [{name: sale}]
                  - name: both
                    direction: two-way
                    conflict: {policy: newest-wins}
                    tables: [{name: stock, conflict: {policy: hub-wins, priority: ["not a name"]}}]
                """;
        assertThatThrownBy(() -> NodeConfig.parse(bad, Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("channels[0].sites: expected ',' or ')' in the IN list but found end of input at position 19")
                .hasMessageContaining("channels[0].tables[0].filter: ")
                .hasMessageContaining("at position 10 in \"region = = 1\"")
                .hasMessageContaining("channels[1].direction: expected 'site-to-hub', 'hub-to-sites' or 'two-way', got 'sideways'")
                .hasMessageContaining("channels[2].conflict.policy: unknown conflict policy 'newest-wins' (known: [hub-wins, site-priority, "
                        + "last-writer-wins, column-merge, custom, manual])")
                .hasMessageContaining("channels[2].tables[0].conflict.priority[0]: 'not a name' is not a valid name");
        String incomplete = """
                node: {id: hq}
                database: {url: "jdbc:h2:mem:hq"}
                enrollment: {token: t}
                channels:
                  - name: both
                    direction: two-way
                    conflict: {policy: site-priority}
                    tables: [{name: stock, conflict: {priority: [b]}}]
                """;
        assertThatThrownBy(() -> NodeConfig.parse(incomplete, Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("channels[0].tables[0].conflict: names no policy");
        String noList = incomplete.replace("tables: [{name: stock, conflict: {priority: [b]}}]", "tables: [{name: stock}]");
        assertThatThrownBy(() -> NodeConfig.parse(noList, Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("channels[0].conflict: conflict policy site-priority needs a priority list of node ids");
        String misplaced = """
                node: {id: hq}
                database: {url: "jdbc:h2:mem:hq"}
                enrollment: {token: t}
                channels:
                  - name: catalog
                    direction: hub-to-sites
                    tables: [{name: promo, hubColumn: site_id}]
                """;
        assertThatThrownBy(() -> NodeConfig.parse(misplaced, Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("channels: channel 'catalog' table 'promo': hubColumn belongs to site-to-hub channels");
        String filterUp = """
                node: {id: hq}
                database: {url: "jdbc:h2:mem:hq"}
                enrollment: {token: t}
                channels:
                  - name: up
                    tables: [{name: sale, filter: "id > 1"}]
                """;
        assertThatThrownBy(() -> NodeConfig.parse(filterUp, Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("channel 'up' table 'sale': a row filter belongs to hub-to-sites channels");
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

    @Test
    void shouldRefuseTwoFileChannelFoldersThatAreTheSameOrOneInsideTheOther(@TempDir Path tmp) throws Exception {
        String site = """
                node: {id: s1}
                database: {url: "jdbc:h2:mem:s1"}
                hub: {url: "http://127.0.0.1:1", token: t}
                folders: {%s}
                """;
        Path images = Files.createDirectories(tmp.resolve("images"));
        Path docs = Files.createDirectories(tmp.resolve("docs"));
        Path link = Files.createSymbolicLink(tmp.resolve("link"), images);
        NodeConfig ok = NodeConfig.parse(site.formatted("images: \"" + images + "\", docs: \"" + docs + "\", later: \""
                + tmp.resolve("images-2") + "\""), Role.SITE, Map.of());
        assertThat(ok.folder("docs")).contains(docs);

        assertThatThrownBy(() -> NodeConfig.parse(site.formatted("images: \"" + images + "\", catalog: \"" + tmp.resolve("docs/../images/")
                + "\""), Role.SITE, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("folders.catalog (" + tmp.resolve("docs/../images/") + ") and folders.images (" + images
                        + "): the same folder; the folders of two file channels may be neither the same nor one inside the other");
        String hub = """
                node: {id: hq}
                database: {url: "jdbc:h2:mem:hq"}
                enrollment: {token: t}
                fileChannels: [{name: thumbs}, {name: images, direction: hub-to-sites}]
                folders: {thumbs: "%s", images: "%s"}
                """;
        assertThatThrownBy(() -> NodeConfig.parse(hub.formatted(images.resolve("thumbs"), images), Role.HUB, Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("folders.images (" + images + ") and folders.thumbs (" + images.resolve("thumbs")
                        + "): one is inside the other");
        assertThatThrownBy(() -> NodeConfig.parse(site.formatted("images: \"" + images + "\", mirror: \"" + link + "\""), Role.SITE,
                Map.of()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("folders.mirror (" + link + ") and folders.images (" + images + "): the same folder");
    }
}
