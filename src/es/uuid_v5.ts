/**
 * Name-based UUIDs (UUIDv5, RFC 9562): the same namespace and name give
 * the same id, everywhere and every time. Idempotent commands derive their
 * events' ids this way from the command's id.
 *
 * SHA-1 comes from Web Crypto (`crypto.subtle`), which Deno, Node and Bun
 * all ship; it is asynchronous, which costs nothing in a command handler
 * that awaits the database anyway.
 *
 * @module
 */

import { ValidationError } from "./errors.ts";
import { show } from "./show.ts";
import { formatUuid, isUuid } from "./uuid.ts";

const encoder = new TextEncoder();

/**
 * The UUIDv5 of `name` in `namespace` (itself a UUID).
 *
 * @throws {ValidationError} when `namespace` is not a UUID.
 *
 * @example The RFC's example: "www.example.com" in the DNS namespace
 * ```ts
 * import { uuidv5 } from "@getpup/pupsourcing";
 *
 * const id = await uuidv5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com");
 * console.log(id); // "2ed6657d-e927-568b-95e1-2665a8aea6a2"
 * ```
 */
export async function uuidv5(namespace: string, name: string): Promise<string> {
  if (!isUuid(namespace)) {
    throw new ValidationError("namespace", "a UUID such as 6ba7b810-9dad-...", show(namespace));
  }
  const nameBytes = encoder.encode(name);
  const input = new Uint8Array(16 + nameBytes.length);
  const hex = namespace.replaceAll("-", "");
  for (let i = 0; i < 16; i++) input[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  input.set(nameBytes, 16);
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-1", input)).slice(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x50;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return formatUuid(bytes);
}
