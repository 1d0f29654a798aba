/**
 * Bounded memory against a hostile peer: a raw ZeroMQ peer subscribes to a publisher, then keeps
 * granting credit without ever reading its socket. Before the per-peer bound, the publisher's RSS
 * grew by 1 GiB in seconds (the data socket had no send high-water mark). Now the publisher drops
 * that peer once it is `maxPeerBytes` (128 MiB) behind what it proved it read, counts it, and
 * its RSS stays bounded while 1 GiB is published.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { unixTransport } from "../src/transport/unix/unix-transport.js";
import { zmqTransport } from "../src/transport/zmq/zmq-transport.js";
import { GREETING } from "../src/transport/unix/unix-framing.js";
import { SEND_BUFFER_BYTES } from "../src/transport/unix/send-buffer.js";
import { spawnFixture, tempRuntime, until } from "./helpers.js";

const MiB = 1024 * 1024;

interface Flood {
  sent: number;
  base: number;
  peak: number;
  stats: { peersDropped: number; remoteSubscribers: number };
  hostileAlive: boolean;
}

/** Runs a publisher of `totalBytes` of fresh 64 KiB blobs against a peer that never reads. */
async function flood(t: TestContext, totalBytes: number, maxPeerBytes?: number): Promise<Flood> {
  using rt = tempRuntime();
  // The hostile peer is a raw ZeroMQ socket: this host's ipc:// carrier is ZeroMQ here.
  await using hub = await Hub.start({
    runtimeDir: rt.dir,
    transports: { ipc: zmqTransport, tcp: zmqTransport },
  });
  const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_HUB: "", MYELIN_IPC_TRANSPORT: "zeromq" };
  const pub = spawnFixture(
    "perm-proc",
    { role: "greedy-pub", topic: "/flood", payloadBytes: 64 * 1024, totalBytes, maxPeerBytes },
    { ...env, NODE_OPTIONS: "--expose-gc" },
  );
  t.after(() => pub.kill("SIGKILL"));
  const ready = await pub.waitFor((l) => l.event === "ready", 20000, "the publisher");
  await until(() => hub.graph().nodes.some((n) => n.id === ready["id"]), 10000, "the publisher in the graph");
  const endpoint = hub.graph().nodes.find((n) => n.id === ready["id"])!.endpoint;
  const hostile = spawnFixture(
    "perm-proc",
    { role: "hostile", endpoint, topic: "/flood", type: "myelin_test/Blob" },
    env,
  );
  t.after(() => hostile.kill("SIGKILL"));
  await hostile.waitFor((l) => l.event === "ready", 20000, "the hostile peer");

  const first = await pub.waitFor((l) => l.event === "stats", 20000, "the publisher's first stats");
  const done = await pub.waitFor((l) => l.event === "done", 50000, `${totalBytes / MiB} MiB published`);
  const samples = pub.lines.filter((l) => l.event === "stats" || l.event === "done");
  const r: Flood = {
    sent: done["sent"] as number,
    base: first["rss"] as number,
    peak: Math.max(...samples.map((l) => l["rss"] as number)),
    stats: done["stats"] as Flood["stats"],
    hostileAlive: !hostile.exited,
  };
  t.diagnostic(
    `maxPeerBytes ${maxPeerBytes === undefined ? "default" : `${maxPeerBytes / MiB} MiB`}: sent ${r.sent / MiB} MiB; RSS ${Math.round(r.base / MiB)} MiB at start, peak ${Math.round(r.peak / MiB)} MiB (+${Math.round((r.peak - r.base) / MiB)} MiB); peers dropped ${r.stats.peersDropped}`,
  );
  return r;
}

test("a peer that grants credit but never reads is dropped and counted; the publisher's RSS stays bounded while 1 GiB is pushed", async (t) => {
  const r = await flood(t, 1024 * MiB);
  assert.ok(r.sent >= 1024 * MiB);
  assert.equal(r.stats.peersDropped, 1, "the hostile peer was not dropped");
  assert.equal(r.stats.remoteSubscribers, 0);
  assert.ok(r.peak - r.base < 200 * MiB, `the publisher grew by ${Math.round((r.peak - r.base) / MiB)} MiB`);
  // The hostile peer is still running (it was cut off, not crashed).
  assert.equal(r.hostileAlive, true);
});

test("control: with the bound raised past what is pushed, the same peer grows the publisher (the measure can fail)", async (t) => {
  const r = await flood(t, 512 * MiB, 8 * 1024 * MiB);
  assert.equal(r.stats.peersDropped, 0);
  assert.ok(
    r.peak - r.base > 200 * MiB,
    `the publisher grew by only ${Math.round((r.peak - r.base) / MiB)} MiB`,
  );
});

test("the Unix-socket carrier closes a peer that does not read once maxPeerBytes are queued for it", async () => {
  using rt = tempRuntime();
  const path = join(rt.dir, "l.sock");
  const listener = await unixTransport.listen(`ipc://${path}`, { maxMessageBytes: MiB, maxPeerBytes: MiB });
  try {
    // A raw client: the greeting, one message (so the listener knows the peer), then never a read.
    const sock = createConnection(path);
    sock.pause();
    const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
    const greeting = GREETING;
    const msg = Buffer.alloc(4 + 2 + 4 + 1);
    msg.writeUInt32BE(2 + 4 + 1, 0);
    msg.writeUInt16BE(1, 4);
    msg.writeUInt32BE(1, 6);
    sock.write(Buffer.concat([greeting, msg]));
    const it = listener[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done, false);
    const peer = first.value.peer;
    // The kernel holds up to the socket's send buffer (the carrier asks for SEND_BUFFER_BYTES,
    // Linux doubles it) before anything queues in the process: send that much and 8 MiB more to a
    // peer bounded at 1 MiB. Its connection is closed and what was queued freed — read now, the
    // peer gets the end of the stream after far less than was sent.
    const inKernel = 2 * SEND_BUFFER_BYTES;
    const pieces = (inKernel + 8 * MiB) / (64 * 1024);
    for (let i = 0; i < pieces; i++) listener.send(peer, [Buffer.alloc(64 * 1024, i)]);
    let received = 0;
    sock.on("data", (d: Buffer) => (received += d.length));
    sock.on("error", () => {});
    sock.resume();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the peer was not disconnected within 5 s")), 5000);
      }),
    ]);
    clearTimeout(timer);
    assert.ok(
      received < inKernel + 2 * MiB,
      `the peer received ${received} bytes of the ${pieces * 64 * 1024} sent (kernel buffer ${inKernel})`,
    );
  } finally {
    await listener.close(0);
  }
});
