/**
 * Reading a worker's partition from its command line and environment.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { ValidationError } from "../es/errors.ts";
import { editDistance } from "../es/options.ts";
import type { GroupOptions } from "../projection/mod.ts";

/**
 * Which partition this process runs: the two processor settings that
 * static partitioning needs.
 *
 * @example Spread it into a processor configuration
 * ```ts
 * import type { PartitionConfig } from "@getpup/pupsourcing/runner";
 *
 * const partition: PartitionConfig = { partitionKey: 2, totalPartitions: 4 };
 * const config = { batchSize: 500, ...partition };
 * ```
 */
export interface PartitionConfig {
  /** This process's partition, in `0..totalPartitions-1`. */
  partitionKey: number;
  /** How many partitions (processes) share the projection. */
  totalPartitions: number;
}

const FLAGS = {
  partitionKey: { flag: "partition-key", env: "PARTITION_KEY" },
  totalPartitions: { flag: "total-partitions", env: "TOTAL_PARTITIONS" },
} as const;

/**
 * Reads this process's partition from `--partition-key` and
 * `--total-partitions` (as `--flag 2` or `--flag=2`), or else from the
 * environment variables `PARTITION_KEY` and `TOTAL_PARTITIONS`. A flag wins
 * over its variable; without either, the key is 0 and the total 1 (one
 * process runs everything).
 *
 * Other arguments are left alone, so an application can parse its own
 * flags from the same command line: this function only looks at its two
 * flags. To catch typos that would otherwise silently run partition 0, an
 * unknown flag whose name contains `partition`, or is a few letters away
 * from one of the two (such as `--partitions-key` or `--partiton-key`), is
 * refused; and a total above 1 needs an explicit key, since every process
 * that forgot it would run partition 0 while another partition's segments
 * wait for ever.
 *
 * @param args The command-line arguments; default `process.argv.slice(2)`.
 * @param env The environment; default `process.env`.
 * @throws {ValidationError} when a value is not a decimal integer (or is
 * empty), the key is negative, the total is below 1, the key is not below
 * the total, a flag is given twice or without a value, or a flag looks
 * like a misspelling of one of the two.
 *
 * @example Parse explicit arguments
 * ```ts
 * import { partitionConfigFromArgs } from "@getpup/pupsourcing/runner";
 *
 * const partition = partitionConfigFromArgs(["--partition-key", "1", "--total-partitions=4"], {});
 * console.log(partition); // { partitionKey: 1, totalPartitions: 4 }
 * ```
 *
 * @example One process per partition
 * ```ts ignore
 * // PARTITION_KEY=2 TOTAL_PARTITIONS=4 deno run -A worker.ts
 * // or: deno run -A worker.ts --partition-key 2 --total-partitions 4
 * const processor = new ProjectionProcessor(sql, store, { ...partitionConfigFromArgs() });
 * await processor.run(projection, { signal });
 * ```
 */
export function partitionConfigFromArgs(
  args: readonly string[] = process.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): PartitionConfig {
  const group = readGroup(args, env);
  if (group !== undefined) {
    throw new ValidationError(
      group.source,
      "no group mode here: this worker reads a static partition (use workerConfigFromArgs " +
        "to accept --group)",
      group.source === "--group" ? "--group" : JSON.stringify(env[GROUP_ENV]),
    );
  }
  return readPartition(args, env);
}

