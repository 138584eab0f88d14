package io.syncline.bench;

/*
 * EXPERIMENT, not Syncline's capture: statement-level AFTER triggers with transition tables that write the
 * same outbox rows as PostgresDialect's row-level trigger (channel, table, op, old_row, new_row as
 * row_to_json text, origin), for table item of channel bench only. One INSERT ... SELECT per statement
 * replaces one PL/pgSQL call and one single-row INSERT per row. It is here to measure how much of the capture
 * cost is per-row trigger overhead.
 *
 * Not production-ready: UPDATE pairs OLD and NEW transition rows by their position (row_number() over the
 * two tuplestores, which PostgreSQL fills in step, one old and one new tuple per updated row), which the
 * documentation does not promise; and rows of one statement get outbox seq numbers in no particular order,
 * which matters to the hub for statements that move primary keys onto each other (UPDATE ... SET id = id + 1).
 */
final class StatementTrigger {
    private static final String ORIGIN = "NULLIF(current_setting('syncline.origin', true), '')";

    static final String[] DDL = {
        "CREATE OR REPLACE FUNCTION bench_cap_ins() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
                + "INSERT INTO sync_outbox (channel, table_name, op, new_row, origin) "
                + "SELECT 'bench', 'item', 'I', row_to_json(n)::text, " + ORIGIN + " FROM new_rows n; RETURN NULL; END $f$",
        "CREATE OR REPLACE FUNCTION bench_cap_upd() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
                + "INSERT INTO sync_outbox (channel, table_name, op, old_row, new_row, origin) "
                + "SELECT 'bench', 'item', 'U', o.j, n.j, " + ORIGIN + " FROM "
                + "(SELECT row_number() OVER () AS i, row_to_json(x)::text AS j FROM old_rows x) o JOIN "
                + "(SELECT row_number() OVER () AS i, row_to_json(x)::text AS j FROM new_rows x) n USING (i); RETURN NULL; END $f$",
        "CREATE OR REPLACE FUNCTION bench_cap_del() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
                + "INSERT INTO sync_outbox (channel, table_name, op, old_row, origin) "
                + "SELECT 'bench', 'item', 'D', row_to_json(o)::text, " + ORIGIN + " FROM old_rows o; RETURN NULL; END $f$",
        "CREATE TRIGGER bench_cap_ins AFTER INSERT ON item REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_cap_ins()",
        "CREATE TRIGGER bench_cap_upd AFTER UPDATE ON item REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
                + "FOR EACH STATEMENT EXECUTE FUNCTION bench_cap_upd()",
        "CREATE TRIGGER bench_cap_del AFTER DELETE ON item REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_cap_del()",
    };

    private StatementTrigger() {
    }
}
