package io.syncline.node.config;

import java.util.Locale;
import java.util.stream.Collectors;

/** Renders the configuration reference (docs/configuration.md) from {@link ConfigDef}. */
public final class ConfigDocs {
    private ConfigDocs() {
    }

    /** The generated Markdown table of keys. */
    public static String keyTable() {
        StringBuilder sb = new StringBuilder();
        sb.append("| key | type | default | required | read by | meaning |\n");
        sb.append("|---|---|---|---|---|---|\n");
        for (ConfigKey k : ConfigDef.KEYS) {
            sb.append("| `").append(k.path()).append("` | ").append(k.type().name().toLowerCase(Locale.ROOT).replace("enum_", ""))
                    .append(" | ").append(k.defaultValue() == null || k.defaultValue().isEmpty() ? "" : "`" + k.defaultValue() + "`")
                    .append(" | ").append(k.required() ? "yes" : "")
                    .append(" | ").append(k.roles().stream().map(r -> r.name().toLowerCase(Locale.ROOT)).sorted().collect(Collectors.joining(", ")))
                    .append(" | ").append(k.doc().replace("|", "\\|")).append(" |\n");
        }
        return sb.toString();
    }
}
