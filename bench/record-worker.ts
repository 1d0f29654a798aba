/**
 * A worker process of the recording benchmark (`record.ts`), forked with one JSON argument:
 *
 * - `{ role: "recorder", dir, file, topic }`: runs a hub and `myelin record`'s Recorder on `topic` into
 *   `file`; sends `ready`, then `recording` once subscribed; on `{ stop, sent }` waits until every sent
 *   message is recorded or counted as dropped/lost (or 3 s without progress), closes the file and sends
 *   `result` (messages, bytes, drops, ms from first receive to file closed);
 * - `{ role: "publisher", dir, topic, size, rateHz, durationMs }`: publishes 64 B strings or 1 MiB images
 *   for `durationMs`, flat out (`rateHz` 0) or paced at `rateHz`; sends `ready`, waits for `go`, then
 *   sends `result` (sent, ms);
 * - `{ role: "mcap", file, size, count, compression }`: writes `count` of the same encoded messages with
 *   `@mcap/core`'s McapWriter alone (zstd at the recorder's level, -1, or none; 4 MiB chunks), and with Myelin's file writer,
 *   and sends `result` with both rates.
 */
import { open } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import zstd from "@foxglove/wasm-zstd";
import { McapWriter } from "@mcap/core";
import { FileHandleWritable } from "@mcap/nodejs";
import { Hub } from "../src/hub/index.js";
import { sensor_msgs, std_msgs, type MessageType } from "../src/msgs/index.js";
import { createNode } from "../src/node/index.js";
import { shmStats } from "../src/transport/shm/shm-stats.js";
import { channelEncodingOf } from "../src/record/channel-encoding.js";
import { McapFileWriter, type Compression } from "../src/record/mcap-file-writer.js";
import { Recorder } from "../src/record/recorder.js";

type Role =
  | {
      role: "recorder";
      dir: string;
      file: string;
      topic: string;
      compression: Compression;
      writerThread?: boolean;
    }
  | { role: "publisher"; dir: string; topic: string; size: number; rateHz: number; durationMs: number }
  | { role: "mcap"; file: string; size: number; count: number; compression: Compression };

const send = (m: object): void => void process.send!(m);

function nextMessage<T>(type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type?: string }): void => {
      if (m.type !== type) return;
      process.off("message", on);
      resolve(m as T);
    };
    process.on("message", on);
  });
}

/** The benchmark's message of `size` bytes: a 64-char string, or a 1 MiB mono8 image. */
export function benchMessage(size: number, i: number): { type: MessageType<unknown>; msg: unknown } {
  if (size <= 1024) {
    return { type: std_msgs.String, msg: { data: `${i}`.padStart(size, "x") } };
  }
  // Sensor noise: random pixels, which zstd cannot shrink (the recorder stores such chunks as they are).
  const data = randomBytes(size);
  return {
    type: sensor_msgs.Image,
    msg: sensor_msgs.Image.create({
      header: { frame_id: "camera", stamp: { sec: 1_700_000_000, nanosec: i } },
      height: size / 1024,
      width: 1024,
      encoding: "mono8",
      step: 1024,
      data,
    }),
  };
}

/**
 * CPU time of this process's main thread (the receiving thread) in ms, from /proc (Linux; clock ticks
 * of 10 ms), or NaN elsewhere: what the recorder costs the thread that receives, whatever the load.
 */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

async function recorder(r: Extract<Role, { role: "recorder" }>): Promise<void> {
  await using _hub = await Hub.start({ runtimeDir: r.dir });
  const node = await createNode({ name: "recorder", runtimeDir: r.dir });
  const rec = new Recorder(node, {
    output: r.file,
    topics: [r.topic],
    compression: r.compression,
    writerThread: r.writerThread !== false,
  });
  let first = 0;
  rec.on("topic", () => send({ type: "recording" }));
  await rec.start();
  send({ type: "ready" });
  // A 1 ms probe notes when the first message arrived and when the count last changed.
  let last = 0;
  let lastChange = 0;
  let cpuStart = 0;
  let procCpuStart = 0;
  const probe = setInterval(() => {
    const t = rec.stats().topics[0];
    const seen = t === undefined ? 0 : t.messages + t.dropped + t.lost;
    if (seen !== last) {
      if (first === 0) {
        first = performance.now();
        cpuStart = mainThreadCpuMs();
        const c = process.cpuUsage();
        procCpuStart = (c.user + c.system) / 1000;
      }
      last = seen;
      lastChange = performance.now();
    }
  }, 1);
  const { sent } = await nextMessage<{ sent: number }>("stop");
  // The publisher is done: what the recorder still writes from here on is its backlog.
  const stopAt = performance.now();
  // Every sent message recorded or counted, or nothing new for 2 s (the publisher's last messages were
  // dropped for lack of credit: no later message shows their gap).
  while (last < sent && performance.now() - Math.max(lastChange, first) < 2000) {
    await new Promise((res) => setTimeout(res, 5));
  }
  clearInterval(probe);
  const recvCpuMs = mainThreadCpuMs() - cpuStart;
  const c = process.cpuUsage();
  const procCpuMs = (c.user + c.system) / 1000 - procCpuStart;
  const closeStart = performance.now();
  const s = await rec.stop();
  const closeMs = performance.now() - closeStart;
  const t = s.topics[0]!;
  await node.close();
  send({
    type: "result",
    messages: t.messages,
    bytes: t.bytes,
    dropped: t.dropped,
    lost: t.lost,
    missing: Math.max(0, sent - t.messages - t.dropped - t.lost),
    // Received: recorded, dropped by the recorder, or invalid (lost ones never arrived).
    recvCpuUsPerMsg: (recvCpuMs * 1000) / Math.max(1, t.messages + t.dropped + t.invalid),
    // Every other thread of the process (the recording thread above all; also the libuv pool that
    // writes, ZeroMQ's I/O thread and the garbage collector's helpers), per message received.
    otherCpuUsPerMsg: ((procCpuMs - recvCpuMs) * 1000) / Math.max(1, t.messages + t.dropped + t.invalid),
    // How long after the publisher's last message the recorder was still writing (its backlog).
    lagMs: Math.max(0, lastChange - stopAt),
    shm: shmStats().reader,
    ms: lastChange - first + closeMs,
    closeMs,
    fileBytes: statSync(r.file).size,
  });
}

