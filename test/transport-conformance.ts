/**
 * The conformance suite of the Transport interface (src/transport/transport.ts): what both
 * planes rely on, checked the same way for every carrier. `transport.test.ts` runs it once per
 * transport and endpoint scheme; a new transport joins with one line there.
 *
 * Cases: connection state, ordering both ways (multi-frame, exact bytes), backpressure with
 * bounded memory (a receiver that does not read stalls the sender within a bounded number of
 * messages, and then gets them all in order), reconnect to a listener that comes back, peer
 * death (a listener process killed with SIGKILL, a connection that vanishes), garbage bytes on
 * the listening address, the size limit, and close with pending data (linger).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect as netConnect } from "node:net";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import type { Connection, Frames, Incoming, Listener, Transport } from "../src/transport/transport.js";

/** How to run the suite against one transport and scheme. */
export interface TransportUnderTest {
  /** Shown in the test names, e.g. `zeromq ipc`. */
  name: string;
  transport: Transport;
  /** A fresh endpoint to listen on (tcp: port 0 is fine). */
  endpoint(): string;
  /**
   * Bytes that are not the carrier's protocol, sent to a listening endpoint by a raw client;
   * undefined when the carrier has no raw form (in-process).
   */
  garbage?: (endpoint: string) => Promise<void>;
  /**
   * Runs an echo listener in another process on `endpoint` and resolves with its real endpoint
   * and its pid once it listens; undefined when the carrier does not cross processes.
   */
  echoProcess?: (endpoint: string) => Promise<{ endpoint: string; pid: number; exited: Promise<void> }>;
}

const OPTS = { maxMessageBytes: 1024 * 1024 };
const WAIT_MS = 10000;

/** Rejects with `what` when `p` does not settle within `ms`. */
async function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collects what an async iterable yields, and waits for counts. */
class Collector<T> {
  readonly items: T[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];
  readonly done: Promise<void>;

  constructor(source: AsyncIterable<T>) {
    this.done = (async () => {
      for await (const x of source) {
        this.items.push(x);
        this.#waiters = this.#waiters.filter((w) => {
          if (this.items.length < w.n) return true;
          w.resolve();
          return false;
        });
      }
    })();
  }

  /** Resolves once at least `n` items came. */
  count(n: number, what: string): Promise<void> {
    if (this.items.length >= n) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => this.#waiters.push({ n, resolve })),
      `${what} (${this.items.length} of ${n} so far)`,
    );
  }
}

function event(conn: Connection, name: "up" | "down", what: string): Promise<void> {
  return within(new Promise<void>((resolve) => conn.on(name, () => resolve())), what);
}

function message(i: number, frames = 1 + (i % 3)): Frames {
  const out: Frames = [];
  for (let f = 0; f < frames; f++) {
    const b = Buffer.alloc(8 + ((i * 7 + f) % 200));
    b.writeUInt32BE(i, 0);
    b.writeUInt32BE(f, 4);
    b.fill(i & 0xff, 8);
    out.push(b);
  }
  return out;
}

function echo(l: Listener): Promise<void> {
  return (async () => {
    for await (const m of l) l.send(m.peer, m.frames);
  })();
}

