package io.syncline.node;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpExchange;
import io.syncline.api.BadBatchException;
import io.syncline.api.ChannelSpec;
import io.syncline.api.TableSpec;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.codec.Json;
import io.syncline.engine.conflict.ConflictLog;
import io.syncline.engine.conflict.TwoWay;
import io.syncline.node.config.NodeConfig;
import io.syncline.transport.http.HttpEndpoint;
import io.syncline.transport.http.HttpError;
import io.syncline.transport.wire.WireFormat;
import java.io.IOException;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/*
 * The hub's admin API for the conflicts of two-way channels (docs/conflicts.md, "The conflict table and the
 * operator"; docs/protocol.md, "Conflicts"):
 *
 *   GET  /v1/conflicts[?open=true][&limit=N]           the conflict table, newest first
 *   POST /v1/conflicts/settle  {"id": 7, "take": "site" | "hub" | "row", "row": {...}, "by": "alice", "force": false}
 *
 * Settling writes the chosen version at the hub, stamped as the hub's own, and sends it to every site of the channel.
 * Only an open conflict (policy manual) can be settled, and only while its row is as the conflict left it (unless
 * "force"). Both need the enrollment token, like /v1/status.
 */
final class Conflicts {
    private final NodeConfig cfg;
    private final Database db;
    private final Map<String, ChannelSpec> channels;
    private final BatchApplier applier;
    private final TwoWay twoWay;
    private final Clock clock;

    Conflicts(NodeConfig cfg, Database db, Map<String, ChannelSpec> channels, BatchApplier applier, TwoWay twoWay, Clock clock) {
        this.cfg = cfg;
        this.db = db;
        this.channels = channels;
        this.applier = applier;
        this.twoWay = twoWay;
        this.clock = clock;
    }

    private void authenticate(HttpExchange ex) {
        String token = Secrets.bearer(ex.getRequestHeaders().getFirst("Authorization"));
        if (!Secrets.matches(token, cfg.enrollmentToken())) {
            throw new HttpError(401, "the conflicts API needs 'Authorization: Bearer <enrollment token>'");
        }
    }

    void handleList(HttpExchange ex) throws IOException {
        authenticate(ex);
        Map<String, String> q = HttpEndpoint.query(ex);
        int limit;
        try {
            limit = Integer.parseInt(q.getOrDefault("limit", "100"));
        } catch (NumberFormatException e) {
            throw new HttpError(400, "limit must be a whole number, got '" + q.get("limit") + "'");
        }
        if (limit < 1 || limit > 10_000) {
            throw new HttpError(400, "limit must be 1..10000, got " + limit);
        }
        String open = q.getOrDefault("open", "false");
        if (!open.equals("true") && !open.equals("false")) {
            throw new HttpError(400, "open must be true or false, got '" + open + "'");
        }
        try (Connection c = db.connection()) {
            List<ConflictLog.Entry> list = ConflictLog.list(c, open.equals("true"), limit);
            c.commit();
            HttpEndpoint.sendJson(ex, 200, Map.of("conflicts", list));
        } catch (SQLException e) {
            throw new HttpError(503, "hub " + cfg.nodeId() + ": database error: " + e.getMessage());
        }
    }

    void handleSettle(HttpExchange ex) throws IOException {
        authenticate(ex);
        JsonNode body;
        try {
            body = WireFormat.MAPPER.readTree(HttpEndpoint.readSmallBody(ex));
        } catch (IOException e) {
            throw new HttpError(400, "body must be JSON like {\"id\": 7, \"take\": \"site\"}: " + e.getMessage());
        }
        if (body == null || !body.path("id").canConvertToLong()) {
            throw new HttpError(400, "body lacks the conflict's numeric 'id'");
        }
        String take = body.path("take").asText("");
        if (!List.of("site", "hub", "row").contains(take)) {
            throw new HttpError(400, "'take' must be 'site', 'hub' or 'row' (with 'row': the final row), got '" + take + "'");
        }
        if (take.equals("row") && !body.path("row").isObject()) {
            throw new HttpError(400, "'take': 'row' needs the final row as an object in 'row' (null 'row' is not allowed; take the "
                    + "side that deleted it instead)");
        }
        String by = body.path("by").asText("operator");
        if (by.isBlank() || by.length() > 200) {
            throw new HttpError(400, "'by' must name who settles, in 1 to 200 characters");
        }
        if (body.has("force") && !body.get("force").isBoolean()) {
            throw new HttpError(400, "'force' must be true or false");
        }
        boolean force = body.path("force").asBoolean(false);
        long id = body.path("id").asLong();
        try (Connection c = db.connection()) {
            try {
                ConflictLog.Entry e = ConflictLog.lock(c, id);
                if (e == null) {
                    throw new HttpError(404, "no conflict " + id);
                }
                if (!ConflictLog.OPEN.equals(e.status())) {
                    throw new HttpError(409, "conflict " + id + " is " + e.status() + ", not open: only a conflict of policy manual waits "
                            + "for an operator");
                }
                ChannelSpec ch = channels.get(e.channel());
                if (ch == null || ch.direction() != ChannelSpec.Direction.TWO_WAY) {
                    throw new HttpError(409, "conflict " + id + " is of channel '" + e.channel() + "', which is no longer a two-way channel here");
                }
                Map<String, Object> key = Json.parseRow(e.rowKey());
                Map<String, Object> row = switch (take) {
                    case "site" -> Json.parseRow(e.siteRow());
                    case "hub" -> Json.parseRow(e.hubRow());
                    default -> {
                        Map<String, Object> given = new LinkedHashMap<>();
                        body.path("row").properties().forEach(f -> given.put(f.getKey().toLowerCase(java.util.Locale.ROOT),
                                WireFormat.MAPPER.convertValue(f.getValue(), Object.class)));
                        yield given;
                    }
                };
                String table = ch.tables().stream().map(TableSpec::target).filter(t -> t.equalsIgnoreCase(e.table())).findFirst()
                        .orElse(e.table());
                applier.settle(c, ch, table, key, Json.parseRow(e.resultRow()), row, force, twoWay);
                ConflictLog.settle(c, id, take, row, by, clock.instant());
                c.commit();
                HttpEndpoint.sendJson(ex, 200, ConflictLog.get(c, id));
                c.commit();
            } catch (BatchApplier.SettleRefusedException e) {
                c.rollback();
                throw new HttpError(409, "conflict " + id + " not settled: " + e.getMessage());
            } catch (BadBatchException e) {
                c.rollback();
                throw new HttpError(400, "conflict " + id + ": " + e.getMessage());
            } catch (SQLException e) {
                c.rollback();
                String state = e.getSQLState() == null ? "" : e.getSQLState();
                if (state.startsWith("22") || state.startsWith("23")) {
                    throw new HttpError(409, "conflict " + id + ": the chosen row does not fit its table: " + e.getMessage());
                }
                throw e;
            } catch (RuntimeException e) {
                c.rollback();
                throw e;
            }
        } catch (SQLException e) {
            throw new HttpError(503, "hub " + cfg.nodeId() + ": database error: " + e.getMessage());
        }
    }
}
