package io.syncline.engine.route;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.LocalDate;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The routing expression language: parsing, SQL three-valued evaluation, value coercion and precise syntax errors. */
class RouteExpressionTest {

    /** A map allowing null values, from alternating keys and values. */
    private static Map<String, Object> values(Object... keysAndValues) {
        Map<String, Object> map = new HashMap<>();
        for (int i = 0; i < keysAndValues.length; i += 2) {
            map.put((String) keysAndValues[i], keysAndValues[i + 1]);
        }
        return map;
    }

    /** Tests an expression against a row (no parameters). */
    private static boolean routes(String expression, Object... row) {
        return RouteExpression.parse(expression).test(values(row)::get, name -> null);
    }

    /** Tests a row filter against a row with site attributes as parameters. */
    private static boolean routes(String expression, Map<String, Object> row, Map<String, String> site) {
        return RouteExpression.parse(expression).test(row::get, site::get);
    }

    @Test
    void shouldBindAndTighterThanOr() {
        assertThat(routes("a = 1 OR b = 1 AND c = 1", "a", 1, "b", 0, "c", 0)).as("a = 1 OR (b = 1 AND c = 1)").isTrue();
        assertThat(routes("(a = 1 OR b = 1) AND c = 1", "a", 1, "b", 0, "c", 0)).isFalse();
        assertThat(routes("b = 1 AND c = 1 OR a = 1", "a", 1, "b", 0, "c", 0)).as("(b = 1 AND c = 1) OR a = 1").isTrue();
        assertThat(routes("b = 1 AND (c = 1 OR a = 1)", "a", 1, "b", 0, "c", 0)).isFalse();
    }

    @Test
    void shouldBindNotTighterThanAndAndHonourParentheses() {
        assertThat(routes("NOT a = 1 AND b = 1", "a", 1, "b", 0)).as("(NOT a = 1) AND b = 1").isFalse();
        assertThat(routes("NOT (a = 1 AND b = 1)", "a", 1, "b", 0)).isTrue();
        assertThat(routes("NOT NOT a = 1", "a", 1)).isTrue();
        assertThat(routes("NOT a = 1 OR b = 0", "a", 1, "b", 0)).as("(NOT a = 1) OR b = 0").isTrue();
        assertThat(routes("((a = 1))", "a", 1)).isTrue();
    }

    @Test
    void shouldMatchInAndNotInLists() {
        assertThat(routes("region IN ('north', 'south')", "region", "south")).isTrue();
        assertThat(routes("region IN ('north', 'south')", "region", "east")).isFalse();
        assertThat(routes("region NOT IN ('north', 'south')", "region", "east")).isTrue();
        assertThat(routes("region NOT IN ('north', 'south')", "region", "north")).isFalse();
        assertThat(routes("id IN (1, '2', 3.0)", "id", 3L)).as("items coerce like =").isTrue();
        assertThat(routes("id IN ('store-1', 'store-7')", "id", "store-7")).isTrue();
    }

    @Test
    void shouldTreatInWithNullsAsUnknown() {
        assertThat(routes("region IN ('north')", "region", null)).isFalse();
        assertThat(routes("region NOT IN ('north')", "region", null)).as("NULL NOT IN (...) is UNKNOWN, not TRUE").isFalse();
        assertThat(routes("NOT (region IN ('north'))", "region", null)).isFalse();
        assertThat(routes("region IN ('north', NULL)", "region", "north")).as("a match wins over NULL").isTrue();
        assertThat(routes("region IN ('north', NULL)", "region", "south")).isFalse();
        assertThat(routes("region NOT IN ('north', NULL)", "region", "south")).as("no match but NULL is UNKNOWN").isFalse();
        assertThat(routes("NOT (region IN ('north', NULL))", "region", "south")).isFalse();
        assertThat(routes("region NOT IN ('north', NULL)", "region", "north")).isFalse();
    }

    @Test
    void shouldTestIsNullAndIsNotNull() {
        assertThat(routes("region IS NULL", "region", null)).isTrue();
        assertThat(routes("region IS NULL")).as("a missing column is NULL").isTrue();
        assertThat(routes("region IS NULL", "region", "north")).isFalse();
        assertThat(routes("region IS NOT NULL", "region", "north")).isTrue();
        assertThat(routes("region IS NOT NULL", "region", null)).isFalse();
        assertThat(routes("NULL IS NULL")).isTrue();
        assertThat(routes("region = :site.region OR region IS NULL", values("region", null), Map.of("region", "north")))
                .isTrue();
        assertThat(routes(":site.zone IS NULL", values(), Map.of())).as("an unknown parameter is NULL").isTrue();
    }

