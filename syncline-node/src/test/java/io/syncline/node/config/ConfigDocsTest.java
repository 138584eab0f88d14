package io.syncline.node.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class ConfigDocsTest {
    @Test
    void shouldDocumentEveryKeyExactlyAsDefined() throws Exception {
        Path docs = Path.of("..", "docs", "configuration.md");
        String text = Files.readString(docs);
        int start = text.indexOf("<!-- keys:start -->\n");
        int end = text.indexOf("<!-- keys:end -->");
        assertThat(start).as("keys:start marker in %s", docs).isNotNegative();
        String documented = text.substring(start + "<!-- keys:start -->\n".length(), end).strip();
        assertThat(documented).as("docs/configuration.md is stale: regenerate with `syncline config-keys`")
                .isEqualTo(ConfigDocs.keyTable().strip());
    }
}
