/**
 * The Unix carrier bounds its greetings (ZeroMQ bounds its handshake the same way): a peer that
 * connects and never greets is closed by the listener, and a connection whose listener never answers
 * closes and retries, saying why — neither holds a socket for ever.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { unixTransport } from "../src/transport/unix/unix-transport.js";
import { GREETING } from "../src/transport/unix/unix-framing.js";
import { tempRuntime } from "./helpers.js";

const HANDSHAKE_MS = 300;

/** Resolves with `p`, or rejects naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

test("a listener closes a peer that does not finish its greeting in time, and keeps a greeted one", async (t) => {
  using rt = tempRuntime();
  const endpoint = `ipc://${join(rt.dir, "l.sock")}`;
  const path = join(rt.dir, "l.sock");
  const listener = await unixTransport.listen(endpoint, {
    maxMessageBytes: 1 << 20,
    handshakeTimeoutMs: HANDSHAKE_MS,
  });
  t.after(() => listener.close(0));
  const got: string[] = [];
  const arrived = new Set<() => void>();
  void listener.consume!((m) => {
    got.push(m.frames[0]!.toString());
    for (const f of arrived) f();
  });

  // A greeted peer first: it connects before the stalling one.
  const good = createConnection({ path });
  t.after(() => good.destroy());
  await once(good, "connect");
  good.write(GREETING);
  const answer = await within(once(good, "data"), 5000, "the listener's greeting");
  assert.ok((answer[0] as Buffer).subarray(0, GREETING.length).equals(GREETING));

  // A peer that sends part of the greeting and stops: closed once the handshake time is up.
  const stalled: Socket = createConnection({ path });
  t.after(() => stalled.destroy());
  await once(stalled, "connect");
  stalled.write(GREETING.subarray(0, 5));
  await within(once(stalled, "close"), 10 * HANDSHAKE_MS + 5000, "the stalled peer closed");

  // The greeted peer, older than the stalled one, is still served.
  const frame = Buffer.from("still here");
  const msg = Buffer.alloc(6 + 4 + frame.length);
  msg.writeUInt32BE(2 + 4 + frame.length, 0);
  msg.writeUInt16BE(1, 4);
  msg.writeUInt32BE(frame.length, 6);
  frame.copy(msg, 10);
  const delivered = new Promise<void>((resolve) => arrived.add(resolve));
  good.write(msg);
  await within(delivered, 5000, "a message from the greeted peer");
  assert.deepEqual(got, ["still here"]);
  assert.equal(good.destroyed, false);
});

test("a connection whose listener never answers the greeting goes down saying so, and tries again", async (t) => {
  using rt = tempRuntime();
  const path = join(rt.dir, "mute.sock");
  // Something on the path that accepts and never says a word.
  const accepted: Socket[] = [];
  const waiters = new Set<() => void>();
  const mute = createServer((s) => {
    accepted.push(s);
    s.on("error", () => {});
    for (const w of waiters) w();
  });
  await new Promise<void>((resolve) => mute.listen(path, resolve));
  t.after(() => {
    for (const s of accepted) s.destroy();
    mute.close();
  });
  const conn = unixTransport.connect(`ipc://${path}`, {
    maxMessageBytes: 1 << 20,
    handshakeTimeoutMs: HANDSHAKE_MS,
    reconnectMs: { min: 50, max: 100 },
  });
  t.after(() => conn.close(0));
  const down = new Promise<string>((resolve) => conn.on("down", resolve));
  const why = await within(down, 10 * HANDSHAKE_MS + 5000, "the connection going down");
  assert.match(why, /did not answer the greeting within 300 ms/);
  assert.equal(conn.up, false);
  // It tries again (a second connection reaches the listener).
  await within(
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (accepted.length >= 2) resolve();
      };
      waiters.add(check);
      check();
    }),
    5000,
    "a second attempt",
  );
});