/** {@linkcode partitionConfigFromArgs} without the refusal of group mode. */
function readPartition(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): PartitionConfig {
  const { tokens } = parseArgs({
    args: [...args],
    // Not strict: flags of the application itself are no concern here.
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: {
      [FLAGS.partitionKey.flag]: { type: "string" },
      [FLAGS.totalPartitions.flag]: { type: "string" },
    },
  });
  const given = new Map<string, string>();
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const ours = token.name === FLAGS.partitionKey.flag ||
      token.name === FLAGS.totalPartitions.flag;
    if (!ours) {
      if (looksLikeOurs(token.name)) {
        throw new ValidationError(
          token.rawName,
          "--partition-key or --total-partitions (or a flag without 'partition' in its name)",
          JSON.stringify(token.rawName),
        );
      }
      continue;
    }
    if (token.value === undefined) {
      throw new ValidationError(
        token.rawName,
        `a value (${token.rawName} 2 or ${token.rawName}=2)`,
        "none",
      );
    }
    if (given.has(token.name)) {
      throw new ValidationError(
        token.rawName,
        "the flag once",
        `it twice (${JSON.stringify(given.get(token.name))} and ${JSON.stringify(token.value)})`,
      );
    }
    given.set(token.name, token.value);
  }
  const read = (which: keyof typeof FLAGS, min: number, fallback: number) => {
    const { flag, env: name } = FLAGS[which];
    if (given.has(flag)) {
      return { value: integer(`--${flag}`, given.get(flag)!, min), source: `--${flag}` };
    }
    const value = env[name];
    if (value !== undefined) return { value: integer(name, value, min), source: name };
    return { value: fallback, source: "the default" };
  };
  const key = read("partitionKey", 0, 0);
  const total = read("totalPartitions", 1, 1);
  const partitionKey = key.value;
  const totalPartitions = total.value;
  if (totalPartitions > 1 && key.source === "the default") {
    throw new ValidationError(
      "--partition-key",
      `this process's partition in 0..${totalPartitions - 1} (--partition-key or PARTITION_KEY), ` +
        `since ${total.source} says ${totalPartitions} partitions`,
      "none",
    );
  }
  if (partitionKey >= totalPartitions) {
    throw new ValidationError(
      key.source,
      `a partition key below the total partitions (${totalPartitions}, from ${total.source}), ` +
        `so in 0..${totalPartitions - 1}`,
      String(partitionKey),
    );
  }
  return { partitionKey, totalPartitions };
}

/** Whether an unknown flag is probably a misspelling of one of ours. */
function looksLikeOurs(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.includes("partition") ||
    Object.values(FLAGS).some(({ flag }) => editDistance(lower, flag) <= 3);
}

function integer(field: string, text: string, min: number): number {
  const trimmed = text.trim();
  const value = /^[0-9]+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ValidationError(
      field,
      min === 0 ? "an integer >= 0" : `an integer >= ${min}`,
      JSON.stringify(text),
    );
  }
  return value;
}

/**
 * Group mode, as {@linkcode workerConfigFromArgs} returns it: spread it
 * into a processor configuration.
 *
 * @example
 * ```ts
 * import type { GroupConfig } from "@getpup/pupsourcing/runner";
 *
 * const worker: GroupConfig = { group: { memberId: "pod-7f9c" } };
 * ```
 */
export interface GroupConfig {
  /** The group settings; `memberId` when one was given. */
  group: GroupOptions;
}

const GROUP_FLAG = "group";
const MEMBER_FLAG = "member-id";
const GROUP_ENV = "PUPSOURCING_GROUP";
const MEMBER_ENV = "PUPSOURCING_MEMBER_ID";

/**
 * Reads how this process runs its projection: in group mode with
 * `--group` (or `PUPSOURCING_GROUP=1`), with an optional `--member-id`
 * (or `PUPSOURCING_MEMBER_ID`; default a random UUID); otherwise the
 * static partition of {@linkcode partitionConfigFromArgs}. Identical
 * replicas (a Kubernetes Deployment, an autoscaler) all run with
 * `PUPSOURCING_GROUP=1` and no partition settings.
 *
 * @param args The command-line arguments; default `process.argv.slice(2)`.
 * @param env The environment; default `process.env`.
 * @throws {ValidationError} on group mode together with partition settings
 * (a projection runs in one mode), a member id without group mode, a
 * `PUPSOURCING_GROUP` other than `1`, `true`, `0`, `false`, a flag given
 * twice or a likely misspelling (`--groups`, `--member_id`), and
 * everything {@linkcode partitionConfigFromArgs} refuses.
 *
 * @example
 * ```ts
 * import { workerConfigFromArgs } from "@getpup/pupsourcing/runner";
 *
 * console.log(workerConfigFromArgs(["--group", "--member-id", "pod-a"], {}));
 * // { group: { memberId: "pod-a" } }
 * console.log(workerConfigFromArgs([], { PUPSOURCING_GROUP: "1" })); // { group: {} }
 * console.log(workerConfigFromArgs(["--partition-key=1", "--total-partitions=2"], {}));
 * // { partitionKey: 1, totalPartitions: 2 }
 * ```
 */
