package io.syncline.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpRequest;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code syncline status}: per site, last contact, changes pending and lag, as the hub sees them. */
@Command(name = "status", mixinStandardHelpOptions = true, description = "Show each site's state as the hub sees it.")
final class StatusCommand implements Callable<Integer> {
    @Option(names = "--hub", defaultValue = "http://127.0.0.1:8080", description = "Hub URL (default: ${DEFAULT-VALUE}).")
    String hub;

    @Option(names = "--token", defaultValue = "${env:SYNCLINE_ENROLLMENT_TOKEN}",
            description = "The hub's enrollment token (default: $SYNCLINE_ENROLLMENT_TOKEN).")
    String token;

    @Option(names = "--json", description = "Print the raw JSON document.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        String body = HubApi.call(hub, token, HttpRequest.newBuilder(URI.create(hub + "/v1/status")).GET());
        if (body == null) {
            return 2;
        }
        if (json) {
            System.out.println(body);
            return 0;
        }
        JsonNode doc = new ObjectMapper().readTree(body);
        System.out.printf("hub %s at %s; conflicts %d (open %d)%n", doc.path("node").asText(), doc.path("at").asText(),
                doc.path("conflicts").asLong(), doc.path("openConflicts").asLong());
        System.out.printf("%-16s %-5s %-8s %-26s %10s %10s %12s %10s %9s  %s%n", "site", "mode", "state", "last contact", "pending", "lag ms",
                "applied", "to site", "conflicts", "last error / retention");
        for (JsonNode s : doc.path("sites")) {
            System.out.printf("%-16s %-5s %-8s %-26s %10d %10d %12d %10d %9d  %s%n", s.path("site").asText(), s.path("mode").asText(),
                    s.path("state").asText(), s.path("lastContact").isNull() ? "-" : s.path("lastContact").asText(),
                    s.path("pendingChanges").asLong(), s.path("lagMillis").asLong(), s.path("rowsApplied").asLong(),
                    s.path("pendingToSite").asLong(), s.path("conflicts").asLong(), notes(s));
        }
        return 0;
    }

    /** The site's last error and the hub's retention notice, whichever it has. */
    private static String notes(JsonNode s) {
        String error = s.path("lastError").isNull() ? "" : s.path("lastError").asText("");
        String retention = s.path("retention").isNull() ? "" : s.path("retention").asText("");
        return error.isEmpty() ? retention : retention.isEmpty() ? error : error + "; " + retention;
    }
}
