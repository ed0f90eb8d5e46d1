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
   the check stays, and a young table can still get that plan until
   autovacuum analyzes it.
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
   so 100 aggregates take 100 statements; pipelining them inside
   \`sql.begin\` (\`Promise.all\`) makes them one round trip, but each still
   pays a statement's executor overhead. One statement for all 1000 events
   (unnest or COPY) stays ahead; closing that gap needs a multi-aggregate
   append (one statement for several aggregates), which the API does not
   have yet.
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
9. **Still short of 0.9** (W1, W2, W3b with wake-ups on): the rest is the
   post-commit NOTIFY (an extra small transaction every 2 ms per client,
   see the \`notifyChannel: false\` rows, which reach 0.89–0.96), about
   10 µs of client CPU per append left in postgres.js handling a statement
   of 18 parameters instead of 7, and for W3b one statement per aggregate.
   Putting the NOTIFY back into the statement when a client has no other
   append running would save the 1-client cost, but several processes
   appending one at a time would then serialize their commits again: not
   done.
`;