export function workerConfigFromArgs(
  args: readonly string[] = process.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): PartitionConfig | GroupConfig {
  const group = readGroup(args, env);
  if (group === undefined) {
    if (memberGiven(args, env)) {
      throw new ValidationError(
        `--${MEMBER_FLAG}`,
        `group mode with it (--${GROUP_FLAG} or ${GROUP_ENV}=1): only group members have ids`,
        "no group mode",
      );
    }
    return readPartition(args, env);
  }
  for (const { flag, env: name } of Object.values(FLAGS)) {
    const given = args.some((arg) => arg === `--${flag}` || arg.startsWith(`--${flag}=`));
    if (given || env[name] !== undefined) {
      throw new ValidationError(
        given ? `--${flag}` : name,
        `no partition settings with group mode (${group.source}): group members are given ` +
          `segments through leases; run a projection in one mode`,
        given ? `--${flag}` : JSON.stringify(env[name]),
      );
    }
  }
  return group.memberId === undefined ? { group: {} } : { group: { memberId: group.memberId } };
}

/** Group mode and member id from the flags or the environment; `undefined` when off. */
function readGroup(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): { source: string; memberId: string | undefined } | undefined {
  const { tokens } = parseArgs({
    args: [...args],
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: { [GROUP_FLAG]: { type: "boolean" }, [MEMBER_FLAG]: { type: "string" } },
  });
  const seen = new Map<string, string | undefined>();
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    if (token.name !== GROUP_FLAG && token.name !== MEMBER_FLAG) {
      const lower = token.name.toLowerCase();
      if (
        lower.includes("group") || lower.includes("member") ||
        editDistance(lower, MEMBER_FLAG) <= 2
      ) {
        throw new ValidationError(
          token.rawName,
          `--${GROUP_FLAG} or --${MEMBER_FLAG}`,
          JSON.stringify(token.rawName),
        );
      }
      continue;
    }
    if (seen.has(token.name)) {
      throw new ValidationError(token.rawName, "the flag once", "it twice");
    }
    if (token.name === GROUP_FLAG && token.value !== undefined) {
      throw new ValidationError(token.rawName, `--${GROUP_FLAG} without a value`, token.value);
    }
    if (token.name === MEMBER_FLAG && (token.value === undefined || token.value === "")) {
      throw new ValidationError(token.rawName, `a member id (${token.rawName} pod-a)`, "none");
    }
    seen.set(token.name, token.value);
  }
  const memberId = seen.get(MEMBER_FLAG) ?? env[MEMBER_ENV];
  if (seen.has(GROUP_FLAG)) return { source: `--${GROUP_FLAG}`, memberId };
  const value = env[GROUP_ENV];
  if (value === undefined) return undefined;
  const on = ["1", "true"].includes(value.trim().toLowerCase());
  if (!on && !["0", "false"].includes(value.trim().toLowerCase())) {
    throw new ValidationError(GROUP_ENV, "1, true, 0 or false", JSON.stringify(value));
  }
  return on ? { source: GROUP_ENV, memberId } : undefined;
}

/** Whether a member id was given, by flag or environment. */
function memberGiven(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  return env[MEMBER_ENV] !== undefined ||
    args.some((arg) => arg === `--${MEMBER_FLAG}` || arg.startsWith(`--${MEMBER_FLAG}=`));
}
