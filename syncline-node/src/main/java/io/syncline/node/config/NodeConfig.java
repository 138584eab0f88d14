package io.syncline.node.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.syncline.api.ChannelSpec;
import io.syncline.api.ConflictPolicy;
import io.syncline.api.FileChannelSpec;
import io.syncline.api.Names;
import io.syncline.api.TableSpec;
import io.syncline.engine.route.RouteExpression;
import io.syncline.node.config.ConfigKey.Role;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A node's validated configuration. Built once at start by {@link #parse}; every problem found is reported
 * together, each naming its key; after that the object is immutable and thread-safe.
 */
public final class NodeConfig {
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static final Pattern ENV = Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?}");
    private static final Map<String, ConfigKey> BY_PATH = new LinkedHashMap<>();

    static {
        for (ConfigKey k : ConfigDef.KEYS) {
            BY_PATH.put(k.path(), k);
        }
    }

    private final Role role;
    private final JsonNode root;

    private NodeConfig(Role role, JsonNode root) {
        this.role = role;
        this.root = root;
    }

    /** Reads and validates a YAML file. */
    public static NodeConfig load(Path file, Role role, Map<String, String> env) {
        try {
            return parse(Files.readString(file), role, env);
        } catch (IOException e) {
            throw new ConfigException("cannot read configuration file " + file + ": " + e.getMessage());
        }
    }

    /**
     * Parses and validates YAML text for a node of {@code role}; {@code ${VAR}} and {@code ${VAR:-default}}
     * are replaced from {@code env}.
     *
     * @throws ConfigException listing every problem, each naming its key
     */
    public static NodeConfig parse(String yaml, Role role, Map<String, String> env) {
        JsonNode root;
        try {
            root = YAML.readTree(yaml);
        } catch (IOException e) {
            throw new ConfigException("configuration is not valid YAML: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw new ConfigException("configuration must be a YAML mapping of keys (node, database, ...)");
        }
        List<String> problems = new ArrayList<>();
        walk(root, "", "", role, env, problems);
        checkRequired(root, role, problems);
        checkFolders(root, problems);
        if (problems.isEmpty()) {
            NodeConfig cfg = new NodeConfig(role, root);
            try {
                if (role == Role.HUB) {
                    cfg.channels();
                }
            } catch (IllegalArgumentException e) {
                problems.add("channels: " + e.getMessage());
            }
            try {
                if (role == Role.HUB && problems.isEmpty()) {
                    cfg.fileChannels();
                }
            } catch (IllegalArgumentException e) {
                problems.add(e.getMessage().startsWith("fileChannels") ? e.getMessage() : "fileChannels: " + e.getMessage());
            }
            if (problems.isEmpty()) {
                return cfg;
            }
        }
        throw new ConfigException("invalid " + role.name().toLowerCase(Locale.ROOT) + " configuration:\n  - "
                + String.join("\n  - ", problems));
    }

    private static void walk(JsonNode node, String path, String pattern, Role role, Map<String, String> env, List<String> problems) {
        if (node.isObject()) {
            Iterator<Map.Entry<String, JsonNode>> it = node.fields();
            List<Map.Entry<String, JsonNode>> replace = new ArrayList<>();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                String childPath = path.isEmpty() ? e.getKey() : path + "." + e.getKey();
                // A map keyed by names the user chooses (site ids, attribute names) has a '*' in its keys' paths.
                String childPattern = BY_PATH.containsKey(pattern + ".*") || isPrefix(pattern + ".*") ? pattern + ".*"
                        : pattern.isEmpty() ? e.getKey() : pattern + "." + e.getKey();
                if (pattern.equals("sites") && !Names.isValid(e.getKey())) {
                    problems.add(childPath + ": '" + e.getKey() + "' is not a valid site id");
                }
                ConfigKey key = BY_PATH.get(childPattern);
                boolean container = e.getValue().isObject() || e.getValue().isArray();
                if (key == null && !(container && isPrefix(childPattern))) {
                    problems.add(childPath + ": unknown key" + suggestion(childPattern));
                    continue;
                }
                if (key != null && !key.roles().contains(role)) {
                    problems.add(childPath + ": is a " + key.roles().iterator().next().name().toLowerCase(Locale.ROOT)
                            + " setting; a " + role.name().toLowerCase(Locale.ROOT) + " does not read it");
                    continue;
                }
                if (key != null && !container) {
                    JsonNode value = e.getValue();
                    if (value.isTextual()) {
                        String substituted = substitute(childPath, value.asText(), env, problems);
                        if (substituted != null) {
                            replace.add(Map.entry(e.getKey(), TextNode.valueOf(substituted)));
                            value = TextNode.valueOf(substituted);
                        }
                    }
                    check(key, childPath, value, problems);
                } else {
                    walk(e.getValue(), childPath, childPattern, role, env, problems);
                }
            }
            for (Map.Entry<String, JsonNode> r : replace) {
                ((ObjectNode) node).set(r.getKey(), r.getValue());
            }
        } else if (node.isArray()) {
            ConfigKey item = BY_PATH.get(pattern + "[]");
            for (int i = 0; i < node.size(); i++) {
                if (item != null && node.get(i).isValueNode()) {
                    check(item, path + "[" + i + "]", node.get(i), problems); // a list of values, e.g. node ids
                } else {
                    walk(node.get(i), path + "[" + i + "]", pattern + "[]", role, env, problems);
                }
            }
        }
    }

    private static boolean isPrefix(String pattern) {
        return BY_PATH.keySet().stream().anyMatch(p -> p.startsWith(pattern + ".") || p.startsWith(pattern + "[]"));
    }

    /** The defined key closest to a mistyped one (edit distance at most 2), as " (did you mean 'x'?)", or "". */
    private static String suggestion(String pattern) {
        String best = null;
        int bestDistance = 3;
        for (String candidate : BY_PATH.keySet()) {
            int d = distance(pattern.toLowerCase(Locale.ROOT), candidate.toLowerCase(Locale.ROOT));
            if (d < bestDistance) {
                bestDistance = d;
                best = candidate;
            }
        }
        return best == null ? "" : " (did you mean '" + best + "'?)";
    }

    private static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    private static String substitute(String path, String text, Map<String, String> env, List<String> problems) {
        Matcher m = ENV.matcher(text);
        StringBuilder sb = new StringBuilder();
        boolean any = false;
        while (m.find()) {
            any = true;
            String value = env.get(m.group(1));
            if (value == null) {
                value = m.group(2);
            }
            if (value == null) {
                problems.add(path + ": environment variable " + m.group(1) + " is not set");
                value = "";
            }
            m.appendReplacement(sb, Matcher.quoteReplacement(value));
        }
        m.appendTail(sb);
        return any ? sb.toString() : null;
    }

    private static void check(ConfigKey key, String path, JsonNode v, List<String> problems) {
        String text = v.asText();
        try {
            switch (key.type()) {
                case INT -> {
                    if (!v.canConvertToInt() && !text.matches("-?\\d+") || Integer.parseInt(text) < 0) {
                        problems.add(path + ": expected a non-negative whole number, got '" + text + "'");
                    }
                }
                case PORT -> {
                    int p = Integer.parseInt(text);
                    if (p < 0 || p > 65535) {
                        problems.add(path + ": port must be 0..65535, got " + text);
                    }
                }
                case DURATION -> {
                    Duration d = parseDuration(text);
                    if (d.isNegative() || d.compareTo(Duration.ofDays(36_500)) > 0) {
                        problems.add(path + ": expected a duration from 0 to 36500d, got '" + text + "'");
                    }
                }
                case URL -> {
                    URI u = URI.create(text);
                    if (!"http".equals(u.getScheme()) && !"https".equals(u.getScheme()) || u.getHost() == null) {
                        problems.add(path + ": expected an http:// or https:// URL, got '" + text + "'");
                    }
                }
                case ENUM_MODE -> {
                    if (!text.equals("push") && !text.equals("pull")) {
                        problems.add(path + ": expected 'push' or 'pull', got '" + text + "'");
                    }
                }
                case ENUM_DIRECTION -> {
                    if (!text.equals("site-to-hub") && !text.equals("hub-to-sites") && !text.equals("two-way")) {
                        problems.add(path + ": expected 'site-to-hub', 'hub-to-sites' or 'two-way', got '" + text + "'");
                    }
                }
                case ENUM_POLICY -> ConflictPolicy.Kind.of(text);
                case ROUTE -> RouteExpression.parse(text);
                case NAME -> {
                    if (!Names.isValid(text)) {
                        problems.add(path + ": '" + text + "' is not a valid name (letters, digits, '_' or '-', starting with a letter)");
                    }
                }
                case LIST, MAP -> problems.add(path + ": expected a " + (key.type() == ConfigKey.Type.LIST ? "list" : "mapping"));
                default -> {
                    if (!v.isValueNode()) {
                        problems.add(path + ": expected a value");
                    }
                }
            }
        } catch (IllegalArgumentException e) {
            problems.add(path + ": " + e.getMessage());
        }
    }

    /**
     * The folders of two file channels may be neither the same nor one inside the other: each channel would take the
     * other's files (a file received by one sent back by the other) and the files of its working folder. Compared as
     * written, made absolute, and where they exist also as the folders they are (links followed).
     */
    private static void checkFolders(JsonNode root, List<String> problems) {
        JsonNode folders = at(root, "folders");
        if (folders == null || !folders.isObject()) {
            return;
        }
        List<Map.Entry<String, List<Path>>> seen = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = folders.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                continue; // (reported by the type check)
            }
            List<Path> names;
            try {
                Path p = Path.of(e.getValue().asText()).toAbsolutePath().normalize();
                names = Files.exists(p) ? List.of(p, p.toRealPath()) : List.of(p);
            } catch (IOException | java.nio.file.InvalidPathException ex) {
                problems.add("folders." + e.getKey() + ": '" + e.getValue().asText() + "' is not a usable folder path: " + ex.getMessage());
                continue;
            }
            for (Map.Entry<String, List<Path>> other : seen) {
                String clash = clash(names, other.getValue());
                if (clash != null) {
                    problems.add("folders." + e.getKey() + " (" + e.getValue().asText() + ") and folders." + other.getKey() + " ("
                            + folders.get(other.getKey()).asText() + "): " + clash + "; the folders of two file channels may be "
                            + "neither the same nor one inside the other (each would take the other's files)");
                }
            }
            seen.add(Map.entry(e.getKey(), names));
        }
    }

    /** How two folders, each by its names, share files: null when they do not. */
    private static String clash(List<Path> a, List<Path> b) {
        for (Path x : a) {
            for (Path y : b) {
                if (x.equals(y)) {
                    return "the same folder";
                }
                if (x.startsWith(y) || y.startsWith(x)) {
                    return "one is inside the other";
                }
            }
        }
        return null;
    }

    private static void checkRequired(JsonNode root, Role role, List<String> problems) {
        for (ConfigKey k : ConfigDef.KEYS) {
            if (!k.required() || !k.roles().contains(role)) {
                continue;
            }
            for (String parentPath : expand(root, parentPattern(k.path()))) {
                JsonNode parent = parentPath.isEmpty() ? root : at(root, parentPath);
                if (parent == null) {
                    continue;
                }
                String leaf = k.path().substring(k.path().lastIndexOf('.') + 1);
                String full = parentPath.isEmpty() ? k.path() : parentPath + "." + leaf;
                if (parentPath.isEmpty()) {
                    if (at(root, k.path()) == null) {
                        problems.add(k.path() + ": required, missing (" + k.doc() + ")");
                    }
                } else if (parent.get(leaf) == null || parent.get(leaf).isNull()) {
                    problems.add(full + ": required, missing");
                }
            }
        }
    }

    private static String parentPattern(String path) {
        return path.contains("[]") ? path.substring(0, path.lastIndexOf('.')) : "";
    }

    /** Concrete paths matching a pattern with [] (lists only). */
    private static List<String> expand(JsonNode root, String pattern) {
        List<String> out = new ArrayList<>();
        if (pattern.isEmpty()) {
            out.add("");
            return out;
        }
        int i = pattern.indexOf("[]");
        if (i < 0) {
            out.add(pattern);
            return out;
        }
        String head = pattern.substring(0, i);
        JsonNode list = at(root, head);
        if (list == null || !list.isArray()) {
            return out;
        }
        String rest = pattern.substring(i + 2);
        for (int n = 0; n < list.size(); n++) {
            for (String tail : expandFrom(list.get(n), rest)) {
                out.add(head + "[" + n + "]" + tail);
            }
        }
        return out;
    }

    private static List<String> expandFrom(JsonNode node, String rest) {
        List<String> out = new ArrayList<>();
        if (rest.isEmpty()) {
            out.add("");
            return out;
        }
        int i = rest.indexOf("[]");
        if (i < 0) {
            out.add(rest);
            return out;
        }
        String head = rest.substring(0, i);
        JsonNode list = at(node, head.startsWith(".") ? head.substring(1) : head);
        if (list == null || !list.isArray()) {
            return out;
        }
        for (int n = 0; n < list.size(); n++) {
            for (String tail : expandFrom(list.get(n), rest.substring(i + 2))) {
                out.add(head + "[" + n + "]" + tail);
            }
        }
        return out;
    }

    private static JsonNode at(JsonNode root, String path) {
        JsonNode n = root;
        for (String part : path.split("\\.")) {
            if (n == null) {
                return null;
            }
            Matcher m = Pattern.compile("([^\\[]+)((?:\\[\\d+])*)").matcher(part);
            if (!m.matches()) {
                return null;
            }
            n = n.get(m.group(1));
            Matcher idx = Pattern.compile("\\[(\\d+)]").matcher(m.group(2));
            while (n != null && idx.find()) {
                n = n.get(Integer.parseInt(idx.group(1)));
            }
        }
        return n;
    }

    // ---- typed access -------------------------------------------------------------------------

    /** Values by path, as read once: the configuration does not change, and some keys are read at every exchange. */
    private final Map<String, java.util.Optional<String>> rawCache = new java.util.concurrent.ConcurrentHashMap<>();

    private String raw(String path) {
        return rawCache.computeIfAbsent(path, p -> {
            JsonNode n = at(root, p);
            if (n != null && !n.isNull()) {
                return java.util.Optional.of(n.asText());
            }
            ConfigKey k = BY_PATH.get(p);
            return java.util.Optional.ofNullable(k == null ? null : k.defaultValue());
        }).orElse(null);
    }

    public Role role() {
        return role;
    }

    public String nodeId() {
        return raw("node.id");
    }

    public String databaseUrl() {
        return raw("database.url");
    }

    public String databaseUser() {
        return raw("database.user");
    }

    public String databasePassword() {
        return raw("database.password");
    }

    public int poolSize() {
        return Integer.parseInt(raw("database.poolSize"));
    }

    public String httpHost() {
        return raw("http.host");
    }

    public int httpPort() {
        return Integer.parseInt(raw("http.port"));
    }

    public int httpThreads() {
        return Integer.parseInt(raw("http.threads"));
    }

    public Optional<String> advertisedUrl() {
        return Optional.ofNullable(raw("http.advertisedUrl"));
    }

    public Duration readTimeout() {
        return parseDuration(raw("transport.readTimeout"));
    }

    public int maxBatchesPerExchange() {
        return Math.max(1, Integer.parseInt(raw("transport.maxBatchesPerExchange")));
    }

    public String enrollmentToken() {
        return raw("enrollment.token");
    }

    public String hubUrl() {
        return raw("hub.url");
    }

    public String hubToken() {
        return raw("hub.token");
    }

    public Duration captureInterval() {
        return parseDuration(raw("capture.interval"));
    }

    /** {@code retention.maxAge}: how long the hub keeps hub-to-sites changes for a site that does not fetch them. */
    public Duration retentionMaxAge() {
        return parseDuration(raw("retention.maxAge"));
    }

    public Duration schemaCheckInterval() {
        return parseDuration(raw("capture.schemaCheckInterval"));
    }

    public int loadChunkSize() {
        return Math.max(1, Integer.parseInt(raw("load.chunkSize")));
    }

    /** The exchange settings for a site: per-site override, else the hub's defaults. */
    public SiteSchedule schedule(String siteId) {
        JsonNode s = at(root, "sites");
        JsonNode site = s == null ? null : s.get(siteId);
        String mode = site != null && site.hasNonNull("mode") ? site.get("mode").asText() : raw("sync.mode");
        String interval = site != null && site.hasNonNull("interval") ? site.get("interval").asText() : raw("sync.interval");
        String url = site != null && site.hasNonNull("url") ? site.get("url").asText() : null;
        return new SiteSchedule(mode.equals("pull") ? SiteSchedule.Mode.PULL : SiteSchedule.Mode.PUSH, parseDuration(interval), url);
    }

    /** The attributes a hub's configuration gives a site ({@code sites.<id>.attributes}), plus its {@code id}. */
    public Map<String, String> siteAttributes(String siteId) {
        Map<String, String> out = new LinkedHashMap<>();
        JsonNode attrs = at(root, "sites");
        attrs = attrs == null || attrs.get(siteId) == null ? null : attrs.get(siteId).get("attributes");
        if (attrs != null) {
            attrs.properties().forEach(e -> out.put(e.getKey(), e.getValue().isNull() ? null : e.getValue().asText()));
        }
        out.put("id", siteId);
        return out;
    }

    /** The conflict block at {@code path}; {@code defaultPolicy}: the policy when it names none (null: it must name one). */
    private static ConflictPolicy conflictPolicy(JsonNode node, String path, String defaultPolicy) {
        if (node == null || node.isNull()) {
            return null;
        }
        if (!node.hasNonNull("policy") && defaultPolicy == null) {
            throw new IllegalArgumentException(path + ": names no policy (a table's conflict block replaces the channel's whole)");
        }
        List<String> priority = new ArrayList<>();
        node.path("priority").forEach(n -> priority.add(n.asText()));
        try {
            return new ConflictPolicy(ConflictPolicy.Kind.of(node.path("policy").asText(defaultPolicy)), priority,
                    node.hasNonNull("resolver") ? node.get("resolver").asText() : null);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(path + ": " + e.getMessage(), e);
        }
    }

    /** The hub's file channels. */
    public List<FileChannelSpec> fileChannels() {
        List<FileChannelSpec> out = new ArrayList<>();
        JsonNode list = at(root, "fileChannels");
        int i = 0;
        for (JsonNode ch : list == null ? List.<JsonNode>of() : list) {
            String path = "fileChannels[" + i++ + "]";
            List<String> include = new ArrayList<>();
            ch.path("include").forEach(n -> include.add(n.asText()));
            List<String> exclude = new ArrayList<>();
            ch.path("exclude").forEach(n -> exclude.add(n.asText()));
            for (String glob : concat(include, exclude)) {
                try {
                    java.nio.file.FileSystems.getDefault().getPathMatcher("glob:" + glob);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(path + ": '" + glob + "' is not a valid glob: " + e.getMessage(), e);
                }
            }
            try {
                out.add(new FileChannelSpec(ch.path("name").asText(), direction(ch.path("direction").asText()),
                        ch.hasNonNull("sites") ? ch.get("sites").asText() : null, include, exclude));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(path + ": " + e.getMessage(), e);
            }
        }
        if (out.stream().map(FileChannelSpec::name).distinct().count() != out.size()) {
            throw new IllegalArgumentException("two file channels have the same name");
        }
        for (FileChannelSpec f : out) {
            if (channels().stream().anyMatch(c -> c.name().equals(f.name()))) {
                throw new IllegalArgumentException("'" + f.name() + "' names both a file channel and a table channel");
            }
        }
        for (ChannelSpec ch : channels()) {
            for (TableSpec t : ch.tables()) {
                for (Map.Entry<String, String> ref : t.files().entrySet()) {
                    String where = "channel '" + ch.name() + "' table '" + t.name() + "' column '" + ref.getKey() + "'";
                    FileChannelSpec f = out.stream().filter(x -> x.name().equals(ref.getValue())).findFirst().orElseThrow(() ->
                            new IllegalArgumentException(where + " references file channel '" + ref.getValue() + "', which is not "
                                    + "defined (fileChannels)"));
                    if (ch.direction() == ChannelSpec.Direction.TWO_WAY || f.direction() != ch.direction()) {
                        throw new IllegalArgumentException(where + " references file channel '" + f.name() + "', which flows "
                                + words(f.direction()) + " while the table's channel flows " + words(ch.direction())
                                + ": a row can wait only for a file that travels the same way, site-to-hub or hub-to-sites");
                    }
                }
            }
        }
        return out;
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }

    private static String words(ChannelSpec.Direction d) {
        return d.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    private static ChannelSpec.Direction direction(String text) {
        return switch (text) {
            case "hub-to-sites" -> ChannelSpec.Direction.HUB_TO_SITES;
            case "two-way" -> ChannelSpec.Direction.TWO_WAY;
            default -> ChannelSpec.Direction.SITE_TO_HUB;
        };
    }

    /** This node's folder for file channel {@code channel} ({@code folders.<channel>}), if it has one. */
    public Optional<Path> folder(String channel) {
        JsonNode f = at(root, "folders");
        return f == null || !f.hasNonNull(channel) ? Optional.empty() : Optional.of(Path.of(f.get(channel).asText()));
    }

    /** {@code files.referenceWait}: how long a row waits for a file it references. */
    public Duration fileReferenceWait() {
        return parseDuration(raw("files.referenceWait"));
    }

    /** {@code files.partialMaxAge}: how long a broken transfer's partial file is kept to resume from. */
    public Duration filePartialMaxAge() {
        return parseDuration(raw("files.partialMaxAge"));
    }

    /** {@code files.scanInterval}: how often file channel folders are walked in full. */
    public Duration fileScanInterval() {
        return parseDuration(raw("files.scanInterval"));
    }

    /** The hub's channels. */
    public List<ChannelSpec> channels() {
        List<ChannelSpec> out = new ArrayList<>();
        JsonNode list = at(root, "channels");
        if (list == null) {
            return out;
        }
        int chIndex = 0;
        for (JsonNode ch : list) {
            String chPath = "channels[" + chIndex++ + "]";
            List<TableSpec> tables = new ArrayList<>();
            int tIndex = 0;
            for (JsonNode t : ch.path("tables")) {
                String tPath = chPath + ".tables[" + tIndex++ + "].conflict";
                Map<String, String> files = new LinkedHashMap<>();
                t.path("files").fields().forEachRemaining(f -> files.put(f.getKey(), f.getValue().asText()));
                try {
                    tables.add(new TableSpec(t.path("name").asText(), t.hasNonNull("target") ? t.get("target").asText() : null,
                            t.hasNonNull("hubColumn") ? t.get("hubColumn").asText() : null,
                            t.hasNonNull("filter") ? t.get("filter").asText() : null, conflictPolicy(t.get("conflict"), tPath, null), files));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(chPath + ".tables[" + (tIndex - 1) + "]: " + e.getMessage(), e);
                }
            }
            ChannelSpec.Direction direction = direction(ch.path("direction").asText());
            String schedule = ch.hasNonNull("schedule") ? ch.get("schedule").asText() : null;
            try {
                Schedule.of(schedule);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(chPath + ".schedule: " + e.getMessage(), e);
            }
            out.add(new ChannelSpec(ch.path("name").asText(), direction, ch.hasNonNull("sites") ? ch.get("sites").asText() : null,
                    tables, conflictPolicy(ch.get("conflict"), chPath + ".conflict", "last-writer-wins"), schedule));
        }
        if (out.stream().map(ChannelSpec::name).distinct().count() != out.size()) {
            throw new IllegalArgumentException("two channels have the same name");
        }
        List<String> tables = out.stream().flatMap(c -> c.tables().stream()).map(t -> t.name().toLowerCase(Locale.ROOT)).toList();
        if (tables.stream().distinct().count() != tables.size()) {
            throw new IllegalArgumentException("a table is in more than one channel");
        }
        List<String> hubTables = out.stream().flatMap(c -> c.tables().stream()).map(t -> t.target().toLowerCase(Locale.ROOT)).toList();
        if (hubTables.stream().distinct().count() != hubTables.size()) {
            throw new IllegalArgumentException("a hub table is the target of more than one channel table (a table that flows both "
                    + "ways needs one two-way channel)");
        }
        return out;
    }

    /**
     * Parses {@code 250ms}, {@code 5s}, {@code 2m}, {@code 1h} or an ISO-8601 duration.
     *
     * @throws IllegalArgumentException naming the text when it is none of those
     */
    public static Duration parseDuration(String text) {
        Matcher m = Pattern.compile("(\\d+)\\s*(ms|s|m|h|d)").matcher(text.trim());
        if (m.matches()) {
            long n = Long.parseLong(m.group(1));
            return switch (m.group(2)) {
                case "ms" -> Duration.ofMillis(n);
                case "s" -> Duration.ofSeconds(n);
                case "m" -> Duration.ofMinutes(n);
                case "h" -> Duration.ofHours(n);
                default -> Duration.ofDays(n);
            };
        }
        try {
            return Duration.parse(text);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("expected a duration such as 500ms, 5s, 2m or 1h, got '" + text + "'");
        }
    }
}