/** Registers the suite for one transport. */
export function transportConformance(t: TransportUnderTest): void {
  const name = (s: string): string => `${t.name}: ${s}`;

  test(name("a connection comes up, and messages keep their order and bytes both ways"), async () => {
    const l = await t.transport.listen(t.endpoint(), OPTS);
    const conn = t.transport.connect(l.endpoint, OPTS);
    try {
      const atListener = new Collector<Incoming>(l);
      const atConn = new Collector<Frames>(conn);
      if (!conn.up) await event(conn, "up", "the connection to come up");
      assert.equal(conn.up, true);
      const n = 3000;
      for (let i = 0; i < n; i++) {
        if (!conn.send(message(i))) await conn.drained(WAIT_MS);
      }
      await atListener.count(n, "the listener to get every message");
      atListener.items.forEach((m, i) =>
        assert.deepEqual(m.frames, message(i), `message ${i} at the listener`),
      );
      const peer = atListener.items[0]!.peer;
      assert.ok(
        atListener.items.every((m) => m.peer.equals(peer)),
        "one connection, one peer id",
      );
      for (let i = 0; i < n; i++) l.send(peer, message(n - i, 2));
      await atConn.count(n, "the connection to get every reply");
      atConn.items.forEach((m, i) => assert.deepEqual(m, message(n - i, 2), `reply ${i}`));
    } finally {
      await conn.close(0);
      await l.close(0);
    }
  });

  test(
    name(
      "a receiver that does not read stalls the sender within bounded memory, then gets everything in order",
    ),
    async () => {
      const l = await t.transport.listen(t.endpoint(), OPTS);
      const conn = t.transport.connect(l.endpoint, { ...OPTS, highWaterMark: 1000 });
      try {
        const payload = randomBytes(1024);
        let sent = 0;
        let stalled = false;
        // Send while the transport says there is room; once it says no, give it a moment to drain:
        // with nobody reading, it must stop draining (the carrier's buffers are bounded).
        while (sent < 400_000) {
          const frame = Buffer.from(payload);
          frame.writeUInt32BE(sent, 0);
          sent++;
          if (conn.send([frame])) continue;
          await conn.drained(300);
          if (conn.queued > 0) {
            stalled = true;
            break;
          }
        }
        assert.ok(stalled, `the sender never stalled after ${sent} messages of 1 KiB with nobody reading`);
        assert.ok(sent < 200_000, `${sent} messages were buffered before the sender stalled`);
        const atListener = new Collector<Incoming>(l);
        await atListener.count(sent, "the listener to get everything once it reads");
        atListener.items.forEach((m, i) => assert.equal(m.frames[0]!.readUInt32BE(0), i, `message ${i}`));
        assert.equal(conn.queued, 0);
      } finally {
        await conn.close(0);
        await l.close(0);
      }
    },
  );

  test(
    name("a connection goes down when its listener closes, and comes back up when it returns"),
    async () => {
      const l1 = await t.transport.listen(t.endpoint(), OPTS);
      const endpoint = l1.endpoint;
      const conn = t.transport.connect(endpoint, OPTS);
      let l2: Listener | undefined;
      try {
        const atConn = new Collector<Frames>(conn);
        if (!conn.up) await event(conn, "up", "the connection to come up");
        const down = event(conn, "down", "the connection to go down after the listener closed");
        void echo(l1);
        await l1.close(0);
        await down;
        assert.equal(conn.up, false);
        const up = event(conn, "up", "the connection to come back up");
        l2 = await t.transport.listen(endpoint, OPTS);
        void echo(l2);
        await up;
        conn.send(message(7));
        await atConn.count(1, "an echo through the new listener");
        assert.deepEqual(atConn.items[0], message(7));
      } finally {
        await conn.close(0);
        await l1.close(0);
        await l2?.close(0);
      }
    },
  );

  if (t.echoProcess !== undefined) {
    const start = t.echoProcess;
    test(
      name("a listener process killed with SIGKILL: its connection goes down; others keep working"),
      async () => {
        const child = await start(t.endpoint());
        const conn = t.transport.connect(child.endpoint, OPTS);
        try {
          const atConn = new Collector<Frames>(conn);
          if (!conn.up) await event(conn, "up", "the connection to the child to come up");
          conn.send(message(1));
          await atConn.count(1, "an echo from the child");
          const down = event(conn, "down", "the connection to go down after SIGKILL");
          process.kill(child.pid, "SIGKILL");
          await within(child.exited, "the child to exit");
          await down;
          assert.equal(conn.up, false);
        } finally {
          await conn.close(0);
          try {
            process.kill(child.pid, "SIGKILL");
          } catch {
            // gone
          }
        }
      },
    );
  }

  test(name("a connection that vanishes does not disturb the listener's other connections"), async () => {
    const l = await t.transport.listen(t.endpoint(), OPTS);
    void echo(l);
    const a = t.transport.connect(l.endpoint, OPTS);
    const b = t.transport.connect(l.endpoint, OPTS);
    try {
      const atB = new Collector<Frames>(b);
      if (!a.up) await event(a, "up", "connection a to come up");
      for (let i = 0; i < 100; i++) a.send(message(i));
      await a.close(0); // abruptly, with messages possibly in flight
      for (let i = 0; i < 100; i++) b.send(message(i));
      await atB.count(100, "b's echoes");
      atB.items.forEach((m, i) => assert.deepEqual(m, message(i)));
    } finally {
      await a.close(0);
      await b.close(0);
      await l.close(0);
    }
  });

  if (t.garbage !== undefined) {
    const garbage = t.garbage;
    test(
      name("garbage bytes on the listening address do not stop the listener or mix with real peers"),
      async () => {
        const l = await t.transport.listen(t.endpoint(), OPTS);
        const atListener = new Collector<Incoming>(l);
        const conn = t.transport.connect(l.endpoint, OPTS);
        try {
          await garbage(l.endpoint);
          await garbage(l.endpoint);
          conn.send(message(3));
          const real = (): Incoming | undefined =>
            atListener.items.find((m) => m.frames.length === 1 && m.frames[0]!.equals(message(3)[0]!));
          while (real() === undefined) {
            await atListener.count(atListener.items.length + 1, "a real message after the garbage");
          }
          const got = real()!;
          // A carrier may hand garbage up as messages (ZeroMQ's NULL mechanism accepts ZMTP 1.0
          // framing without a handshake): then they come from their own peers, never from ours,
          // and the layers above parse and drop them.
          for (const m of atListener.items) {
            if (m !== got)
              assert.ok(!m.peer.equals(got.peer), "garbage arrived as if from the real connection");
          }
        } finally {
          await conn.close(0);
          await l.close(0);
        }
      },
    );
  }

  test(
    name("a message over the listener's size limit is not delivered; the listener keeps serving"),
    async () => {
      const l = await t.transport.listen(t.endpoint(), { maxMessageBytes: 64 * 1024 });
      const atListener = new Collector<Incoming>(l);
      const conn = t.transport.connect(l.endpoint, OPTS);
      const other = t.transport.connect(l.endpoint, OPTS);
      try {
        if (!conn.up) await event(conn, "up", "the connection to come up");
        conn.send([Buffer.alloc(128 * 1024, 1)]);
        other.send([Buffer.from("small")]);
        await atListener.count(1, "the other connection's message");
        // The sender of the oversized message may have been reset; it reconnects, and what it sends
        // then arrives.
        const deadline = Date.now() + WAIT_MS;
        while (!atListener.items.some((m) => m.frames[0]!.toString() === "after") && Date.now() < deadline) {
          conn.send([Buffer.from("after")]);
          await new Promise((r) => setImmediate(r));
          await conn.drained(WAIT_MS);
          await within(
            Promise.race([
              atListener.count(atListener.items.length + 1, "a message"),
              new Promise((r) => setTimeout(r, 100)),
            ]),
            "progress",
          ).catch(() => {});
        }
        assert.ok(
          atListener.items.some((m) => m.frames[0]!.toString() === "after"),
          "the connection works again after its oversized message",
        );
        assert.ok(
          atListener.items.every((m) => m.frames.reduce((n, f) => n + f.length, 0) <= 64 * 1024),
          "nothing over the limit was delivered",
        );
      } finally {
        await conn.close(0);
        await other.close(0);
        await l.close(0);
      }
    },
  );

  test(name("close with linger delivers what was queued, both ways"), async () => {
    const l = await t.transport.listen(t.endpoint(), OPTS);
    const atListener = new Collector<Incoming>(l);
    const conn = t.transport.connect(l.endpoint, OPTS);
    const n = 2000;
    try {
      for (let i = 0; i < n; i++) conn.send(message(i));
      await conn.close(5000);
      await atListener.count(n, "every message sent before close");
      atListener.items.forEach((m, i) => assert.deepEqual(m.frames, message(i)));
      // And from the listener: replies queued just before it closes.
      const conn2 = t.transport.connect(l.endpoint, OPTS);
      const atConn2 = new Collector<Frames>(conn2);
      conn2.send([Buffer.from("hello")]);
      await atListener.count(n + 1, "conn2's hello");
      const peer = atListener.items[n]!.peer;
      for (let i = 0; i < n; i++) l.send(peer, message(i));
      await l.close(5000);
      await atConn2.count(n, "every reply queued before the listener closed");
      atConn2.items.forEach((m, i) => assert.deepEqual(m, message(i)));
      await conn2.close(0);
    } finally {
      await conn.close(0);
      await l.close(0);
    }
  });
}