    @Test
    void shouldFollowSqlThreeValuedLogic() {
        assertThat(routes("x = 1")).as("NULL = 1 is UNKNOWN").isFalse();
        assertThat(routes("NOT x = 1")).as("NOT UNKNOWN is UNKNOWN").isFalse();
        assertThat(routes("x <> 1")).isFalse();
        assertThat(routes("NULL = NULL")).isFalse();
        assertThat(routes("NULL <> NULL")).isFalse();
        assertThat(routes("x = 1 OR y = 1", "y", 1)).as("UNKNOWN OR TRUE").isTrue();
        assertThat(routes("x = 1 OR y = 2", "y", 1)).as("UNKNOWN OR FALSE").isFalse();
        assertThat(routes("NOT (x = 1 OR y = 2)", "y", 1)).as("NOT (UNKNOWN OR FALSE)").isFalse();
        assertThat(routes("x = 1 AND y = 1", "y", 1)).as("UNKNOWN AND TRUE").isFalse();
        assertThat(routes("NOT (x = 1 AND y = 1)", "y", 1)).as("NOT (UNKNOWN AND TRUE)").isFalse();
        assertThat(routes("NOT (x = 1 AND y = 2)", "y", 1)).as("NOT (UNKNOWN AND FALSE)").isTrue();
    }

    @Test
    void shouldCompareNumbersNumericallyAcrossTypesAndNumericStrings() {
        assertThat(routes("n = '3'", "n", 3L)).isTrue();
        assertThat(routes("n = 3.0", "n", 3L)).isTrue();
        assertThat(routes("n = 3", "n", "3.00")).isTrue();
        assertThat(routes("n = m", "n", 3, "m", new BigDecimal("3.000"))).isTrue();
        assertThat(routes("n = 1.5", "n", new BigDecimal("1.50"))).as("BigDecimal scale is ignored").isTrue();
        assertThat(routes("n = m", "n", (short) 7, "m", BigInteger.valueOf(7))).isTrue();
        assertThat(routes("n = 0.1", "n", 0.1d)).as("a double compares by its shortest decimal").isTrue();
        assertThat(routes("n = 0.1", "n", 0.1f)).isTrue();
        assertThat(routes("n > '9'", "n", 10L)).as("numeric, not string, ordering").isTrue();
        assertThat(routes("n >= -1.5 AND n < 0", "n", -1)).isTrue();
        assertThat(routes("n <= 2", "n", Integer.valueOf(2))).isTrue();
        assertThat(routes("n = 12345678901234567890", "n", new BigInteger("12345678901234567890"))).isTrue();
        assertThat(routes("n = 12345678901234567891", "n", new BigInteger("12345678901234567890"))).isFalse();
    }

    @Test
    void shouldCompareTwoStringsAsStringsEvenWhenNumeric() {
        assertThat(routes("a > b", "a", "10", "b", "9")).as("'10' < '9' as strings").isFalse();
        assertThat(routes("a = b", "a", "1", "b", "1.0")).isFalse();
        assertThat(routes("n = 'three'", "n", 3)).as("a non-numeric string compares as a string").isFalse();
        assertThat(routes("n <> 'three'", "n", 3)).isTrue();
    }

    @Test
    void shouldCompareStringsCaseSensitively() {
        assertThat(routes("region = 'north'", "region", "north")).isTrue();
        assertThat(routes("region = 'north'", "region", "North")).isFalse();
        assertThat(routes("region <> 'north'", "region", "North")).isTrue();
        assertThat(routes("region != 'north'", "region", "North")).isTrue();
        assertThat(routes("name < 'banana' AND name >= 'apple'", "name", "apricot")).isTrue();
        assertThat(routes("name > 'banana'", "name", "apricot")).isFalse();
    }

    @Test
    void shouldCompareBooleansForEqualityOnly() {
        assertThat(routes("active = TRUE", "active", true)).isTrue();
        assertThat(routes("active = FALSE", "active", true)).isFalse();
        assertThat(routes("active <> FALSE", "active", true)).isTrue();
        assertThat(routes("active = 'true'", "active", true)).isTrue();
        assertThat(routes("active = 'FALSE'", "active", false)).isTrue();
        assertThat(routes("active = TRUE", "active", "True")).as("a string attribute against a boolean").isTrue();
        assertThat(routes("active < TRUE", "active", false)).as("ordering booleans is UNKNOWN").isFalse();
        assertThat(routes("NOT active < TRUE", "active", false)).isFalse();
        assertThat(routes("active = 1", "active", true)).as("not boolean-like: compared as strings").isFalse();
    }

