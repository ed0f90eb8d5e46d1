/**
 * Says which server `DATABASE_URL` names, without its password, and turns a
 * failure to reach it into a message that says where the URL came from and
 * how to do without it.
 *
 * @module
 */

import process from "node:process";
import postgres from "postgres";

/** `url` with its password hidden, and the hosts and ports it names. */
export function describeDatabaseUrl(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)(?:([^@/?#]*)@)?([^/?#]*)(.*)$/is.exec(url.trim());
  if (!match) return "(not a postgres:// URL)";
  const [, scheme, userinfo, hostPart, rest] = match;
  const user = userinfo === undefined
    ? ""
    : `${userinfo.split(":")[0]}${userinfo.includes(":") ? ":***" : ""}@`;
  const tail = rest.replace(/([?&]password=)[^&#]*/gi, "$1***");
  const query = new URLSearchParams(rest.split("?")[1]?.split("#")[0] ?? "");
  const where = (hostPart || query.get("host") || process.env.PGHOST || "localhost")
    .split(",")
    .map((address) => {
      const [, host, port] = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(address) ?? [, address];
      return `host ${decodeURIComponent(host || "localhost")}, port ${
        port || query.get("port") || process.env.PGPORT || "5432"
      }`;
    })
    .join("; ");
  return `${scheme}${user}${hostPart}${tail} (${where})`;
}

/** The message for a `DATABASE_URL` that could not be used. */
export function databaseUrlMessage(url: string, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  return `DATABASE_URL is set, so it was used instead of a throwaway PostgreSQL, and it failed: ${reason}\n` +
    `  DATABASE_URL=${describeDatabaseUrl(url)}\n` +
    "Start that server or correct DATABASE_URL; or unset it (`unset DATABASE_URL`) " +
    "to have a throwaway PostgreSQL started for you.";
}

/**
 * Connects to `url` once: resolves when the server answers, otherwise
 * throws an error whose message is {@linkcode databaseUrlMessage}.
 */
export async function checkDatabaseUrl(url: string): Promise<void> {
  let sql: postgres.Sql | undefined;
  try {
    sql = postgres(url, { max: 1, connect_timeout: 10, onnotice: () => {} });
    await sql`select 1`;
  } catch (error) {
    throw new Error(databaseUrlMessage(url, error), { cause: error });
  } finally {
    await sql?.end({ timeout: 1 }).catch(() => {});
  }
}
