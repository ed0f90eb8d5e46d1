/**
 * The log's order key, and the guard that refuses a log whose keys this
 * cluster cannot have issued.
 *
 * An event's order key is the transaction id it was filed under plus the
 * log's ordering offset: appends file under `pg_current_xact_id() +
 * offset`, readers read below `pg_snapshot_xmin(pg_current_snapshot()) +
 * offset`. Adding one constant to both sides keeps the ordering rule
 * exact. The offset is 0 until the database is moved into a cluster whose
 * transaction ids start below the history's; {@linkcode rebaseLog} then
 * raises it once, past the history.
 *
 * The offset is the body of an IMMUTABLE SQL function (schema version 6),
 * which the planner folds into every statement as a constant: reading it
 * from its one-row table cost every append and read a table access, about
 * a sixth of a one-event append's server time. The rebase replaces the
 * function, which invalidates every session's cached plans that used it,
 * so the next statement of any transaction that begins after the rebase
 * uses the new offset. (The one-row table stays, as the record of the
 * rebase.)
 *
 * The guard: a key that this database has handed out is below
 * `pg_snapshot_xmax(pg_current_snapshot()) + offset` (the next id, in
 * keys) for any snapshot that sees it, since every visible key comes from
 * a transaction that committed before the snapshot was taken, or from
 * this transaction itself (then its own id plus 1 bounds it). A visible
 * key at or above it, in the log or in a cursor, means the ids went
 * backwards. The guard is one call of a PL/pgSQL function (schema version
 * 7) whose arguments use no column of the rows scanned, so it runs once
 * per statement, before its scans (see
 * {@linkcode regressionVerdictSql}); it raises by casting a marked text to
 * boolean, the one way plain SQL has, so the very statement that would
 * append or read refuses as a whole.
 *
 * xid8 has no arithmetic: keys go through `int8` (xid8 is an unsigned
 * 64-bit number, but an epoch would have to pass 2^31 to leave int8).
 *
 * @module
 */

import { TransactionIdRegressionError } from "../es/errors.ts";
import { quote, type ResolvedTables } from "./tables.ts";

/** The log's ordering offset: a call the planner folds into a constant. */
export function offsetSql(tables: ResolvedTables): string {
  return `${quote(tables.logOffsetFunction)}()`;
}

/** The order key this transaction files its events under, given the offset (int8). */
export function orderKeySql(offset: string): string {
  return `(pg_current_xact_id()::text::int8 + ${offset})::text::xid8`;
}

/** The safe horizon as an order key: events below it are readable. */
export function horizonSql(tables: ResolvedTables): string {
  return `(pg_snapshot_xmin(pg_current_snapshot())::text::int8 + ${offsetSql(tables)})::text::xid8`;
}

/**
 * The order key the next transaction will get: nothing visible is at or
 * above it. This transaction's own events are visible to it before it
 * commits, and its id can be at or above the snapshot's xmax (when no
 * transaction ended since it took its id), hence the greater of the two.
 */
function nextKeySql(offset: string): string {
  return `(greatest(pg_snapshot_xmax(pg_current_snapshot())::text::int8,
      pg_current_xact_id_if_assigned()::text::int8 + 1) + ${offset})::text::xid8`;
}

const MARK = "pupsourcing: transaction id regression";

/** The session setting that holds when this session last found the log sound (epoch seconds). */
const CHECKED = "pupsourcing.log_checked_at";

/** How long a session trusts its last look at the log, in seconds. */
const TRUSTED_FOR = 1;

/** True while this session found the log sound less than {@linkcode TRUSTED_FOR} ago. */
const RECENTLY_CHECKED = `coalesce(nullif(current_setting('${CHECKED}', true), '')::float8
    > date_part('epoch', statement_timestamp()) - ${TRUSTED_FOR}, false)`;

