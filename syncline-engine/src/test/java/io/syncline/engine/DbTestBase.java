package io.syncline.engine;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * One embedded PostgreSQL per test class, a fresh database per {@link #newDb} call; H2 databases are files
 * in a per-test temporary directory.
 */
abstract class DbTestBase {
    private static final AtomicInteger COUNTER = new AtomicInteger();
    static EmbeddedPostgres pg;

    @TempDir
    Path tmp;

    @BeforeAll
    static void startPostgres() throws IOException {
        pg = EmbeddedPostgres.builder().start();
    }

    @AfterAll
    static void stopPostgres() throws IOException {
        if (pg != null) {
            pg.close();
            pg = null;
        }
    }

    TestDb newDb(TestDb.Kind kind) throws SQLException {
        String name = "db" + COUNTER.incrementAndGet();
        if (kind == TestDb.Kind.POSTGRES) {
            try (Connection c = pg.getPostgresDatabase().getConnection(); Statement s = c.createStatement()) {
                s.execute("CREATE DATABASE " + name);
            }
            return new TestDb(kind, name, pg.getJdbcUrl("postgres", name), "postgres", "postgres");
        }
        return new TestDb(kind, name, "jdbc:h2:" + tmp.resolve(name).toAbsolutePath() + ";DB_CLOSE_DELAY=0", "sa", "");
    }
}
