/**
 * The Foxglove server with a client that never reads: `npm run build --silent && node
 * dist/bench/foxglove.js [--duration-ms 15000] [--json FILE]`.
 *
 * A camera (640×480 rgb8, 15 fps, 13.8 MB/s) and a small topic (100 Hz) publish through a
 * `myelin hub --foxglove-port 0` process. Three runs of `--duration-ms` each:
 *
 * 1. one client reading both topics: the small topic's latency (publish → received), frames/s;
 * 2. the same, plus a client that subscribes to the camera and never reads: the same figures, and
 *    what the hub holds for the stuck client and the hub's memory (RSS) growth;
 * 3. the peer: `@foxglove/ws-protocol`'s FoxgloveServer (no flow control of its own) sending the
 *    same frames to a client that never reads: its memory growth.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import wsProtocol from "@foxglove/ws-protocol";
import { WebSocket, WebSocketServer } from "ws";
import { FOXGLOVE_PROTOCOL, fetchFoxgloveStatus } from "../src/foxglove/index.js";
import { createNode, sensor_msgs, std_msgs, timeNow } from "../src/index.js";
import { graphServes } from "../src/node/index.js";

const { FoxgloveClient, FoxgloveServer } = wsProtocol;
const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));
const TOKEN = "bench-token-0123456789abcdef";
const W = 640;
const H = 480;
const FPS = 15;
const SMALL_HZ = 100;

const { values } = parseArgs({
  options: { "duration-ms": { type: "string" }, json: { type: "string" }, peer: { type: "boolean" } },
});
const durationMs = Number(values["duration-ms"] ?? 15000);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m === null ? NaN : Number(m[1]) / 1024;
}

function pct(sorted: number[], p: number): number {
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Connects by hand and subscribes to `channelId`, then never reads again. */
async function stuckClient(port: number, path: string, channelId: number): Promise<Socket> {
  const s = connect(port, "127.0.0.1");
  await new Promise((r) => s.once("connect", r));
  s.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: foxglove.websocket.v1\r\n\r\n`,
  );
  await new Promise<void>((resolve) => {
    let buf = "";
    const on = (d: Buffer): void => {
      buf += d.toString("latin1");
      if (!buf.includes("\r\n\r\n")) return;
      s.off("data", on);
      resolve();
    };
    s.on("data", on);
  });
  s.pause();
  const payload = Buffer.from(JSON.stringify({ op: "subscribe", subscriptions: [{ id: 1, channelId }] }));
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  s.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
  return s;
}

interface RunFigures {
  smallSent: number;
  smallReceived: number;
  smallLatencyP50Ms: number;
  smallLatencyP99Ms: number;
  framesPerSecond: number;
  hubRssStartMiB: number;
  hubRssEndMiB: number;
  stuckHeldBytes?: number;
  stuckDropped?: number;
}

async function myelinRun(withStuck: boolean): Promise<RunFigures> {
  const dir = mkdtempSync(join(tmpdir(), "myelin-bench-fg-"));
  const env = { ...process.env, MYELIN_RUNTIME_DIR: dir };
  const hub: ChildProcess = spawn(
    process.execPath,
    [CLI, "hub", "--no-store", "--foxglove-port", "0", "--foxglove-token", TOKEN],
    { env, stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      hub.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        const m = /Foxglove: open ws:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m !== null) resolve(Number(m[1]));
      });
      hub.once("exit", () => reject(new Error(`the hub exited: ${out}`)));
    });
    const node = await createNode({ name: "bench", runtimeDir: dir });
    const image = await node.createPublisher("/camera/image", sensor_msgs.Image, {
      qos: { reliability: "best-effort" },
    });
    const small = await node.createPublisher("/small", std_msgs.String);
    await node.waitForGraph((g) => graphServes(g, FOXGLOVE_PROTOCOL.status), 10000);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/?token=${TOKEN}`, ["foxglove.sdk.v1"]);
    const fc = new FoxgloveClient({ ws: ws as never });
    const channels = new Map<string, number>();
    const subs = new Map<number, string>();
    const latencies: number[] = [];
    let frames = 0;
    let smallReceived = 0;
    fc.on("advertise", (chs) => {
      for (const c of chs) {
        channels.set(c.topic, c.id);
        if (c.topic === "/camera/image" || c.topic === "/small") subs.set(fc.subscribe(c.id), c.topic);
      }
    });
    fc.on("message", (m) => {
      const topic = subs.get(m.subscriptionId);
      if (topic === "/camera/image") frames++;
      if (topic !== "/small") return;
      smallReceived++;
      const text = new TextDecoder().decode(
        new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength),
      );
      const sentAt = Number((JSON.parse(text) as { data: string }).data);
      latencies.push(performance.timeOrigin + performance.now() - sentAt);
    });
    while (!channels.has("/camera/image") || !channels.has("/small"))
      await new Promise((r) => setTimeout(r, 50));
    let stuck: Socket | undefined;
    if (withStuck) stuck = await stuckClient(port, `/?token=${TOKEN}`, channels.get("/camera/image")!);
    const data = new Uint8Array(W * H * 3);
    const camTimer = setInterval(() => {
      data.fill(Math.floor(Math.random() * 255), 0, 1000);
      void image.publish({
        header: { stamp: timeNow(), frame_id: "cam" },
        height: H,
        width: W,
        encoding: "rgb8",
        is_bigendian: 0,
        step: W * 3,
        data,
      });
    }, 1000 / FPS);
    let smallSent = 0;
    const smallTimer = setInterval(() => {
      smallSent++;
      void small.publish({ data: String(performance.timeOrigin + performance.now()) });
    }, 1000 / SMALL_HZ);
    await new Promise((r) => setTimeout(r, 1000));
    const rss0 = rssMiB(hub.pid!);
    const frames0 = frames;
    latencies.length = 0;
    const small0 = smallSent;
    const recv0 = smallReceived;
    await new Promise((r) => setTimeout(r, durationMs));
    const rss1 = rssMiB(hub.pid!);
    const st = await fetchFoxgloveStatus(node, { timeoutMs: 5000 });
    clearInterval(camTimer);
    clearInterval(smallTimer);
    const sorted = [...latencies].sort((a, b) => a - b);
    const stuckSt = st.clients.find((c) => c.subprotocol === "foxglove.websocket.v1");
    const r: RunFigures = {
      smallSent: smallSent - small0,
      smallReceived: smallReceived - recv0,
      smallLatencyP50Ms: pct(sorted, 50),
      smallLatencyP99Ms: pct(sorted, 99),
      framesPerSecond: ((frames - frames0) * 1000) / durationMs,
      hubRssStartMiB: rss0,
      hubRssEndMiB: rss1,
    };
    if (stuckSt !== undefined) {
      r.stuckHeldBytes = stuckSt.queuedBytes + stuckSt.inFlightBytes;
      r.stuckDropped = stuckSt.dropped;
    }
    stuck?.destroy();
    ws.terminate();
    await node.close();
    return r;
  } finally {
    hub.kill("SIGTERM");
    await new Promise((r) => hub.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The peer in this process's child: ws-protocol's FoxgloveServer sending frames to whoever subscribes. */
async function peerServer(): Promise<void> {
  const server = new FoxgloveServer({ name: "peer" });
  const wss = new WebSocketServer({ port: 0, handleProtocols: (p) => server.handleProtocols(p) });
  wss.on("connection", (conn, req) => server.handleConnection(conn as never, `${req.socket.remotePort}`));
  const ch = server.addChannel({ topic: "/camera/image", encoding: "cdr", schemaName: "x", schema: "" });
  // A new buffer per message, as a bridge serializing each message has.
  setInterval(
    () => server.sendMessage(ch, BigInt(Date.now()) * 1_000_000n, new Uint8Array(W * H * 3 + 100).fill(1)),
    1000 / FPS,
  );
  await new Promise((r) => wss.once("listening", r));
  process.stdout.write(`${JSON.stringify({ port: (wss.address() as { port: number }).port, ch })}\n`);
}

async function peerRun(): Promise<{ rssStartMiB: number; rssEndMiB: number }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--peer"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const { port, ch } = await new Promise<{ port: number; ch: number }>((resolve) => {
      child.stdout
        .setEncoding("utf8")
        .once("data", (d: string) => resolve(JSON.parse(d) as { port: number; ch: number }));
    });
    const stuck = await stuckClient(port, "/", ch);
    await new Promise((r) => setTimeout(r, 1000));
    const rss0 = rssMiB(child.pid!);
    await new Promise((r) => setTimeout(r, durationMs));
    const rss1 = rssMiB(child.pid!);
    stuck.destroy();
    return { rssStartMiB: rss0, rssEndMiB: rss1 };
  } finally {
    child.kill("SIGKILL");
  }
}

