package io.syncline.engine.route;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;

/**
 * A routing condition in a tiny SQL-like boolean language: a channel's site selector, tested against a site's
 * attributes ({@code region IN ('north', 'south') AND type = 'store'}), or a table's row filter, tested against a row's
 * columns with the site's attributes as parameters ({@code site_id = :site.id OR region IS NULL}).
 * <p>
 * Conditions combine with OR, AND, NOT and parentheses (NOT binds tightest, then AND, then OR); a condition is
 * {@code a cmp b} (=, &lt;&gt;, !=, &lt;, &lt;=, &gt;, &gt;=), {@code a [NOT] IN (b, ...)} or {@code a IS [NOT] NULL}.
 * An operand is a column (case-insensitive unless "double quoted"), a parameter {@code :site.name}, a 'string' ('' escapes
 * a quote), a number, TRUE, FALSE or NULL. Evaluation follows SQL three-valued logic and {@link #test} is true only for
 * TRUE. Numbers compare numerically, also against numeric strings (1 = 1.0 = '1'); booleans support only = and &lt;&gt;,
 * also against 'true' and 'false'; anything else compares as case-sensitive strings. Immutable and thread-safe.
 */
public final class RouteExpression {
    static final int MAX_DEPTH = 100;

    private final String text;
    private final Node root;
    private final Set<String> columns;
    private final Set<String> parameters;

    private RouteExpression(String text, Node root, Set<String> columns, Set<String> parameters) {
        this.text = text;
        this.root = root;
        this.columns = Collections.unmodifiableSet(columns);
        this.parameters = Collections.unmodifiableSet(parameters);
    }

    /** Parses an expression; an {@link IllegalArgumentException} names the problem, its 1-based position and the text. */
    public static RouteExpression parse(String text) {
        Objects.requireNonNull(text, "text");
        Parser parser = new Parser(text);
        Node root = parser.parse();
        return new RouteExpression(text, root, parser.columns, parser.parameters);
    }

    /**
     * Whether the expression is TRUE (not FALSE, not UNKNOWN) for these values. {@code column} maps a column name (as
     * in {@link #columns()}) to its canonical value or null; {@code parameter} maps a parameter name (as in
     * {@link #parameters()}) to its value, null if unknown.
     */
    public boolean test(Function<String, Object> column, Function<String, String> parameter) {
        return Boolean.TRUE.equals(root.eval(new Env(Objects.requireNonNull(column, "column"),
                Objects.requireNonNull(parameter, "parameter"))));
    }

    /** The column names referenced (lower-cased unless quoted), in order of first appearance. */
    public Set<String> columns() {
        return columns;
    }

    /** The parameter names referenced, without the {@code :site.} prefix and as written, in order of first appearance. */
    public Set<String> parameters() {
        return parameters;
    }

    /** The original text. */
    public String text() {
        return text;
    }

    @Override
    public String toString() {
        return text;
    }

    // ---- evaluation: a Boolean result of null is SQL's UNKNOWN ----

    record Env(Function<String, Object> column, Function<String, String> parameter) {
    }

    sealed interface Node permits Any, All, Not, Compare, In, IsNull {
        Boolean eval(Env env);
    }

    /** OR. */
    record Any(List<Node> terms) implements Node {
        public Boolean eval(Env env) {
            boolean unknown = false;
            for (Node term : terms) {
                Boolean r = term.eval(env);
                if (r == null) {
                    unknown = true;
                } else if (r) {
                    return true;
                }
            }
            return unknown ? null : false;
        }
    }

    /** AND. */
    record All(List<Node> terms) implements Node {
        public Boolean eval(Env env) {
            boolean unknown = false;
            for (Node term : terms) {
                Boolean r = term.eval(env);
                if (r == null) {
                    unknown = true;
                } else if (!r) {
                    return false;
                }
            }
            return unknown ? null : true;
        }
    }

    record Not(Node node) implements Node {
        public Boolean eval(Env env) {
            Boolean r = node.eval(env);
            return r == null ? null : !r;
        }
    }

    record Compare(Operand left, Op op, Operand right) implements Node {
        public Boolean eval(Env env) {
            return compare(left.value(env), op, right.value(env));
        }
    }