/**
 * The verdict on the log and a cursor: null while every visible key of the
 * log and the cursor are below the next key this database would hand out,
 * and otherwise `log|cursor <stored key> <next key>`. The SQL text before
 * and after the cursor (an xid8 expression, a parameter, or `null`), which
 * the caller puts between them: a call of the function of
 * {@linkcode logVerdictSql}, with the offset as the statement folds it in.
 */
export function regressionVerdictSql(
  tables: ResolvedTables,
  offset: string = offsetSql(tables),
): [string, string] {
  return [`${quote(tables.logVerdictFunction)}((`, `)::xid8, ${offset})`];
}

/**
 * The DDL of schema version 7: the verdict as a PL/pgSQL function.
 *
 * The cursor is compared on every statement. The log is looked at once per
 * session and second, by the look function of {@linkcode logFunctionsSql}:
 * a session that found it sound records when in a session setting (undone
 * with its transaction if that aborts), and skips the look for a second
 * after. A move into a new cluster is a new server, so every session on it
 * is new and looks first; the second bounds how long a session trusts a
 * log that someone else fills with foreign history under it. Looking on
 * every statement cost eight concurrent appenders 10-20% of their rate.
 *
 * A function, not SQL in each statement: PostgreSQL sets up every
 * sub-select and expression of a plan when the statement starts, run or
 * not. Written out (the next key from the snapshot, the session setting,
 * the look's call, the verdict's text: 640 characters in every
 * statement), the guard cost 7-11 µs of server time per statement in a
 * PL/pgSQL loop, and the call costs 2.3-3.6; pgbench running the
 * one-event append: 50-53 µs against 43-47. A statement with no cursor in
 * a session that looked less than a second ago returns at once. STABLE,
 * as the look: everything in it sees the calling statement's snapshot,
 * the one the next key comes from (a VOLATILE one would take a newer
 * snapshot and can refuse a sound log). The offset comes in as an
 * argument from the calling statement, whose plan folds it in, so a
 * rebase reaches the guard as it reaches the statement.
 */
export function logVerdictSql(tables: ResolvedTables): string {
  return `-- The regression guard's verdict: null while the log and the cursor are below the next
-- order key this cluster will hand out, else 'log|cursor <stored key> <next key>'.
CREATE OR REPLACE FUNCTION ${quote(tables.logVerdictFunction)}(cursor_key xid8, log_offset int8)
    RETURNS text LANGUAGE plpgsql STABLE AS $pupsourcing$
DECLARE
    recently_checked boolean := ${RECENTLY_CHECKED};
    next_key xid8;
    foreign_key xid8;
BEGIN
    IF recently_checked AND cursor_key IS NULL THEN
        RETURN NULL;
    END IF;
    next_key := ${nextKeySql("log_offset")};
    IF NOT recently_checked THEN
        foreign_key := ${quote(tables.logLookFunction)}(next_key);
        IF foreign_key IS NOT NULL THEN
            RETURN 'log ' || foreign_key || ' ' || next_key;
        END IF;
    END IF;
    IF cursor_key >= next_key THEN
        RETURN 'cursor ' || cursor_key || ' ' || next_key;
    END IF;
    RETURN NULL;
END
$pupsourcing$;
`;
}

/**
 * The query the look runs: the first key at or above the next one, an
 * index range that is empty while all is well (no row visited). The ORDER
 * BY and LIMIT keep the index, which EXISTS would drop.
 */
export function lookSql(tables: ResolvedTables): string {
  return `SELECT transaction_id FROM ${quote(tables.events)} WHERE transaction_id >= $1
    ORDER BY transaction_id LIMIT 1`;
}

/** A SQL string literal of `text`. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** `CREATE OR REPLACE` of the offset function, its body `%s`: the offset, filled in by `format`. */
function offsetFunctionTemplate(tables: ResolvedTables): string {
  return `CREATE OR REPLACE FUNCTION ${quote(tables.logOffsetFunction)}() RETURNS int8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT %s::int8'`;
}