    @Test
    void shouldReadQuotedIdentifiersAndStringEscapes() {
        assertThat(routes("\"Region\" = 'it''s'", "Region", "it's")).isTrue();
        assertThat(routes("\"a\"\"b\" = 'x'", "a\"b", "x")).isTrue();
        assertThat(routes("\"and\" = 1", "and", 1)).as("a quoted keyword is an identifier").isTrue();
        assertThat(routes("name = 'say \"hi\"'", "name", "say \"hi\"")).isTrue();
        assertThat(routes("name = ''", "name", "")).isTrue();
        assertThat(routes("name = ''''", "name", "'")).isTrue();
        assertThat(RouteExpression.parse("\"Region\" = 1 AND Region = 2").columns()).containsExactly("Region", "region");
    }

    @Test
    void shouldReadKeywordsAndIdentifiersCaseInsensitively() {
        RouteExpression e = RouteExpression.parse("Region in ('north') aNd NOT Type iS nUlL oR Flag = true");
        assertThat(e.columns()).containsExactly("region", "type", "flag");
        assertThat(e.test(values("region", "north", "type", "store")::get, name -> null)).isTrue();
        assertThat(e.test(values("region", "south", "flag", false)::get, name -> null)).isFalse();
        assertThat(e.test(values("flag", true)::get, name -> null)).isTrue();
    }

    @Test
    void shouldSelectSitesByTheirAttributes() {
        RouteExpression selector = RouteExpression.parse("region IN ('north', 'south') AND type = 'store'");
        assertThat(selector.test(values("id", "store-1", "region", "north", "type", "store")::get, name -> null)).isTrue();
        assertThat(selector.test(values("id", "wh-1", "region", "north", "type", "warehouse")::get, name -> null)).isFalse();
        assertThat(selector.test(values("id", "store-9", "type", "store")::get, name -> null)).isFalse();
    }

    @Test
    void shouldFilterRowsBySiteParameters() {
        Map<String, String> site = Map.of("id", "7", "region", "north");
        assertThat(routes("site_id = :site.id", values("site_id", 7L), site)).as("a numeric column against a string attribute")
                .isTrue();
        assertThat(routes("site_id = :site.id", values("site_id", 8L), site)).isFalse();
        assertThat(routes("region = :site.region OR region IS NULL", values("region", "north"), site)).isTrue();
        assertThat(routes("region = :site.region OR region IS NULL", values("region", "south"), site)).isFalse();
        assertThat(routes("region IN (:site.region, 'all')", values("region", "all"), site)).isTrue();
        assertThat(routes("region = :SITE.region", values("region", "north"), site)).as("the prefix is case-insensitive")
                .isTrue();
    }

    @Test
    void shouldNotRouteOnAnUnknownParameter() {
        Map<String, String> site = Map.of("id", "7");
        assertThat(routes("site_id = :site.zone", values("site_id", 7L), site)).isFalse();
        assertThat(routes("site_id <> :site.zone", values("site_id", 7L), site)).as("UNKNOWN either way").isFalse();
        assertThat(routes("site_id NOT IN (:site.zone)", values("site_id", 7L), site)).isFalse();
    }

    @Test
    void shouldPassParameterNamesAsWritten() {
        RouteExpression e = RouteExpression.parse("code = :site.Region-Code AND zone = :site.geo.zone");
        assertThat(e.parameters()).containsExactly("Region-Code", "geo.zone");
        assertThat(e.test(values("code", "N1", "zone", "z")::get, Map.of("Region-Code", "N1", "geo.zone", "z")::get)).isTrue();
        assertThat(e.test(values("code", "N1", "zone", "z")::get, Map.of("region-code", "N1", "geo.zone", "z")::get)).isFalse();
    }

    @Test
    void shouldListColumnsAndParametersOnceInOrderOfAppearance() {
        RouteExpression e = RouteExpression.parse(
                "(B = :site.y OR a IS NULL) AND NOT \"C\" IN (:site.x, b, 'lit') AND :site.y <> 1 AND TRUE = TRUE");
        assertThat(e.columns()).containsExactly("b", "a", "C");
        assertThat(e.parameters()).containsExactly("y", "x");
        assertThatThrownBy(() -> e.columns().add("d")).isInstanceOf(UnsupportedOperationException.class);
        assertThatThrownBy(() -> e.parameters().clear()).isInstanceOf(UnsupportedOperationException.class);
        RouteExpression literalsOnly = RouteExpression.parse("1 = 1");
        assertThat(literalsOnly.columns()).isEmpty();
        assertThat(literalsOnly.parameters()).isEmpty();
        assertThat(literalsOnly.test(name -> null, name -> null)).isTrue();
    }

    @Test
    void shouldKeepTheOriginalText() {
        String text = "  region  IN ('North')  ";
        RouteExpression e = RouteExpression.parse(text);
        assertThat(e.text()).isEqualTo(text);
        assertThat(e).hasToString(text);
    }