    record In(Operand left, List<Operand> items, boolean negated) implements Node {
        public Boolean eval(Env env) {
            Object value = left.value(env);
            if (value == null) {
                return null;
            }
            boolean unknown = false;
            for (Operand item : items) {
                Boolean r = compare(value, Op.EQ, item.value(env));
                if (r == null) {
                    unknown = true;
                } else if (r) {
                    return !negated;
                }
            }
            return unknown ? null : negated;
        }
    }

    record IsNull(Operand operand, boolean negated) implements Node {
        public Boolean eval(Env env) {
            return (operand.value(env) == null) != negated;
        }
    }

    sealed interface Operand permits Column, Param, Literal {
        Object value(Env env);
    }

    record Column(String name) implements Operand {
        public Object value(Env env) {
            return env.column().apply(name);
        }
    }

    record Param(String name) implements Operand {
        public Object value(Env env) {
            return env.parameter().apply(name);
        }
    }

    record Literal(Object value) implements Operand {
        public Object value(Env env) {
            return value;
        }
    }

    enum Op {
        EQ, NE, LT, LE, GT, GE;

        static Op of(String symbol) {
            return switch (symbol) {
                case "=" -> EQ;
                case "<>", "!=" -> NE;
                case "<" -> LT;
                case "<=" -> LE;
                case ">" -> GT;
                case ">=" -> GE;
                default -> null;
            };
        }

        boolean holds(int comparison) {
            return switch (this) {
                case EQ -> comparison == 0;
                case NE -> comparison != 0;
                case LT -> comparison < 0;
                case LE -> comparison <= 0;
                case GT -> comparison > 0;
                case GE -> comparison >= 0;
            };
        }
    }

    /** Compares two values by the rules in the class comment; null (UNKNOWN) if either is null. */
    static Boolean compare(Object a, Op op, Object b) {
        if (a == null || b == null) {
            return null;
        }
        BigDecimal x = number(a);
        BigDecimal y = number(b);
        if (x == null && y != null && a instanceof String s) {
            x = decimal(s);
        } else if (y == null && x != null && b instanceof String s) {
            y = decimal(s);
        }
        if (x != null && y != null) {
            return op.holds(x.compareTo(y));
        }
        Boolean p = bool(a);
        Boolean q = bool(b);
        if ((a instanceof Boolean || b instanceof Boolean) && p != null && q != null) {
            return switch (op) {
                case EQ -> p.equals(q);
                case NE -> !p.equals(q);
                default -> null;
            };
        }
        return op.holds(String.valueOf(a).compareTo(String.valueOf(b)));
    }

    private static BigDecimal number(Object value) {
        return switch (value) {
            case BigDecimal d -> d;
            case BigInteger i -> new BigDecimal(i);
            case Integer i -> BigDecimal.valueOf(i);
            case Long l -> BigDecimal.valueOf(l);
            case Short s -> BigDecimal.valueOf(s);
            case Byte b -> BigDecimal.valueOf(b);
            case Double d -> Double.isFinite(d) ? BigDecimal.valueOf(d) : null;
            case Float f -> Float.isFinite(f) ? new BigDecimal(f.toString()) : null;
            case Number n -> decimal(n.toString());
            default -> null;
        };
    }

    private static BigDecimal decimal(String s) {
        try {
            return new BigDecimal(s);
        } catch (NumberFormatException | ArithmeticException e) {
            return null;
        }
    }

    private static Boolean bool(Object value) {
        if (value instanceof Boolean b) {
            return b;
        }
        if (value instanceof String s) {
            return s.equalsIgnoreCase("true") ? Boolean.TRUE : s.equalsIgnoreCase("false") ? Boolean.FALSE : null;
        }
        return null;
    }

    // ---- parsing: a one-token-lookahead tokenizer feeding a recursive-descent parser ----

    enum Kind { KEYWORD, IDENT, PARAM, STRING, NUMBER, SYMBOL, END }

    /** A token: {@code raw} as written, {@code value} the keyword (upper case), name or literal; {@code pos} 0-based. */
    record Token(Kind kind, String raw, Object value, int pos) {
        String describe() {
            return switch (kind) {
                case KEYWORD -> "keyword " + value;
                case IDENT -> "identifier " + raw;
                case PARAM -> "parameter " + raw;
                case STRING -> "string " + raw;
                case NUMBER -> "number " + raw;
                case SYMBOL -> "'" + raw + "'";
                case END -> "end of input";
            };
        }
    }

    private static final Set<String> KEYWORDS = Set.of("AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE");

