package io.syncline.node;

import io.syncline.api.ChannelSpec;
import io.syncline.api.FileChannelSpec;
import java.util.List;

/** Messages of the registration exchange (docs/protocol.md). */
final class Registration {
    private Registration() {
    }

    /** Site to hub. {@code incarnation} changes when the site's database is new, so the hub restarts its ledger. */
    record Request(String node, String token, String listenUrl, String pullToken, String incarnation) {
    }

    /** Hub to site: the site's credentials and its sync configuration. */
    record Response(String hub, String node, String secret, String mode, long intervalMillis, int maxBatches,
                    List<ChannelSpec> channels, String configHash, List<FileChannelSpec> fileChannels) {
        Response {
            fileChannels = fileChannels == null ? List.of() : List.copyOf(fileChannels); // registrations stored before file channels
        }
    }
}
