package io.syncline.cli;

import java.io.IOException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/** The commands' one way to call the hub's admin API: the enrollment token as bearer, bounded waits. */
final class HubApi {
    private HubApi() {
    }

    /**
     * Sends {@code request} with {@code token}; returns the body of a {@code 200} answer, or null after printing to
     * stderr why there is none (hub unreachable, or its answer).
     */
    static String call(String hub, String token, HttpRequest.Builder request) throws InterruptedException {
        HttpResponse<String> resp;
        try {
            resp = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build().send(request.timeout(Duration.ofSeconds(30))
                    .header("Authorization", "Bearer " + (token == null ? "" : token)).build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            System.err.println("cannot reach hub at " + hub + ": " + e.getMessage());
            return null;
        }
        if (resp.statusCode() != 200) {
            System.err.println("hub answered " + resp.statusCode() + ": " + resp.body());
            return null;
        }
        return resp.body();
    }
}