async function publisher(p: Extract<Role, { role: "publisher" }>): Promise<void> {
  const node = await createNode({ name: "publisher", runtimeDir: p.dir });
  const { type } = benchMessage(p.size, 0);
  const pub = await node.createPublisher(p.topic, type, { validate: false });
  await pub.waitForSubscribers(1, 20000);
  // Pre-built messages: the publisher's own cost is the transport's, not message construction.
  const pool = Array.from({ length: 64 }, (_, i) => benchMessage(p.size, i).msg);
  send({ type: "ready" });
  await nextMessage("go");
  const start = performance.now();
  let sent = 0;
  let lastYield = start;
  for (;;) {
    const now = performance.now() - start;
    if (now >= p.durationMs) break;
    const due = p.rateHz > 0 ? Math.floor((now / 1000) * p.rateHz) : sent + 256;
    // At most ~5 ms of publishing between event-loop turns: a best-effort publish resolves at once,
    // and a loop that never yields would never read the credit the recorder returns.
    if (due <= sent || performance.now() - lastYield > 5) {
      await new Promise((res) => setImmediate(res));
      lastYield = performance.now();
      if (due <= sent) continue;
    }
    const until = Math.min(due, sent + 2048);
    while (sent < until) await pub.publish(pool[sent++ % pool.length]);
  }
  const ms = performance.now() - start;
  send({ type: "result", sent, ms, shm: shmStats().writer });
  await node.close();
}

/** Writes the same encoded messages with @mcap/core's McapWriter, then with Myelin's file writer. */
async function mcapAlone(m: Extract<Role, { role: "mcap" }>): Promise<void> {
  await zstd.isLoaded;
  const { type } = benchMessage(m.size, 0);
  const enc = channelEncodingOf(type);
  const encoded = Array.from({ length: 64 }, (_, i) => enc.encode(benchMessage(m.size, i).msg));
  const bytesPer = encoded[0]!.byteLength;

  const fh = await open(m.file, "w");
  const t0 = performance.now();
  const w = new McapWriter({
    writable: new FileHandleWritable(fh),
    chunkSize: 4 * 1024 * 1024,
    ...(m.compression === "zstd"
      ? {
          compressChunk: (data: Uint8Array) => ({
            compression: "zstd",
            compressedData: zstd.compress(data, -1),
          }),
        }
      : {}),
  });
  await w.start({ profile: "", library: "bench" });
  const schema = await w.registerSchema({
    name: enc.schemaName,
    encoding: enc.schemaEncoding,
    data: enc.schemaData,
  });
  const channel = await w.registerChannel({
    schemaId: schema,
    topic: "/bench",
    messageEncoding: enc.messageEncoding,
    metadata: new Map(),
  });
  for (let i = 0; i < m.count; i++) {
    const t = BigInt(i) * 1000n;
    await w.addMessage({
      channelId: channel,
      sequence: i,
      logTime: t,
      publishTime: t,
      data: encoded[i % 64]!,
    });
  }
  await w.end();
  await fh.close();
  const coreMs = performance.now() - t0;

  // Myelin's writer, with its writer thread and inline: the whole time until the file is closed, and
  // the caller's share (the time its thread spent in addMessage/flushChunk: what a recorder's
  // receiving thread pays per message).
  const own = async (thread: boolean): Promise<{ ms: number; callerMs: number }> => {
    const t1 = performance.now();
    const mw = await McapFileWriter.create(m.file, { compression: m.compression, thread });
    const ch = mw.addChannel(
      mw.addSchema(enc.schemaName, enc.schemaEncoding, enc.schemaData),
      "/bench",
      enc.messageEncoding,
    );
    let waited = 0;
    const l0 = performance.now();
    for (let i = 0; i < m.count; i++) {
      const t = BigInt(i) * 1000n;
      mw.addMessage(ch, i, t, t, encoded[i % 64]!);
      if (mw.queuedBytes > 512 * 1024 * 1024) {
        const w0 = performance.now();
        await mw.drain();
        waited += performance.now() - w0;
      }
    }
    const callerMs = performance.now() - l0 - waited;
    await mw.close();
    return { ms: performance.now() - t1, callerMs };
  };
  const inline = await own(false);
  const threaded = await own(true);
  const ownMs = inline.ms;

  // Encoding alone, as the recorder does it (large byte fields referenced, not copied).
  const msgs = Array.from({ length: 64 }, (_, i) => benchMessage(m.size, i).msg);
  const t2 = performance.now();
  let sink = 0;
  for (let i = 0; i < m.count; i++) sink += enc.encodeParts(msgs[i % 64]).length;
  const encodeMs = performance.now() - t2;
  send({
    type: "result",
    count: m.count,
    bytesPer,
    coreMs,
    ownMs,
    ownCallerMs: inline.callerMs,
    threadMs: threaded.ms,
    threadCallerMs: threaded.callerMs,
    encodeMs,
    sink,
  });
}

const role = JSON.parse(process.argv[2]!) as Role;
const main =
  role.role === "recorder" ? recorder(role) : role.role === "publisher" ? publisher(role) : mcapAlone(role);
main.then(
  () => process.exit(0),
  (err: unknown) => {
    send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  },
);
