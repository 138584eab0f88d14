package io.syncline.node;

import com.fasterxml.jackson.core.type.TypeReference;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.transport.http.Headers;
import io.syncline.transport.wire.WireFormat;
import io.syncline.transport.wire.WireWriter;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Speaks the hub's HTTP protocol directly, without a SiteNode, so tests can send exactly the bytes they want.
 * Not thread-safe per instance only in the sense that {@link #secret} is a plain field.
 */
final class RawHubClient {
    private static final TypeReference<Map<String, Object>> MAP = new TypeReference<>() {
    };
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final String hubUrl;
    String secret;

    RawHubClient(String hubUrl) {
        this.hubUrl = hubUrl;
    }

    /** An HTTP answer: status and the JSON body (empty map when the body is not a JSON object). */
    record Answer(int status, Map<String, Object> body, String raw) {
        String error() {
            return String.valueOf(body.get("error"));
        }

        @SuppressWarnings("unchecked")
        Map<String, Object> acks() {
            Object a = body.get("acks");
            return a instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
        }
    }

    Answer registerRaw(String json) throws IOException, InterruptedException {
        HttpRequest req = HttpRequest.newBuilder(URI.create(hubUrl + "/v1/register")).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build();
        return answer(http.send(req, HttpResponse.BodyHandlers.ofString()));
    }

    /** Registers {@code node} with {@code token}; on success remembers the secret. */
    Answer register(String node, String token) throws IOException, InterruptedException {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("node", node);
        body.put("token", token);
        body.put("listenUrl", null);
        body.put("pullToken", "pull-" + node);
        body.put("incarnation", "inc-" + node);
        Answer a = registerRaw(WireFormat.MAPPER.writeValueAsString(body));
        if (a.status() == 200) {
            secret = (String) a.body().get("secret");
        }
        return a;
    }

    Answer push(String node, String secret, byte[] body) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(hubUrl + "/v1/batches")).timeout(Duration.ofSeconds(30))
                .header("Content-Type", WireFormat.CONTENT_TYPE).header("Content-Encoding", WireFormat.CONTENT_ENCODING)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (node != null) {
            b.header(Headers.NODE, node);
        }
        if (secret != null) {
            b.header("Authorization", "Bearer " + secret);
        }
        return answer(http.send(b.build(), HttpResponse.BodyHandlers.ofString()));
    }

    Answer push(String node, byte[] body) throws IOException, InterruptedException {
        return push(node, secret, body);
    }

    /** POST /v1/poke (no body) with {@code secret}, or none when it is null. */
    Answer poke(String node, String secret) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(hubUrl + "/v1/poke")).timeout(Duration.ofSeconds(30))
                .POST(HttpRequest.BodyPublishers.noBody());
        b.header(Headers.NODE, node);
        if (secret != null) {
            b.header("Authorization", "Bearer " + secret);
        }
        return answer(http.send(b.build(), HttpResponse.BodyHandlers.ofString()));
    }

    /** GET /v1/fetch with a raw query string (as given) and the remembered secret, or none when {@code secret} is null. */
    Answer fetch(String node, String secret, String query) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(hubUrl + "/v1/fetch?" + query)).timeout(Duration.ofSeconds(30)).GET();
        b.header(Headers.NODE, node);
        if (secret != null) {
            b.header("Authorization", "Bearer " + secret);
        }
        HttpResponse<byte[]> r = http.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
        String text = r.statusCode() == 200 ? "" : new String(r.body(), java.nio.charset.StandardCharsets.UTF_8);
        return answer(new String(text), r.statusCode());
    }

    /** GET {@code path} (with its query) with the remembered secret. */
    Answer get(String node, String path) throws IOException, InterruptedException {
        HttpRequest req = HttpRequest.newBuilder(URI.create(hubUrl + path)).timeout(Duration.ofSeconds(30)).header(Headers.NODE, node)
                .header("Authorization", "Bearer " + secret).GET().build();
        return answer(http.send(req, HttpResponse.BodyHandlers.ofString()));
    }

    /** POST to {@code path} (with its query) with the remembered secret and a raw body. */
    Answer post(String node, String path, String contentType, byte[] body) throws IOException, InterruptedException {
        HttpRequest req = HttpRequest.newBuilder(URI.create(hubUrl + path)).timeout(Duration.ofSeconds(30)).header("Content-Type", contentType)
                .header(Headers.NODE, node).header("Authorization", "Bearer " + secret).POST(HttpRequest.BodyPublishers.ofByteArray(body)).build();
        return answer(http.send(req, HttpResponse.BodyHandlers.ofString()));
    }

    private static Answer answer(String text, int status) {
        Map<String, Object> body;
        try {
            body = text.isEmpty() ? Map.of() : WireFormat.MAPPER.readValue(text, MAP);
        } catch (IOException | RuntimeException e) {
            body = Map.of();
        }
        return new Answer(status, body == null ? Map.of() : body, text);
    }

    int health() throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create(hubUrl + "/v1/health")).timeout(Duration.ofSeconds(10)).GET().build(),
                HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    private static Answer answer(HttpResponse<String> r) {
        Map<String, Object> body;
        try {
            body = WireFormat.MAPPER.readValue(r.body(), MAP);
        } catch (IOException | RuntimeException e) {
            body = Map.of();
        }
        return new Answer(r.statusCode(), body == null ? Map.of() : body, r.body());
    }

    /** One batch to write: header fields and changes as {op, table, oldRow, newRow} with rows as JSON text. */
    record Batch(String source, String channel, long seq, List<String[]> changes) {
    }

    static Batch batch(String source, String channel, long seq, String[]... changes) {
        return new Batch(source, channel, seq, List.of(changes));
    }

    static String[] insert(String table, String row) {
        return new String[] {"I", table, null, row};
    }

    static String[] delete(String table, String row) {
        return new String[] {"D", table, row, null};
    }

    /** A real batch stream, as a site writes it. */
    static byte[] stream(Batch... batches) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (WireWriter w = new WireWriter(out)) {
            for (Batch b : batches) {
                w.beginBatch(new BatchHeader(new BatchId(b.source(), b.channel(), b.seq()), Instant.now(), Instant.now()));
                for (String[] c : b.changes()) {
                    w.change(c[0], c[1], c[2], c[3]);
                }
                w.endBatch();
            }
        }
        return out.toByteArray();
    }
}
