/**
 * What the benchmark taught us, written into docs/benchmarks.md.
 *
 * @module
 */

/** Findings, as markdown. */
export const FINDINGS = `Where the time went, and what changed (figures from same-run ratios on
this machine; "before" is the first run of this benchmark):

1. **A generic plan that scanned the events table on every append.** The
   append's "is any of these event ids stored already?" check ran even when
   every id was a fresh UUIDv7. postgres.js prepares statements, and
   PostgreSQL's cached generic plan, made while the table was small, chose a
   sequential scan of \`events\`, then kept it while the table grew: each
   append read the whole table (EXPLAIN: \`Seq Scan on events ... Filter:
   (event_id = ANY ($4))\`). The check is now left out of the statement when
   no id was chosen by the caller. W1 (1 client) went from 0.56 to 0.83 of
   the hand-written statement, W2 from 0.27 to 0.49. With caller-chosen ids
   the check stayed, and an outside comparison under Node found it on young
   tables (W1 0.34, W2 0.27 of raw postgres.js, W3a p99 2.6 s): see 12.
2. **NOTIFY serializes commits.** PostgreSQL takes a database-wide lock
   before the commit record of a transaction that NOTIFYs and holds it until
   the commit is flushed, so appends that NOTIFY commit one fsync at a time:
   with 8 clients, 3.6k appends/s with \`pg_notify\` in the statement against
   7.8k without. An append on a plain client now commits first and NOTIFYs
   afterwards in its own transaction, which writes nothing and waits for no
   flush, at most once every 2 ms per store and client (the first at once,
   so a single append still wakes projections within about a millisecond:
   W6). In a caller's transaction the first append of each aggregate type
   carries the \`pg_notify\` (one NOTIFY per transaction anyway). The cost of
   wake-ups is now the gap between the \`pupsourcing\` and \`notifyChannel:
   false\` rows above.
3. **Client CPU.** On 2 cores shared by the client and 8 server backends,
   client CPU is throughput. A one-event append cost 80–90 µs of client CPU
   against 45–50 µs for the hand-written statement (\`process.cpuUsage\`):
   postgres.js rebuilt the statement from nested fragments on every call,
   and one event went through nine one-element arrays. The statement text is
   now built once per store and shape (as cached template parts, so the
   client's own \`prepare\` setting holds) and a single event travels as plain
   text parameters: about 60 µs. pgbench, a C client sending the same
   statement, does 1.1–1.4× the postgres.js hand-written statement: the rest
   of the client cost is postgres.js and Deno's \`node:net\` (socket writes
   are the largest self time in a CPU profile).
4. **Reading bytea.** postgres.js reads a \`bytea\` as hex text and decodes it
   with \`Buffer.from(hex, "hex")\`, which in Deno is plain JavaScript (1.2 µs
   for a 220-byte payload; base64 takes 0.17 µs). The store now selects
   \`encode(payload, 'base64')\` and decodes it with \`Buffer\`: the global log
   reads about a third faster, and the projection processor, which shares
   the decoder, gains as much. The ceilings include the same trick
   ("payload as base64"), so the ratios compare like with like.
5. **TCP_NODELAY.** postgres.js 3.4.9 leaves Nagle's algorithm on. It does
   not matter for the store: each statement (and each 1000-event append) is
   one write, and W3a runs the same with and without it. It matters for COPY
   through postgres.js, which writes CopyDone apart from the data and stalls
   about 40 ms per COPY (W3 "hand-written COPY" against "COPY, TCP_NODELAY
   client"). Whoever uses COPY through postgres.js should pass a \`socket\`
   that calls \`setNoDelay(true)\`: \`noDelaySocket\` in bench/db.ts is one.
6. **Many aggregates in one transaction (W3b).** Appends are per aggregate,
   so 100 aggregates took 100 statements; pipelining them inside
   \`sql.begin\` (\`Promise.all\`) makes them one round trip, but each still
   pays a statement's executor overhead: 0.72–0.83 of one unnest statement.
   \`appendMany\` now stores several aggregates in one statement, all or
   nothing: heads upserted from arrays in lock order, a refusal raised from
   inside the statement so nothing of it stays. Two things made its first
   version (0.84) slower than the hand-written statement, both found with
   \`EXPLAIN ANALYZE\` and \`process.cpuUsage\`: joining a thousand events
   to their heads (now each event indexes its head's values in arrays), and
   answering with five columns per event, which the client decoded row by
   row (now one row of arrays). With both: 0.87–0.90.
7. **Projections.** The processor's default \`batchSize\` is 100: each batch
   is five round trips (BEGIN, lock checkpoints, read, move checkpoints,
   COMMIT), so 4 partitions with the default caught up at 115k events/s
   against 218k with \`batchSize: 1000\` (200k-event log). W5 runs both the
   single worker and the partitions at 1000, the ceiling's page size. Each
   partition walks the whole log index and drops the other partitions' rows
   after fetching them (\`Rows Removed by Filter\`), so N partitions read the
   heap N times: on a machine with spare cores they still win, on these 2
   cores they barely do.
8. **Same data on both sides.** The ceilings store the same UUIDv7 event
   ids as the store. With random (v4) ids the hand-written one-event append
   ran about 5% faster with 8 clients on this small table, and
   \`gen_random_uuid()\` per row slowed the hand-written bulk statements: a
   ceiling that stores other data measures other work.
9. **Parameters cost client CPU.** postgres.js spends CPU on every
   parameter (type inference, serialization, its part of the Bind message).
   The one-event append sent 18 for 7 values: the aggregate's type and id
   and the event count appeared several times in the text, and the optional
   columns went as nulls. Now each value is sent once (the event insert
   takes the aggregate from the head's \`RETURNING\`), the head takes one of
   three shapes (create, upsert, update) instead of flags, and columns no
   event sets are left to their defaults: 6 parameters for a new aggregate.
   W1-1, W1-8 and W2 went from 0.91, 0.85 and 0.82 to 0.94–1.01,
   0.94–0.99 and 0.88–0.94 over four runs.
10. **Custom plans of big arrays.** PostgreSQL plans a prepared statement's
   first five runs with the parameters' values and folds a cast of a known
   value while planning, so the text-to-array casts of a thousand events
   were parsed at plan time, at a cost well above parsing them when the
   statement runs (custom-plan \`appendMany\` of 100 × 10 events: 31 ms,
   generic plan 14 ms, with \`plan_cache_mode\` forced each way). The arrays
   are now cast in sub-selects, which run at execution in either plan: 16 ms
   custom, and W3b 0.90 → 0.97.
11. **Fewer wake-ups while appends keep coming.** With a fixed 2 ms gap,
   8 clients spent 7% of their throughput on NOTIFYs (W2: 0.92–0.95 against
   0.99–1.02 without wake-ups, two runs); with a 10 ms gap 1–3%. The gap now
   starts at 2 ms and doubles, up to 10 ms, while several appends keep
   sharing each NOTIFY; one NOTIFY for a single append brings it back. An
   append after a quiet spell still wakes projections at once (W6), and
   under load a wake-up waits at most 10 ms. W1-8 and W2 with wake-ups on
   then measured 0.97–1.01 and 0.99–1.01 in two runs.
12. **No statement asks for stored ids any more.** Every \`not exists (select
   from events where event_id = any(...))\` is gone: the unique constraint
   on \`event_id\` finds a reused id without a plan, and the stored events are
   looked up (unprepared, so planned for the table as it is) only when it
   fires. In a caller's transaction, where the violation would abort the
   transaction, an append with its own ids skips the stored ones (\`ON
   CONFLICT (event_id) DO NOTHING\`) and undoes the rest of its writes in a
   second statement, only then. tests/append_plan_test.ts runs every
   append shape through EXPLAIN EXECUTE under \`plan_cache_mode\` forced to
   custom and generic plans, on created, truncated and emptied tables: no
   sequential scan of the events table (the old statements had one in 28
   of the generic plans). The \`/i\`, \`/if\` (fresh tables: emptied before
   each slice) and \`/im\` rows measure caller-chosen ids and events with
   metadata and trace ids against ceilings that write the same. The log
   guard's own look at the log is planned afresh on each call (at most once
   per session and second, see 14), so no plan made while the table was
   young outlives it.
13. **Appends coalesced on a pool.** Each statement costs a parse, a plan, a
   round trip and a commit whatever it carries. With 64 callers on a pool
   of 8, appends queued while the pool's connections all carry a statement
   go together when one ends (\`coalesce\`, on by default): 2.8 times the
   events per second of \`coalesce: false\`, with two fifths of its p99, and
   2.5 times pgbench's one-statement ceiling at 8 clients (W1c-64 above). The
   limit on two cores is CPU per append: 544 µs (client and server) alone,
   234 at 4.7 appends per statement (eight in flight), 191 at 8.8 (four in
   flight), 171 at 17 (two). Half the pool in flight, always, left W1c-64
   no better and made eight callers on a pool of eight queue behind four
   statements (W1-8 0.74 against 0.93 with the whole pool, W2 0.79 against
   0.89, back to back). So the limit moves with the load: the whole pool
   while no more appends are pending than it has connections, a quarter
   of it (two of eight) beyond. Back to back at 64 callers: 11.3-12.4
   appends per statement against 4.3-4.5, CPU per append 104-142 µs
   against 150-189, 8.9-11.7k appends/s against 8.3-10.6k; W1-8 0.91, W2
   0.91. Yet more than half of those statements carried one append: the
   first append a caller made after a statement ended found a connection
   free and went alone, and the rest queued behind it. Now a statement
   goes beside another once the queue holds its share of the pending
   appends (half, with two in flight), or after 2 ms (the statement in
   flight may itself wait on a lock): 22-25 appends per statement, CPU per
   append 70-85 µs, 14.4-18.8k appends/s against 5.2k uncoalesced, back
   to back in 6-second runs (three or four in flight did no better).
   Under Node that changed nothing (8.8-11.3k, 9-11 appends per
   statement): a statement that ends settles all its callers at once, so
   for a moment few appends are pending, and the first to append again
   each went alone on a free connection, six for every shared statement.
   The store now stays crowded for 5 ms after more appends were pending
   than connections: 30 appends per statement, 18.7-19.5k appends/s
   under Deno, 16.1-17.5k under Node; W1c-64 2.86 and 2.93 times
   uncoalesced in \`--only W1c\` runs. Both rules give way: a queue that
   waits for its share goes after 2 ms, one that waits for the quarter
   after 20 ms, so that statements waiting on a lock (perhaps held by the
   caller of a queued append) cannot hold it back for good. Earlier figures here compared
   coalescing with itself: the reference row was coalesced too, by the
   default.
14. **The order key's cost.** Since the log can be moved into a new cluster
   (docs/event-store.md, "Moving the database"), an event's order key is its
   transaction id plus an offset, and every append and read checks that the
   log and its cursor hold no key this cluster has not issued. Its first
   versions cost one-event appends 8-20% (W1-8 0.78-0.82 against 0.94 before).
   Server CPU per one-event append statement, in a PL/pgSQL loop, split it:
   73-105 µs as shipped, 54-63 without the guard, 43-51 with neither. Two
   costs: reading the offset's one-row table on every statement, and the
   guard's sub-selects, which PostgreSQL sets up (index scans on the events
   table) when the statement starts even when the session skips the look.
   The offset is now the body of an IMMUTABLE function, which the planner
   folds in as a constant (a rebase replaces it, and PostgreSQL invalidates
   the plans that folded the old value), and the look is a function called
   only when due: 49.3 µs against 48.7 with neither, in the same loop.
15. **A projection batch in fewer round trips.** A batch was BEGIN, lock the
   checkpoints, read, move them, COMMIT. The lock and the read are now one
   statement (one snapshot), and the checkpoint update goes out with the
   COMMIT: three round trips against the hand-written loop's four. A
   NOTIFY wake-up goes straight to a batch, without probing the checkpoints
   first (W6). And the idle poll's "is anything waiting behind the
   horizon?" was an \`exists\` that PostgreSQL answered by scanning the whole
   events table on every idle poll (about 70 ms at 50,000 events): it now
   asks the log index for the first key at or above the horizon.
16. **Client CPU of realistic events.** A 1000-event append with metadata,
   trace, correlation and causation ids and caller ids cost 18-27 µs of
   client CPU per event: validation stringified the metadata and the
   append stringified it again and escaped every quote into an array
   literal, and the columns with defaults went as a thousand 1s and nulls.
   Now the metadata goes as one JSON array of the texts validation made,
   read back with \`jsonb_array_elements\`, and an optional column is sent
   only when some event sets it: 9.6-12.5 µs per event under Deno and Node
   (the unnest ceiling 13.5-34), W3a/im and W3b/im 0.99-1.20 of the ceiling.
   W3 also built its events inside the timed window, which pulled every
   ratio towards 1; they are made before the clock starts now.
17. **A projection batch planned on every run.** One worker catching up
   (W5) spent, per batch of 1000 events, 5.1 ms of server CPU against the
   hand loop's 3.9 (\`/proc\` of each backend), and 0.9 ms more of client
   CPU. EXPLAIN: the lock-and-read statement was planned on every run (0.6
   ms against the loop's 0.06; \`pg_prepared_statements\`: 0 generic, 320
   custom), because its generic plan, costed with the limit and the segment
   count as unknown parameters, lost to the custom ones; and postgres.js
   rebuilt its two dozen fragments on every batch (0.3-0.5 ms of client
   CPU between BEGIN's reply and sending the statement). The statement
   is now built once per share, with the limit and the segment count in its
   text, so PostgreSQL keeps its plan. A plan kept on a young table reads
   the range and sorts it, and kept as the table grows that cost 210 ms a
   batch against 12 at 300,000 events: so the text also names the table's
   size class (a power of two in pages, which the statement reports), and a
   worker moves to a newly planned text each time the table doubles. One
   worker holding every segment at one cursor skips the per-row segment
   test, and a batch looks up parked aggregates only when the projection
   has some. In the full run that brought this, W5 one worker 0.87 (the previous full run 0.60;
   \`--only W5\` before these changes 0.67), with park 0.84 (0.52), 4
   partitions 0.91 (0.81); W6 p50 2.0× the LISTEN-then-SELECT floor (3.0×).
18. **The guard as one function call.** The regression guard of 14 was SQL
   written out in every statement (640 characters: the next key from the
   snapshot, the session setting, the look's call, the verdict's text), and
   PostgreSQL sets up every sub-select and expression of a plan when a
   statement starts, run or not. Schema version 7 makes it one call of a
   PL/pgSQL function (\`events_log_verdict\`), which returns at once in a
   session that looked less than a second ago when there is no cursor to
   compare. Server time per statement in a PL/pgSQL loop: 7.3-7.6 µs
   written out (11 with a cursor), 2.3-2.8 for the call (3.2-3.6), 0.8
   with no guard; pgbench running the one-event append: 50-53 µs written
   out, 43-47 with the call, 40 with no guard. From a postgres.js client
   (\`fsync\` off, so the statement's own cost shows) a one-event append took
   135-164 µs written out and 118-128 with the call. Back to back with
   \`--only\`, before and after: W1-1 0.86 and 0.90, W1-1/if 0.88 and 0.92,
   W2/if 0.90 and 0.92, W1-1/im 0.86 and 0.93: more than the server time
   alone explains, so part of that is this machine's noise.
19. **Where W6's time goes.** A consumer that keeps its checkpoint in the
   handler's transaction must BEGIN, lock its checkpoint and read before
   the handler starts: the W6 row that does only that, for one checkpoint
   row, is itself at about 1.45× the LISTEN-then-SELECT floor. The
   processor adds, per wake-up (p50, ms after the append's commit, from
   marks at each step): the NOTIFY arrives at 0.34, the batch starts at
   0.41, BEGIN leaves at 0.46 and is answered at 0.67, the statement leaves
   at 0.76 and its rows are decoded at 1.31, the handler starts at 1.40.
   The statement locks sixteen checkpoint rows and reads the share below
   the tip: 0.55 ms from sending it to its rows decoded. Opening the next batch's transaction before
   waiting for the NOTIFY took BEGIN's round trip off (1.00 ms against 1.26
   for the same statement in a hand loop), but leaves every idle processor
   \"idle in transaction\" on a pooled connection, which monitoring flags
   and \`idle_in_transaction_session_timeout\` ends: not done.
   Sending BEGIN and the statement together instead (a reserved
   connection, both queued before either is awaited) gained nothing: 1.32
   and 1.31 ms against 1.34 and 1.35 for \`sql.begin\` in two runs of a
   scratch harness (the floor 0.75 and 0.77), BEGIN answered 0.29 ms after
   the wake-up and the rows 0.58 ms after that. What costs is the
   statement run by a backend that sat idle between appends: one round
   trip of it, rolled back, took 0.34-0.38 ms back to back but 0.65 with
   5-25 ms of idle between (the floor's SELECT 0.22-0.25 and 0.41; sixteen
   rows locked and the events after them read, with nothing else, 0.19 and
   0.36). Leaving out any one of its parts (the row lock, the guard, the
   per-segment test, the table size) saved 0.04-0.12 ms cold; each keeps
   an invariant, so none is left out.
20. **W5 moves with the machine.** The run above put W5 one worker at 0.63.
   Four \`--only W5\` runs right after it, alternating the code before and
   after 18: one worker 0.84 and 0.81 before, 0.84 and 0.76 after (with
   park 0.85, 0.78 and 0.87, 0.77; 4 partitions 0.90, 0.81 and 0.92, 0.83).
   Back to back catch-ups of 300,000 events by the same code ran at 92k to
   168k events/s as the shared machine's load changed. Per batch of 1000
   (marks at each step, p50): BEGIN's round trip 0.2 ms, the lock-and-read
   statement 3.2 ms from sending it to its rows decoded, decoding 0.4, the
   checkpoint update with the COMMIT and its WAL flush 1.0. That
   statement's server time is 1.3-2.4 ms against 0.45-0.8 for the hand
   loop's read (EXPLAIN ANALYZE, timing off), yet from a client both take
   about 2.5 ms for 1000 rows: postgres.js parsing the rows takes most of
   it, and the server's extra work overlaps that. Dropping the per-row
   segment test, or moving the guard into the head row, changed the
   catch-up rate by less than the noise (in-process A/B, eight rounds).
   Reading the next page on a second connection while a batch is handled
   and committed (its checkpoint locked and checked before the page is
   used) left a hand-written loop where it was (98-101k events/s against
   85-104k, four runs each): what bounds catch-up is making, sending and
   parsing the rows, not the round trips between batches.
21. **W3 in turns.** Each W3 variant ran its 15 appends of a repetition in
   one go, so a few seconds of a neighbour's load landed on one variant:
   W3b/if read 0.80 in one full run and 1.24 in the one before. The
   variants now take turns in slices of three appends, ten per repetition,
   as W1's do (W3b/if 0.94, 1.04 and 1.05 in three \`--only W3b/if\` runs
   back to back).
22. **A slice untimed first.** The timed variants start with one slice
   each that is not counted. The first slice of the coalesced W1c-64 ran
   at 3,649 appends in half a second against 7,000-10,000 for the later
   ones (the JIT compiling its path, each connection preparing the shared
   statement), so its first repetition came out 15-20% below the others
   and moved the median. Variants on fresh tables still empty them before
   every slice, the untimed one included.
`;