    static final class Parser {
        private final String text;
        private int at;
        private Token token;
        private int depth;
        final Set<String> columns = new LinkedHashSet<>();
        final Set<String> parameters = new LinkedHashSet<>();

        Parser(String text) {
            this.text = text;
        }

        Node parse() {
            advance();
            if (token.kind() == Kind.END) {
                throw error("empty expression", token.pos());
            }
            Node node = or();
            if (token.kind() != Kind.END) {
                throw error("trailing input: unexpected " + token.describe() + " after a complete expression", token.pos());
            }
            return node;
        }

        private Node or() {
            List<Node> terms = new ArrayList<>(List.of(and()));
            while (isKeyword("OR")) {
                advance();
                terms.add(and());
            }
            return terms.size() == 1 ? terms.get(0) : new Any(List.copyOf(terms));
        }

        private Node and() {
            List<Node> terms = new ArrayList<>(List.of(not()));
            while (isKeyword("AND")) {
                advance();
                terms.add(not());
            }
            return terms.size() == 1 ? terms.get(0) : new All(List.copyOf(terms));
        }

        private Node not() {
            if (!isKeyword("NOT")) {
                return primary();
            }
            enter();
            advance();
            Node node = new Not(not());
            depth--;
            return node;
        }

        private Node primary() {
            if (isSymbol("(")) {
                int open = token.pos();
                enter();
                advance();
                Node node = or();
                expect(")", "expected ')' to close the '(' at position " + (open + 1));
                depth--;
                return node;
            }
            Operand left = operand();
            if (token.kind() == Kind.SYMBOL && Op.of(token.raw()) != null) {
                Op op = Op.of(token.raw());
                advance();
                return new Compare(left, op, operand());
            }
            if (isKeyword("IN")) {
                return in(left, false);
            }
            if (isKeyword("NOT")) {
                advance();
                if (!isKeyword("IN")) {
                    throw error("expected IN after NOT but found " + token.describe(), token.pos());
                }
                return in(left, true);
            }
            if (isKeyword("IS")) {
                advance();
                boolean negated = isKeyword("NOT");
                if (negated) {
                    advance();
                }
                if (!isKeyword("NULL")) {
                    throw error("expected NULL after IS" + (negated ? " NOT" : "") + " but found " + token.describe(), token.pos());
                }
                advance();
                return new IsNull(left, negated);
            }
            throw error("expected a comparison operator, IN or IS after the operand but found " + token.describe(), token.pos());
        }

        private Node in(Operand left, boolean negated) {
            advance(); // IN
            expect("(", "expected '(' after IN");
            if (isSymbol(")")) {
                throw error("empty IN list", token.pos());
            }
            List<Operand> items = new ArrayList<>(List.of(operand()));
            while (isSymbol(",")) {
                advance();
                items.add(operand());
            }
            expect(")", "expected ',' or ')' in the IN list");
            return new In(left, List.copyOf(items), negated);
        }

        private Operand operand() {
            Token t = token;
            Operand operand = switch (t.kind()) {
                case IDENT -> {
                    columns.add((String) t.value());
                    yield new Column((String) t.value());
                }
                case PARAM -> {
                    parameters.add((String) t.value());
                    yield new Param((String) t.value());
                }
                case STRING, NUMBER -> new Literal(t.value());
                case KEYWORD -> switch ((String) t.value()) {
                    case "TRUE" -> new Literal(Boolean.TRUE);
                    case "FALSE" -> new Literal(Boolean.FALSE);
                    case "NULL" -> new Literal(null);
                    default -> null;
                };
                default -> null;
            };
            if (operand == null) {
                throw error("missing operand: expected a column, parameter or literal but found " + t.describe(), t.pos());
            }
            advance();
            return operand;
        }

        private void enter() {
            if (++depth > MAX_DEPTH) {
                throw error("expression nested deeper than " + MAX_DEPTH + " levels", token.pos());
            }
        }

        private boolean isKeyword(String keyword) {
            return token.kind() == Kind.KEYWORD && token.value().equals(keyword);
        }

        private boolean isSymbol(String symbol) {
            return token.kind() == Kind.SYMBOL && token.raw().equals(symbol);
        }

        private void expect(String symbol, String problem) {
            if (!isSymbol(symbol)) {
                throw error(problem + " but found " + token.describe(), token.pos());
            }
            advance();
        }

