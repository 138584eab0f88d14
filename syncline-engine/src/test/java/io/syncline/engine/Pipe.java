package io.syncline.engine;

import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChangeOp;
import io.syncline.api.ChannelSpec;
import io.syncline.engine.apply.ApplyOutcome;
import io.syncline.engine.apply.BatchApplier;
import io.syncline.engine.codec.Json;
import io.syncline.engine.outbox.OutboxRowSink;
import io.syncline.engine.outbox.OutboxStore;
import io.syncline.engine.outbox.SealedBatch;
import java.io.IOException;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Test helpers that move changes from a source outbox to a target the way a node does, without HTTP. */
final class Pipe {
    private Pipe() {
    }

    static OutboxStore store(TestDb db) {
        return new OutboxStore(db.dialect(), Clock.systemUTC());
    }

    static Optional<SealedBatch> seal(TestDb db, Connection c, String channel) throws SQLException {
        return store(db).seal(c, channel);
    }

    /** Reads a sealed batch for {@code destination} and turns its rows into changes. */
    static List<Change> read(TestDb db, Connection c, SealedBatch batch, String destination) throws SQLException, IOException {
        List<Change> out = new ArrayList<>();
        store(db).stream(c, batch, destination, (op, table, oldRow, newRow, at, origin) -> out.add(change(op, table, json(oldRow), json(newRow))));
        return out;
    }

    /** A row as the canonical JSON text it writes; null stays null. */
    static String json(OutboxRowSink.Row row) throws IOException {
        if (row == null) {
            return null;
        }
        java.io.StringWriter w = new java.io.StringWriter();
        try (com.fasterxml.jackson.core.JsonGenerator g = Json.FACTORY.createGenerator(w)) {
            row.writeTo(g);
        }
        return w.toString();
    }

    static Change change(String op, String table, String oldRow, String newRow) {
        Map<String, Object> o = Json.parseRow(oldRow);
        Map<String, Object> n = Json.parseRow(newRow);
        return switch (ChangeOp.ofCode(op)) {
            case INSERT -> new Change.Insert(table, n);
            case UPDATE -> new Change.Update(table, o, n);
            case DELETE -> new Change.Delete(table, o);
            case RELOAD -> new Change.Reload(table, n);
            case MARK -> new Change.Mark(((Number) n.get("batch")).longValue());
            case REFRESH -> new Change.Refresh(table, o);
        };
    }

    static ApplyOutcome apply(TestDb target, Connection c, String source, ChannelSpec channel, long seq, List<Change> changes) {
        BatchHeader header = new BatchHeader(new BatchId(source, channel.name(), seq), java.time.Instant.now(), null);
        return new BatchApplier(target.dialect(), Clock.systemUTC()).apply(c, header, channel, changes.iterator());
    }

    /**
     * Seals everything committed at the source and applies every sealed batch at the target, in order.
     *
     * @return the number of changes applied
     */
    static long sync(TestDb source, Connection src, String sourceId, TestDb target, Connection tgt, String targetId,
                     ChannelSpec channel) throws SQLException, IOException {
        long applied = 0;
        OutboxStore store = store(source);
        seal(source, src, channel.name());
        long last = BatchApplier.lastApplied(tgt, sourceId, channel.name());
        tgt.commit();
        for (SealedBatch b : store.unacknowledged(src, targetId, channel.name(), Integer.MAX_VALUE)) {
            if (b.sequence() <= last) {
                continue;
            }
            List<Change> changes = read(source, src, b, targetId);
            ApplyOutcome outcome = apply(target, tgt, sourceId, channel, b.sequence(), changes);
            if (!(outcome instanceof ApplyOutcome.Applied)) {
                throw new AssertionError("batch " + b.sequence() + " not applied: " + outcome);
            }
            applied += changes.size();
            store.acknowledge(src, targetId, channel.name(), b.sequence());
        }
        return applied;
    }
}