/** `CREATE OR REPLACE` of the offset function with the body `offset`: run by the rebase. */
export function offsetFunctionSql(tables: ResolvedTables, offset: bigint): string {
  return offsetFunctionTemplate(tables).replace("%s", String(offset));
}

/**
 * The DDL of schema version 6: the log's two functions. The offset
 * function returns the offset of the one-row table as a constant (see the
 * module doc); it is the offset in force, and applying the DDL again never
 * lowers it (a table row copied from elsewhere could say less). The look function returns the first key at or above
 * `next_key`, or null, recording the time in the session when there is
 * none. It plans its query on every call (once per session and second):
 * a plan cached while the table was young or analyzed empty would scan
 * the table for good. It is STABLE so that its query reads with the
 * calling statement's snapshot: a VOLATILE function's query takes a
 * snapshot of its own, which can see a transaction that committed after
 * the caller took the next key from its snapshot, and refuse a sound log.
 */
export function logFunctionsSql(tables: ResolvedTables): string {
  return `-- The log's ordering offset as a constant that every statement's plan folds in;
-- rebaseLog replaces it. Made from the offset table's row, so a rebased log keeps its offset,
-- or kept when it is already greater (run again, this never lowers the offset in force).
DO $pupsourcing$
DECLARE
    in_force int8 := 0;
BEGIN
    IF to_regprocedure(${literal(`${quote(tables.logOffsetFunction)}()`)}) IS NOT NULL THEN
        EXECUTE ${literal(`SELECT ${quote(tables.logOffsetFunction)}()`)} INTO in_force;
    END IF;
    EXECUTE format(${literal(offsetFunctionTemplate(tables))}, greatest(in_force,
        (SELECT coalesce(max(transaction_id_offset), 0) FROM ${quote(tables.logOffset)})));
END
$pupsourcing$;

-- The guard's look at the log, once per session and second: the first order key at or
-- above the next one this cluster will hand out; null (and the time recorded) while none is.
-- STABLE: it reads with the calling statement's snapshot, the one the next key came from.
CREATE OR REPLACE FUNCTION ${quote(tables.logLookFunction)}(next_key xid8) RETURNS xid8
    LANGUAGE plpgsql STABLE AS $pupsourcing$
DECLARE
    foreign_key xid8;
BEGIN
    EXECUTE ${literal(lookSql(tables))} INTO foreign_key USING next_key;
    IF foreign_key IS NULL THEN
        PERFORM set_config('${CHECKED}', date_part('epoch', statement_timestamp())::text, false);
    END IF;
    RETURN foreign_key;
END
$pupsourcing$;
`;
}

/**
 * The guard: a condition that is true, or raises with the verdict of
 * {@linkcode regressionVerdictSql}, refusing the whole statement (and
 * aborting its transaction). Text before and after the cursor.
 */
export function regressionGuardSql(
  tables: ResolvedTables,
  offset?: string,
): [string, string] {
  const [before, after] = regressionVerdictSql(tables, offset);
  return [`coalesce(('${MARK} ' || ${before}`, `${after})::boolean, true)`];
}

/** The error a verdict of {@linkcode regressionVerdictSql} stands for; `undefined` for null. */
export function regressionFromVerdict(
  verdict: string | null | undefined,
): TransactionIdRegressionError | undefined {
  const found = verdict ? /^(log|cursor) (\d+) (\d+)$/.exec(verdict) : null;
  return found
    ? new TransactionIdRegressionError(
      BigInt(found[2]),
      BigInt(found[3]) - 1n,
      found[1] as "log" | "cursor",
    )
    : undefined;
}

/**
 * The {@linkcode TransactionIdRegressionError} that a statement's guard
 * raised, or `undefined` for any other error.
 */
export function regressionOf(error: unknown): TransactionIdRegressionError | undefined {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code !== "22P02" || typeof message !== "string") return undefined;
  const at = message.indexOf(`${MARK} `);
  if (at < 0) return undefined;
  return regressionFromVerdict(message.slice(at + MARK.length + 1).replace(/"$/, ""));
}