        /** Scans the next token into {@link #token}. */
        private void advance() {
            int n = text.length();
            while (at < n && Character.isWhitespace(text.charAt(at))) {
                at++;
            }
            int start = at;
            if (at == n) {
                token = new Token(Kind.END, "", null, start);
                return;
            }
            char c = text.charAt(at);
            if (c == '\'') {
                String value = quoted('\'', "unterminated string literal");
                token = new Token(Kind.STRING, text.substring(start, at), value, start);
            } else if (c == '"') {
                String name = quoted('"', "unterminated quoted identifier");
                if (name.isEmpty()) {
                    throw error("empty quoted identifier", start);
                }
                token = new Token(Kind.IDENT, text.substring(start, at), name, start);
            } else if (c == ':') {
                if (!text.regionMatches(true, at + 1, "site.", 0, 5)) {
                    throw error("expected ':site.' followed by a parameter name", start);
                }
                at += 6;
                int name = at;
                while (at < n && (isWordPart(text.charAt(at)) || text.charAt(at) == '-' || text.charAt(at) == '.')) {
                    at++;
                }
                if (at == name) {
                    throw error("missing parameter name after ':site.'", name);
                }
                token = new Token(Kind.PARAM, text.substring(start, at), text.substring(name, at), start);
            } else if (isDigit(c) || c == '-') {
                token = new Token(Kind.NUMBER, number(start), new BigDecimal(text.substring(start, at)), start);
            } else if (Character.isLetter(c) || c == '_') {
                while (at < n && isWordPart(text.charAt(at))) {
                    at++;
                }
                String word = text.substring(start, at);
                String upper = word.toUpperCase(Locale.ROOT);
                token = KEYWORDS.contains(upper) ? new Token(Kind.KEYWORD, word, upper, start)
                        : new Token(Kind.IDENT, word, word.toLowerCase(Locale.ROOT), start);
            } else if (c == '(' || c == ')' || c == ',') {
                at++;
                token = new Token(Kind.SYMBOL, String.valueOf(c), null, start);
            } else {
                String two = text.substring(start, Math.min(n, start + 2));
                String symbol = Op.of(two) != null ? two : Op.of(String.valueOf(c)) != null ? String.valueOf(c) : null;
                if (symbol == null) {
                    throw error("unexpected character '" + Character.toString(text.codePointAt(start)) + "'", start);
                }
                at += symbol.length();
                token = new Token(Kind.SYMBOL, symbol, null, start);
            }
        }

        /** Reads a literal quoted with {@code q} (doubled to escape) from {@link #at}; returns its content. */
        private String quoted(char q, String unterminated) {
            int start = at;
            StringBuilder sb = new StringBuilder();
            for (at++; ; at++) {
                if (at >= text.length()) {
                    throw error(unterminated, start);
                }
                char c = text.charAt(at);
                if (c == q) {
                    if (at + 1 < text.length() && text.charAt(at + 1) == q) {
                        at++;
                    } else {
                        at++;
                        return sb.toString();
                    }
                }
                sb.append(c);
            }
        }

        /** Reads {@code -?digits[.digits]} from {@link #at}; returns its text. */
        private String number(int start) {
            if (text.charAt(at) == '-') {
                at++;
                if (at >= text.length() || !isDigit(text.charAt(at))) {
                    throw error("expected a digit after '-'", start);
                }
            }
            skipDigits();
            if (at < text.length() && text.charAt(at) == '.') {
                at++;
                if (at >= text.length() || !isDigit(text.charAt(at))) {
                    throw error("expected a digit after the decimal point", at);
                }
                skipDigits();
            }
            if (at < text.length() && isWordPart(text.charAt(at))) {
                int end = at;
                while (end < text.length() && isWordPart(text.charAt(end))) {
                    end++;
                }
                throw error("malformed number " + text.substring(start, end), start);
            }
            return text.substring(start, at);
        }

        private void skipDigits() {
            while (at < text.length() && isDigit(text.charAt(at))) {
                at++;
            }
        }

        private static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }

        private static boolean isWordPart(char c) {
            return Character.isLetterOrDigit(c) || c == '_';
        }

        private IllegalArgumentException error(String problem, int pos) {
            return new IllegalArgumentException(problem + " at position " + (pos + 1) + " in \"" + text + "\"");
        }
    }
}
