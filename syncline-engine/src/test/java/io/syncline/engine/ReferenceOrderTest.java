package io.syncline.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.syncline.engine.schema.SchemaReader;
import java.sql.Connection;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Tables in the order their foreign keys allow writing them, on both databases. */
class ReferenceOrderTest extends DbTestBase {
    @ParameterizedTest
    @EnumSource(TestDb.Kind.class)
    void shouldPutReferencedTablesFirstAndBreakACycleAtATableOnIt(TestDb.Kind kind) throws Exception {
        TestDb db = newDb(kind);
        db.exec("CREATE TABLE orders (id INT PRIMARY KEY)",
                "CREATE TABLE order_line (id INT PRIMARY KEY, order_id INT REFERENCES orders (id))",
                "CREATE TABLE note (id INT PRIMARY KEY)",
                "CREATE TABLE customer (id INT PRIMARY KEY, account_id INT)",
                "CREATE TABLE account (id INT PRIMARY KEY, customer_id INT REFERENCES customer (id))",
                "ALTER TABLE customer ADD FOREIGN KEY (account_id) REFERENCES account (id)",
                "CREATE TABLE invoice_line (id INT PRIMARY KEY, customer_id INT REFERENCES customer (id))");
        try (Connection c = db.open()) {
            assertThat(SchemaReader.referenceOrder(c, List.of("order_line", "note", "orders"))).containsExactly("note", "orders", "order_line");
            assertThat(SchemaReader.referenceOrder(c, List.of("Order_Line", "ORDERS"))).containsExactly("ORDERS", "Order_Line");
            // customer and account reference each other; invoice_line only depends on the cycle, so it does not go first.
            assertThat(SchemaReader.referenceOrder(c, List.of("invoice_line", "customer", "account")))
                    .containsExactly("customer", "invoice_line", "account");
            assertThat(SchemaReader.referenceOrder(c, List.of("missing", "order_line", "orders"))).containsExactly("missing", "orders", "order_line");
        }
    }
}
