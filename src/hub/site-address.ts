/**
 * Where the nodes of this host are reached from other hosts of a site: the advertised address and
 * the range of tcp ports their data endpoints bind in.
 */
import { networkInterfaces } from "node:os";
import { MyelinError } from "../errors.js";

/**
 * The address to advertise: `explicit`, else `$MYELIN_ADVERTISE_ADDRESS`, else the host of a tcp
 * `listen` endpoint bound to one address, else the first non-internal IPv4 address; undefined
 * when there is none.
 */
export function advertiseAddress(
  explicit: string | undefined,
  listen: readonly string[],
): string | undefined {
  if (explicit !== undefined && explicit !== "") return explicit;
  const env = process.env["MYELIN_ADVERTISE_ADDRESS"];
  if (env !== undefined && env !== "") return env;
  for (const ep of listen) {
    const m = /^tcp:\/\/([^:/]+):\d+$/.exec(ep);
    if (m !== null && m[1] !== "0.0.0.0" && m[1] !== "*" && m[1] !== "127.0.0.1" && m[1] !== "localhost")
      return m[1];
  }
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

/**
 * Checks an inclusive port range `[low, high]` (`[0, 0]`: any free port).
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the range and the fix
 */
export function checkPortRange(r: readonly number[]): void {
  const [lo, hi] = r;
  if (
    r.length !== 2 ||
    !Number.isInteger(lo) ||
    !Number.isInteger(hi) ||
    lo! < 0 ||
    hi! > 65535 ||
    lo! > hi! ||
    (lo === 0 && hi !== 0)
  ) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `data port range ${JSON.stringify(r)} is not valid: give LOW-HIGH with 1 <= LOW <= HIGH <= 65535 (e.g. 7500-7599), or 0-0 for any free port`,
    );
  }
}

/**
 * Parses `LOW-HIGH` (e.g. `7500-7599`) or `0` into a port range.
 * @throws MyelinError ERR_INVALID_ARGUMENT when malformed
 */
export function parsePortRange(text: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  const r: [number, number] = m === null ? [-1, -1] : [Number(m[1]), Number(m[2] ?? m[1])];
  checkPortRange(r);
  return r;
}
