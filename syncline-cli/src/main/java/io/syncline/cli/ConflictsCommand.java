package io.syncline.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpRequest;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code syncline conflicts}: lists the hub's conflicts of two-way channels, or settles an open one (docs/conflicts.md),
 * through the hub's admin API.
 */
@Command(name = "conflicts", mixinStandardHelpOptions = true,
        description = {"List the conflicts of two-way channels, or settle an open one.",
                "  syncline conflicts [--open]                      newest first",
                "  syncline conflicts --settle 7 --take site|hub     restore the site's or the hub's version",
                "  syncline conflicts --settle 7 --row '{\"id\": 1, \"qty\": 9}'   write this row"})
final class ConflictsCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Option(names = "--hub", defaultValue = "http://127.0.0.1:8080", description = "Hub URL (default: ${DEFAULT-VALUE}).")
    String hub;

    @Option(names = "--token", defaultValue = "${env:SYNCLINE_ENROLLMENT_TOKEN}",
            description = "The hub's enrollment token (default: $SYNCLINE_ENROLLMENT_TOKEN).")
    String token;

    @Option(names = "--open", description = "Only conflicts waiting for an operator (policy manual).")
    boolean open;

    @Option(names = "--limit", defaultValue = "50", description = "Most conflicts listed (default: ${DEFAULT-VALUE}).")
    int limit;

    @Option(names = "--settle", paramLabel = "ID", description = "Settle open conflict ID (with --take or --row).")
    Long settle;

    @Option(names = "--take", description = "With --settle: 'site' or 'hub', the version to keep as recorded.")
    String take;

    @Option(names = "--row", description = "With --settle: the final row as JSON, every column of the hub table.")
    String row;

    @Option(names = "--by", defaultValue = "${sys:user.name}", description = "Who settles (recorded; default: your user name).")
    String by;

    @Option(names = "--json", description = "Print the raw JSON answer.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        HttpRequest.Builder req;
        if (settle == null) {
            if (take != null || row != null) {
                System.err.println("--take and --row go with --settle ID");
                return 2;
            }
            req = HttpRequest.newBuilder(URI.create(hub + "/v1/conflicts?limit=" + limit + (open ? "&open=true" : ""))).GET();
        } else {
            if ((take == null) == (row == null)) {
                System.err.println("--settle needs exactly one of --take site|hub or --row JSON");
                return 2;
            }
            ObjectNode body = JSON.createObjectNode().put("id", settle).put("take", row != null ? "row" : take).put("by", by);
            if (row != null) {
                try {
                    body.set("row", JSON.readTree(row));
                } catch (IOException e) {
                    System.err.println("--row is not valid JSON: " + e.getMessage());
                    return 2;
                }
            }
            req = HttpRequest.newBuilder(URI.create(hub + "/v1/conflicts/settle")).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body)));
        }
        String answer = HubApi.call(hub, token, req);
        if (answer == null) {
            return 2;
        }
        if (json) {
            System.out.println(answer);
            return 0;
        }
        JsonNode doc = JSON.readTree(answer);
        if (settle != null) {
            System.out.printf("conflict %d settled by %s: %s is now %s%n", doc.path("id").asLong(), doc.path("settledBy").asText(),
                    doc.path("rowKey").asText(), doc.path("resultRow").isNull() ? "deleted" : doc.path("resultRow").asText());
            return 0;
        }
        System.out.printf("%-6s %-24s %-10s %-16s %-10s %-15s %-16s %-10s %-9s %s%n", "id", "detected", "site", "table", "row", "kind", "policy",
                "winner", "status", "result");
        for (JsonNode c : doc.path("conflicts")) {
            System.out.printf("%-6d %-24s %-10s %-16s %-10s %-15s %-16s %-10s %-9s %s%n", c.path("id").asLong(), c.path("detectedAt").asText(),
                    c.path("site").asText(), c.path("table").asText(), c.path("rowKey").asText(), c.path("kind").asText(), c.path("policy").asText(),
                    c.path("winner").asText(), c.path("status").asText(), c.path("resultRow").isNull() ? "(deleted)" : c.path("resultRow").asText());
        }
        return 0;
    }
}
