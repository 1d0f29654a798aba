/** Helpers of the shared-memory tests with real processes. */
import { strict as assert } from "node:assert";
import { readdirSync } from "node:fs";
import { spawnFixture, type Line, type Proc } from "./helpers.js";

export const MiB = 1024 * 1024;

/** Pools in /dev/shm created by process `pid`. */
export function poolsOf(pid: number | undefined): string[] {
  return readdirSync("/dev/shm").filter((n) => n.startsWith(`myelin-shm-${pid}-`));
}

export interface StatsLine {
  available: boolean;
  detail: string;
  writer: { slotsInUse: number; descriptorsSent: number } | null;
  reader: { descriptorsReceived: number };
}

/** The last stats line a process printed. */
export function lastStats(p: Proc): StatsLine {
  const s = [...p.lines].reverse().find((l) => l.event === "stats");
  assert.ok(s !== undefined, "no stats line yet");
  return s as unknown as StatsLine;
}

/** Resolves with the first stats line after line `from` that satisfies `pred`. */
export async function statsAfter(
  p: Proc,
  from: number,
  pred: (s: StatsLine) => boolean,
  what: string,
): Promise<StatsLine> {
  const l = await p.waitFor(
    (l) => l.event === "stats" && p.lines.indexOf(l) >= from && pred(l as unknown as StatsLine),
    15000,
    what,
  );
  return l as unknown as StatsLine;
}

/**
 * Every message after the first that came by descriptor came by descriptor too, and at most
 * `window` came over the socket before: those the publisher sent before the subscriber's ACCEPT of
 * the pool reached it (the credit window bounds them, since credit follows the ACCEPT on the link).
 */
export function assertShmAfterAccept(msgs: Line[], window: number): void {
  const first = msgs.findIndex((m) => (m.descriptors as number) > 0);
  assert.ok(first >= 0, "no message came by descriptor");
  assert.ok(first <= window, `${first} messages came over the socket before the first descriptor`);
  for (let i = first + 1; i < msgs.length; i++) {
    assert.equal(
      msgs[i]!.descriptors,
      (msgs[i - 1]!.descriptors as number) + 1,
      `message ${i} came over the socket`,
    );
  }
}

export async function start(
  env: Record<string, string>,
  pubArgs: object,
  subArgs: object,
): Promise<{ pub: Proc; sub: Proc }> {
  const sub = spawnFixture("shm-proc", { role: "sub", topic: "/frames", ...subArgs }, env);
  await sub.waitFor((l) => l.event === "ready", 20000, "subscriber ready");
  const pub = spawnFixture("shm-proc", { role: "pub", topic: "/frames", ...pubArgs }, env);
  return { pub, sub };
}
