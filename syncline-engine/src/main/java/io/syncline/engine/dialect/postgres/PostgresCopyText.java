package io.syncline.engine.dialect.postgres;

import io.syncline.engine.codec.Json;
import io.syncline.engine.schema.ColumnMeta;
import java.math.BigDecimal;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Canonical values as fields of PostgreSQL's COPY text format: {@code \N} for null, backslash escapes for the
 * characters that delimit fields and rows, {@code \\x...} for binary. Every other value is PostgreSQL's own text
 * input for the column type (ISO dates and timestamps, plain decimals, t/f), so the server does the parsing and
 * names the column of any value that does not fit. Stateless.
 */
final class PostgresCopyText {
    private PostgresCopyText() {
    }

    /** Appends one row (the values of {@code columns}, tab-separated) and a newline. */
    static void appendRow(StringBuilder sb, List<ColumnMeta> columns, Map<String, Object> row) {
        for (int i = 0; i < columns.size(); i++) {
            if (i > 0) {
                sb.append('\t');
            }
            ColumnMeta col = columns.get(i);
            Object v = row.containsKey(col.key()) ? row.get(col.key()) : row.get(col.name());
            appendValue(sb, col, v);
        }
        sb.append('\n');
    }

    /**
     * A value in the text form COPY reads, without COPY's escapes: what the column type's input function takes (a
     * parameter of unspecified type is read the same way); null for NULL.
     */
    static String text(ColumnMeta col, Object v) {
        if (v == null) {
            return null;
        }
        return switch (col.kind()) {
            case BINARY -> {
                try {
                    yield "\\x" + HexFormat.of().formatHex(Base64.getMimeDecoder().decode(v.toString()));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("value does not fit column '" + col.name() + "' (" + col.typeName()
                            + "): not base64: " + e.getMessage(), e);
                }
            }
            case JSON -> Json.write(v);
            case BOOLEAN -> v instanceof Boolean b ? (b ? "t" : "f") : v.toString();
            default -> v instanceof BigDecimal d ? d.toPlainString() : v.toString();
        };
    }

    private static void appendValue(StringBuilder sb, ColumnMeta col, Object v) {
        if (v == null) {
            sb.append("\\N");
            return;
        }
        switch (col.kind()) {
            case BINARY -> {
                byte[] bytes;
                try {
                    bytes = Base64.getMimeDecoder().decode(v.toString());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("value does not fit column '" + col.name() + "' (" + col.typeName()
                            + "): not base64: " + e.getMessage(), e);
                }
                sb.append("\\\\x").append(HexFormat.of().formatHex(bytes));
            }
            case JSON -> escape(sb, Json.write(v));
            case BOOLEAN -> sb.append(v instanceof Boolean b ? (b ? "t" : "f") : v.toString());
            default -> escape(sb, v instanceof BigDecimal d ? d.toPlainString() : v.toString());
        }
    }

    private static void escape(StringBuilder sb, String s) {
        int n = s.length();
        int plain = 0;
        while (plain < n && !special(s.charAt(plain))) {
            plain++;
        }
        if (plain == n) {
            sb.append(s); // most values need no escape: one bulk copy
            return;
        }
        sb.append(s, 0, plain);
        for (int i = plain; i < n; i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> sb.append(ch);
            }
        }
    }

    private static boolean special(char ch) {
        return ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t';
    }
}