/** Sends random bytes and an HTTP request to a tcp or ipc endpoint with a raw socket, then closes it. */
export async function rawGarbage(endpoint: string): Promise<void> {
  const sock = endpoint.startsWith("tcp://")
    ? (() => {
        const m = /^tcp:\/\/(.+):(\d+)$/.exec(endpoint)!;
        return netConnect({ host: m[1]!, port: Number(m[2]) });
      })()
    : netConnect({ path: endpoint.slice("ipc://".length) });
  // The carrier may reset the connection as soon as it sees the first bad bytes (EPIPE here):
  // wait on plain events, not on `once` (which rejects on 'error').
  sock.on("error", () => {});
  const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  await new Promise<void>((resolve) => {
    sock.once("connect", () => resolve());
    sock.once("close", () => resolve());
  });
  sock.write(randomBytes(4096));
  sock.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  // Every byte written (or refused), then gone: the carrier may keep its side open, waiting.
  await new Promise<void>((resolve) => {
    sock.end(() => resolve());
    sock.once("close", () => resolve());
  });
  sock.destroy();
  await closed;
}

/**
 * Starts `node` running an echo listener of a transport (`exportName` of `src/transport/<file>`)
 * on `endpoint` in a child process; it prints its real endpoint when it listens.
 */
export async function echoProcess(
  file: string,
  exportName: string,
  endpoint: string,
): Promise<{ endpoint: string; pid: number; exited: Promise<void> }> {
  const mod = fileURLToPath(new URL(`../src/transport/${file}`, import.meta.url));
  const script = `
    const { ${exportName}: transport } = await import(${JSON.stringify(mod)});
    const l = await transport.listen(${JSON.stringify(endpoint)}, { maxMessageBytes: 1048576 });
    console.log(l.endpoint);
    for await (const m of l) l.send(m.peer, m.frames);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(child, "exit").then(() => {});
  const [line] = (await within(once(child.stdout, "data"), "the echo process to listen")) as [Buffer];
  return { endpoint: line.toString().trim(), pid: child.pid!, exited };
}