    @Test
    void shouldNeverThrowWhileEvaluatingOddValues() {
        List<Object> odd = List.of(new Object(), new byte[] {1}, LocalDate.of(2024, 1, 1), Double.NaN,
                Double.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, "", " 1", "1e5", "NaN", true, Long.MIN_VALUE,
                new BigDecimal("1E+999999"), new java.util.concurrent.atomic.AtomicLong(5));
        RouteExpression e = RouteExpression.parse("v = w OR v <> w OR v < w OR v <= w OR v > w OR v >= w OR v IN (w, 1, 'x', TRUE)");
        for (Object v : odd) {
            for (Object w : odd) {
                assertThatCode(() -> e.test(values("v", v, "w", w)::get, name -> null)).as("%s vs %s", v, w)
                        .doesNotThrowAnyException();
            }
        }
        assertThat(routes("v = 5", "v", new java.util.concurrent.atomic.AtomicLong(5))).isTrue();
        assertThat(routes("v = 100000", "v", "1e5")).as("a string in exponent notation is still a BigDecimal").isTrue();
    }

    static Stream<Arguments> malformed() {
        return Stream.of(
                Arguments.of("", 1, "empty expression"),
                Arguments.of("   ", 4, "empty expression"),
                Arguments.of("region = 'north", 10, "unterminated string literal"),
                Arguments.of("\"Region = 'a'", 1, "unterminated quoted identifier"),
                Arguments.of("\"\" = 1", 1, "empty quoted identifier"),
                Arguments.of("region IN ('a', 'b'", 20, "expected ',' or ')' in the IN list but found end of input"),
                Arguments.of("region IN ()", 12, "empty IN list"),
                Arguments.of("a IN 'x'", 6, "expected '(' after IN but found string 'x'"),
                Arguments.of("region = ", 10, "missing operand: expected a column, parameter or literal but found end of input"),
                Arguments.of("region = = 'a'", 10, "missing operand: expected a column, parameter or literal but found '='"),
                Arguments.of("a = 1 OR OR b = 2", 10, "missing operand: expected a column, parameter or literal but found keyword OR"),
                Arguments.of("NOT", 4, "missing operand: expected a column, parameter or literal but found end of input"),
                Arguments.of("()", 2, "missing operand: expected a column, parameter or literal but found ')'"),
                Arguments.of("region = 'a' store", 14, "trailing input: unexpected identifier store after a complete expression"),
                Arguments.of("a = 1)", 6, "trailing input: unexpected ')' after a complete expression"),
                Arguments.of("region # 'a'", 8, "unexpected character '#'"),
                Arguments.of("a ! b", 3, "unexpected character '!'"),
                Arguments.of("(region = 'a'", 14, "expected ')' to close the '(' at position 1 but found end of input"),
                Arguments.of("region", 7, "expected a comparison operator, IN or IS after the operand but found end of input"),
                Arguments.of("region IS 'x'", 11, "expected NULL after IS but found string 'x'"),
                Arguments.of("region IS NOT 1", 15, "expected NULL after IS NOT but found number 1"),
                Arguments.of("region NOT = 'a'", 12, "expected IN after NOT but found '='"),
                Arguments.of("id = :region", 6, "expected ':site.' followed by a parameter name"),
                Arguments.of("id = :site.", 12, "missing parameter name after ':site.'"),
                Arguments.of("a = 1.x", 7, "expected a digit after the decimal point"),
                Arguments.of("a = 12ab", 5, "malformed number 12ab"),
                Arguments.of("a = - 1", 5, "expected a digit after '-'"));
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @MethodSource("malformed")
    void shouldRejectMalformedInputNamingTheProblemAndPosition(String text, int position, String problem) {
        assertThatThrownBy(() -> RouteExpression.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("%s at position %d in \"%s\"", problem, position, text);
    }

    @Test
    void shouldRejectTooDeepNestingWithoutOverflowingTheStack() {
        int ok = RouteExpression.MAX_DEPTH;
        assertThat(RouteExpression.parse("(".repeat(ok) + "a = 1" + ")".repeat(ok)).test(values("a", 1)::get, n -> null)).isTrue();
        String parens = "(".repeat(ok + 1) + "a = 1" + ")".repeat(ok + 1);
        assertThatThrownBy(() -> RouteExpression.parse(parens))
                .hasMessageStartingWith("expression nested deeper than 100 levels at position 101 in ");
        String nots = "NOT ".repeat(100_000) + "a = 1";
        assertThatThrownBy(() -> RouteExpression.parse(nots))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("expression nested deeper than 100 levels at position 401 in ");
    }
}
