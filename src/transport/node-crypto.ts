/**
 * Node's `crypto` module, loaded on first use, and random bytes that do not need it. Loading
 * `node:crypto` initialises OpenSSL, about 2.3 MiB of a process; an idle node over `ipc://` needs
 * no cipher, hash or key, only random ids and secrets, which the kernel's generator gives as well
 * (`/dev/urandom`, the source OpenSSL seeds from). CURVE keys, HMACs and hashes call
 * {@link nodeCrypto} where they are used.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

let lib: typeof import("node:crypto") | undefined;

/** `node:crypto`, required on the first call. */
export function nodeCrypto(): typeof import("node:crypto") {
  return (lib ??= require("node:crypto") as typeof import("node:crypto"));
}

/** The kernel's random generator, opened on first use; null where there is none (Windows). */
let urandom: number | null | undefined;

/**
 * `size` cryptographically strong random bytes: from `/dev/urandom`, or from `node:crypto` where
 * the system has no such device.
 */
export function randomBytes(size: number): Buffer {
  if (urandom === undefined) {
    try {
      urandom = openSync("/dev/urandom", "r");
    } catch {
      urandom = null;
    }
  }
  if (urandom === null) return nodeCrypto().randomBytes(size);
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const n = readSync(urandom, buf, off, size - off, null);
    if (n <= 0) {
      closeSync(urandom);
      urandom = null;
      return nodeCrypto().randomBytes(size);
    }
    off += n;
  }
  return buf;
}