if (values.peer === true) {
  await peerServer();
} else {
  const alone = await myelinRun(false);
  const withStuck = await myelinRun(true);
  const peer = await peerRun();
  const f = (n: number | undefined, d = 1): string => (n === undefined ? "-" : n.toFixed(d));
  console.log(
    `Foxglove server, ${W}x${H} rgb8 at ${FPS} fps + a ${SMALL_HZ} Hz topic, ${durationMs / 1000} s per run`,
  );
  console.log("");
  console.log(
    "run                       small recv/sent  small p50 ms  small p99 ms  frames/s  hub RSS MiB (start → end)  held for stuck client",
  );
  for (const [name, r] of [
    ["one reading client", alone],
    ["+ a client never reading", withStuck],
  ] as const) {
    console.log(
      `${name.padEnd(26)}${`${r.smallReceived}/${r.smallSent}`.padEnd(17)}${f(r.smallLatencyP50Ms, 2).padEnd(14)}${f(r.smallLatencyP99Ms, 2).padEnd(14)}${f(r.framesPerSecond).padEnd(10)}${`${f(r.hubRssStartMiB)} → ${f(r.hubRssEndMiB)}`.padEnd(28)}${r.stuckHeldBytes === undefined ? "-" : `${(r.stuckHeldBytes / 1048576).toFixed(1)} MiB, ${r.stuckDropped} frames dropped`}`,
    );
  }
  console.log(
    `peer: @foxglove/ws-protocol FoxgloveServer, a client never reading: RSS ${f(peer.rssStartMiB)} → ${f(peer.rssEndMiB)} MiB`,
  );
  if (values.json !== undefined)
    writeFileSync(values.json, JSON.stringify({ alone, withStuck, peer }, null, 2));
  process.exit(0);
}
