package io.syncline.engine.conflict;

import io.syncline.engine.codec.Json;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/** Comparing and naming canonical rows (docs/protocol.md, "Values"). Stateless. */
public final class Rows {
    private Rows() {
    }

    /** Whether two canonical values are the same value: numbers by value (1.50 = 1.5), the rest by equality. */
    public static boolean same(Object a, Object b) {
        if (a instanceof Number x && b instanceof Number y) {
            return new BigDecimal(x.toString()).compareTo(new BigDecimal(y.toString())) == 0;
        }
        if (a instanceof Map<?, ?> || a instanceof List<?>) {
            return Objects.equals(Json.write(a), Json.write(b));
        }
        return Objects.equals(a, b);
    }

    /** Whether every column of {@code a} that {@code b} also has holds the same value in both. */
    public static boolean sameWhereBoth(Map<String, Object> a, Map<String, Object> b) {
        for (Map.Entry<String, Object> e : a.entrySet()) {
            if (b.containsKey(e.getKey()) && !same(e.getValue(), b.get(e.getKey()))) {
                return false;
            }
        }
        return true;
    }

    /** SHA-256 (hex) of a row's canonical JSON; "absent" for no row. */
    public static String hash(Map<String, Object> row) {
        if (row == null) {
            return "absent";
        }
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Json.write(row).getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
