package io.syncline.transport.wire;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import io.syncline.api.BadBatchException;
import io.syncline.api.BatchHeader;
import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.ChangeOp;
import io.syncline.api.SyncException.Stage;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Reads a batch stream written by {@link WireWriter}, one change at a time. Every defect (not gzip, not
 * JSON, wrong version, missing fields, a count that does not match, a stream that ends early) surfaces as
 * a {@link BadBatchException} that says what was wrong, so the applier rolls back the whole batch.
 * Not thread-safe.
 */
public final class WireReader implements Closeable {
    private final JsonParser parser;
    private GZIPInputStream gzip;
    private BatchHeader current;
    private boolean reload;
    private String token;
    private boolean done;

    public WireReader(InputStream in) {
        try {
            this.gzip = new GZIPInputStream(in, 1 << 16);
            this.parser = WireFormat.MAPPER.getFactory().createParser(gzip);
            Map<String, Object> preamble = readObject("preamble");
            if (preamble == null) {
                throw bad("empty batch stream");
            }
            if (!WireFormat.NAME.equals(preamble.get("format"))) {
                throw bad("not a Syncline batch stream (format is " + preamble.get("format") + ")");
            }
            Object version = preamble.get("version");
            if (!(version instanceof Integer n) || n != WireFormat.VERSION) {
                throw bad("unsupported wire format version " + version + " (this node speaks version " + WireFormat.VERSION + ")");
            }
        } catch (ZipException e) {
            throw bad("batch stream is not gzip-compressed: " + e.getMessage());
        } catch (EOFException e) {
            throw bad("batch stream is truncated (ends inside the preamble)");
        } catch (JsonProcessingException e) {
            throw bad("malformed batch stream: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The next batch's header, or null after the final marker. The previous batch's changes must be fully read. */
    public BatchHeader nextBatch() {
        if (current != null) {
            throw new IllegalStateException("changes of batch " + current.id() + " not fully read");
        }
        if (done) {
            return null;
        }
        Map<String, Object> obj = readObjectOrTruncated("batch header");
        if (Boolean.TRUE.equals(obj.get("done"))) {
            done = true;
            requireEnd();
            return null;
        }
        if (!(obj.get("batch") instanceof Map<?, ?> b)) {
            throw bad("expected a batch header, got " + obj.keySet());
        }
        try {
            Object seq = b.get("seq");
            if (!(seq instanceof Number n)) {
                throw bad("batch header lacks a numeric 'seq'");
            }
            Object first = b.get("firstCaptured");
            Object stamp = b.get("stamp");
            if (stamp != null && !(stamp instanceof Long || stamp instanceof Integer)) {
                throw bad("bad batch header: 'stamp' must be a whole number, got " + stamp);
            }
            current = new BatchHeader(new BatchId(str(b, "source"), str(b, "channel"), n.longValue()),
                    Instants.parse(str(b, "sealedAt")), first == null ? null : Instants.parse(first.toString()),
                    stamp == null ? 0 : ((Number) stamp).longValue());
            Object r = b.get("reload");
            if (r != null && !(r instanceof Boolean)) {
                throw bad("bad batch header of " + current.id() + ": 'reload' must be true or false, got " + r);
            }
            reload = Boolean.TRUE.equals(r);
            Object t = b.get("token");
            if (t != null && !(t instanceof String)) {
                throw bad("bad batch header of " + current.id() + ": 'token' must be a string, got " + t);
            }
            token = (String) t;
            if (current.id().sequence() == 0 && !reload) {
                BatchId id = current.id();
                current = null;
                throw bad("bad batch header of " + id + ": number 0 is only for a reload taken before the source sealed anything");
            }
            return current;
        } catch (IllegalArgumentException | DateTimeParseException e) {
            throw bad("bad batch header: " + e.getMessage());
        }
    }

    /** Whether the batch returned by the last {@link #nextBatch()} is a reload (docs/protocol.md, "Fetch"). */
    public boolean isReload() {
        return reload;
    }

    /** The source's token for the batch returned by the last {@link #nextBatch()}, or null when it sent none. */
    public String token() {
        return token;
    }

    /** The changes of the batch returned by the last {@link #nextBatch()}; the iterator verifies the end marker. */
    public Iterator<Change> changes() {
        if (current == null) {
            throw new IllegalStateException("no batch started");
        }
        return new Iterator<>() {
            private Change next;
            private long count;
            private boolean ended;

            @Override
            public boolean hasNext() {
                if (next == null && !ended) {
                    advance();
                }
                return next != null;
            }

            @Override
            public Change next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                Change c = next;
                next = null;
                return c;
            }

            private void advance() {
                Map<String, Object> obj = readObjectOrTruncated("change of batch " + current.id());
                if (obj.get("end") instanceof Map<?, ?> end) {
                    Object n = end.get("changes");
                    if (!(n instanceof Number num) || num.longValue() != count) {
                        throw bad("batch " + current.id() + " end marker says " + n + " changes but " + count + " were sent");
                    }
                    Object seq = end.get("seq");
                    if (!(seq instanceof Number s) || s.longValue() != current.id().sequence()) {
                        throw bad("batch " + current.id() + " end marker names batch " + seq);
                    }
                    ended = true;
                    current = null;
                    return;
                }
                if (obj.containsKey("batch") || obj.containsKey("done")) {
                    throw bad("batch " + current.id() + " has no end marker: after " + count + " changes the stream goes on with "
                            + (obj.containsKey("batch") ? "the next batch header" : "the final marker"));
                }
                next = toChange(obj);
                count++;
            }
        };
    }

    @SuppressWarnings("unchecked")
    private Change toChange(Map<String, Object> obj) {
        Object op = obj.get("op");
        Object table = obj.get("t");
        if (!(op instanceof String o) || !(table instanceof String t)) {
            throw bad("change in batch " + current.id() + " lacks 'op' or 't': " + obj.keySet());
        }
        Object oldRow = obj.get("o");
        Object newRow = obj.get("n");
        if (oldRow != null && !(oldRow instanceof Map) || newRow != null && !(newRow instanceof Map)) {
            throw bad("change in batch " + current.id() + " has a row that is not a JSON object");
        }
        Map<String, Object> oldMap = (Map<String, Object>) oldRow;
        Map<String, Object> newMap = (Map<String, Object>) newRow;
        try {
            return switch (ChangeOp.ofCode(o)) {
                case INSERT -> new Change.Insert(t, require(newMap, "n", o));
                case UPDATE -> new Change.Update(t, require(oldMap, "o", o), require(newMap, "n", o));
                case DELETE -> new Change.Delete(t, require(oldMap, "o", o));
                case RELOAD -> new Change.Reload(t, require(newMap, "n", o));
                case MARK -> {
                    if (!(require(newMap, "n", o).get("batch") instanceof Number n) || n.longValue() < 0) {
                        throw bad("mark in batch " + current.id() + " names no batch number: " + newMap);
                    }
                    yield new Change.Mark(n.longValue());
                }
                case REFRESH -> new Change.Refresh(t, require(oldMap, "o", o));
            };
        } catch (IllegalArgumentException e) {
            throw bad("bad change in batch " + current.id() + ": " + e.getMessage());
        }
    }

    private Map<String, Object> require(Map<String, Object> row, String field, String op) {
        if (row == null) {
            throw bad("change '" + op + "' in batch " + current.id() + " lacks row '" + field + "'");
        }
        return row;
    }

    private static String str(Map<?, ?> m, String key) {
        Object v = m.get(key);
        if (!(v instanceof String s)) {
            throw new IllegalArgumentException("missing '" + key + "'");
        }
        return s;
    }

    /**
     * After the final marker: reads to the end of the stream, so the gzip trailer (CRC and length) is verified and a
     * stream cut or corrupted after the last batch is not taken as complete.
     */
    private void requireEnd() {
        try {
            JsonToken t = parser.nextToken();
            if (t != null) {
                throw bad("malformed batch stream: unexpected " + t + " after the final marker");
            }
        } catch (EOFException e) {
            throw bad("batch stream is truncated after the final marker: " + e.getMessage());
        } catch (ZipException e) {
            throw bad("batch stream is corrupt (gzip): " + e.getMessage());
        } catch (JsonProcessingException e) {
            throw bad("malformed batch stream after the final marker: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new UncheckedIOException("reading batch stream: " + e.getMessage(), e);
        }
    }

    private Map<String, Object> readObjectOrTruncated(String what) {
        Map<String, Object> obj = readObject(what);
        if (obj == null) {
            throw bad("batch stream is truncated: it ends where a " + what + " was expected");
        }
        return obj;
    }

    private Map<String, Object> readObject(String what) {
        try {
            JsonToken t = parser.nextToken();
            if (t == null) {
                return null;
            }
            if (t != JsonToken.START_OBJECT) {
                throw bad("malformed batch stream: expected an object for the " + what + ", got " + t);
            }
            return readMap();
        } catch (EOFException e) {
            throw bad("batch stream is truncated while reading a " + what + ": " + e.getMessage());
        } catch (ZipException e) {
            throw bad("batch stream is corrupt (gzip): " + e.getMessage());
        } catch (JsonProcessingException e) {
            if (e.getOriginalMessage() != null && e.getOriginalMessage().contains("end-of-input")) {
                throw bad("batch stream is truncated while reading a " + what);
            }
            throw bad("malformed batch stream while reading a " + what + ": " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new UncheckedIOException("reading batch stream: " + e.getMessage(), e);
        }
    }

    /*
     * The parser stands on START_OBJECT. Reads the object with the streaming API into what Jackson's untyped
     * deserializer would build with WireFormat.MAPPER (LinkedHashMap, ArrayList, Integer/Long/BigInteger, BigDecimal for
     * every number with a fraction or exponent, String, Boolean, null), without its per-value dispatch: this runs once per
     * change and per row. A repeated key keeps its last value. Nesting depth is bounded by the parser's constraints.
     */
    private Map<String, Object> readMap() throws IOException {
        Map<String, Object> map = new LinkedHashMap<>();
        String name;
        while ((name = parser.nextFieldName()) != null) {
            map.put(name, readValue(parser.nextToken()));
        }
        if (parser.currentToken() != JsonToken.END_OBJECT) {
            throw bad("malformed batch stream: expected a field name or the end of an object, got " + parser.currentToken());
        }
        return map;
    }

    private Object readValue(JsonToken t) throws IOException {
        if (t == null) {
            throw new EOFException("end-of-input inside a value");
        }
        return switch (t) {
            case START_OBJECT -> readMap();
            case START_ARRAY -> {
                List<Object> list = new ArrayList<>();
                JsonToken e;
                while ((e = parser.nextToken()) != JsonToken.END_ARRAY) {
                    list.add(readValue(e));
                }
                yield list;
            }
            case VALUE_STRING -> parser.getText();
            case VALUE_NUMBER_INT -> parser.getNumberValue();
            case VALUE_NUMBER_FLOAT -> parser.getDecimalValue();
            case VALUE_TRUE -> Boolean.TRUE;
            case VALUE_FALSE -> Boolean.FALSE;
            case VALUE_NULL -> null;
            default -> throw bad("malformed batch stream: unexpected " + t);
        };
    }

    private static BadBatchException bad(String message) {
        return new BadBatchException(Stage.TRANSPORT, message);
    }

    @Override
    public void close() throws IOException {
        parser.close();
        if (gzip != null) {
            gzip.close(); // releases the inflater's native memory now; also closes the underlying stream
        }
    }
}
