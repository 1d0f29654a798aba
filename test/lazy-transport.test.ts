/**
 * A carrier loaded on first use (src/transport/lazy-transport.ts), over the real Unix carrier: a
 * connection made before the carrier's module is loaded delivers what was sent meanwhile, in order,
 * and reports `up`; one closed before the load ends quietly; a carrier that cannot be loaded fails
 * `listen` with the fix and reports `down` on its connections.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { lazyTransport } from "../src/transport/lazy-transport.js";
import type { Connection, Frames, Incoming, Transport } from "../src/transport/transport.js";
import { tempRuntime } from "./helpers.js";

const OPTS = { maxMessageBytes: 1 << 20 };

/** A lazily loaded Unix carrier (a fresh one per call: nothing loaded yet). */
function lazyUnix(): Transport {
  return lazyTransport(
    "unix",
    async () => (await import("../src/transport/unix/unix-transport.js")).unixTransport,
  );
}

/** Resolves with `what` once `p` resolves, rejects after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)),
    ),
  ]).finally(() => clearTimeout(timer));
}

test("a connection made before the carrier is loaded delivers what was sent meanwhile, in order", async () => {
  using rt = tempRuntime();
  const endpoint = `ipc://${join(rt.dir, "l.sock")}`;
  const listener = await lazyUnix().listen(endpoint, OPTS);
  const lazy = lazyUnix();
  const conn: Connection = lazy.connect(endpoint, OPTS);
  const up = new Promise<void>((resolve) => conn.on("up", resolve));
  for (let i = 0; i < 3; i++) assert.equal(conn.send([Buffer.from(`m${i}`)]), true);
  assert.equal(conn.queued, 3);
  const got: string[] = [];
  const iter = listener[Symbol.asyncIterator]();
  let peer: Incoming["peer"] | undefined;
  while (got.length < 3) {
    const r = await within(iter.next(), 10_000, "the messages sent before the load");
    assert.equal(r.done, false);
    peer = r.value.peer;
    got.push(r.value.frames.map((f: Buffer) => f.toString()).join());
  }
  assert.deepEqual(got, ["m0", "m1", "m2"]);
  await within(up, 10_000, "up");
  assert.equal(conn.up, true);
  // Replies come back through the connection's iterator, which waited for the load.
  listener.send(peer!, [Buffer.from("reply")]);
  const back = await within(conn[Symbol.asyncIterator]().next(), 10_000, "the reply");
  assert.equal((back.value as Frames)[0]!.toString(), "reply");
  // Made after the load: the carrier's own connection.
  const direct = lazy.connect(endpoint, OPTS);
  assert.equal(direct.constructor.name === "PendingConnection", false);
  await direct.close(0);
  await conn.close(0);
  await listener.close(0);
});

test("a connection closed before its carrier is loaded ends without connecting", async () => {
  using rt = tempRuntime();
  const conn = lazyUnix().connect(`ipc://${join(rt.dir, "none.sock")}`, OPTS);
  conn.send([Buffer.from("dropped")]);
  await conn.close(0);
  assert.equal(conn.send([Buffer.from("after close")]), false);
  const r = await within(conn[Symbol.asyncIterator]().next(), 10_000, "the end of the iteration");
  assert.equal(r.done, true);
  assert.equal(conn.up, false);
});

test("a carrier that cannot be loaded fails listen with the fix and reports down on its connections", async () => {
  using rt = tempRuntime();
  const missing = "./no-such-carrier.js";
  const broken = lazyTransport("broken", () => import(missing) as Promise<Transport>);
  const endpoint = `ipc://${join(rt.dir, "b.sock")}`;
  const conn = broken.connect(endpoint, OPTS);
  const down = new Promise<string>((resolve) => conn.on("down", resolve));
  const why = await within(down, 10_000, "down");
  assert.match(why, /the broken carrier could not be loaded .*npm ci/);
  assert.equal(conn.send([Buffer.from("x")]), false);
  await assert.rejects(broken.listen(endpoint, OPTS), (err: Error & { code?: string }) => {
    assert.equal(err.code, "ERR_INVALID_ARGUMENT");
    assert.match(err.message, /the broken carrier could not be loaded/);
    return true;
  });
  await conn.close(0);
});
