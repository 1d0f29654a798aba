/**
 * The uplink benchmark: `node dist/bench/uplink.js [--count N] [--runs R] [--json FILE]`.
 *
 * - catch-up after a cut: N persistent messages are stored at the site while its NATS server is
 *   not there, then the server starts; the rate is N over the time from the server being ready to
 *   the stream holding all N (msg/s and MB/s of payload), for 64 B and 4 KiB payloads, with the
 *   site's hub talking to the cloud server directly and through a NATS leaf node at the site;
 * - next to it, in the same run, a plain JetStream publisher (nats.js, the same in-flight window,
 *   `Nats-Msg-Id` on every message) into a stream of the same settings;
 * - steady-state export overhead: confirmed persistent publishes (32 in flight) on a site hub with
 *   the uplink forwarding live, against the same hub without an uplink.
 *
 * Everything runs on loopback with one JetStream server (R1): the figures compare paths, they do
 * not model a WAN (this kernel has no sch_netem, so no delay). The median of `runs` is reported.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect, headers, nanos, StorageType } from "nats";
import { startHubProcess, type HubProcess } from "../src/hub/index.js";
import { createNode, type Node } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { storePlugin } from "../src/store/index.js";
import { uplinkPlugin, type RunningUplinkPlugin } from "../src/gateway/index.js";
import { freePort, waitForPort } from "./net.js";

interface Row {
  case: string;
  path: string;
  size: number;
  msgPerSec: number;
  mbPerSec: number;
  vsJetStream: number | null;
}

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "20000" },
    runs: { type: "string", default: "3" },
    json: { type: "string" },
  },
});
const COUNT = Number(values.count);
const RUNS = Number(values.runs);

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}
function cleanup(): void {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
process.on("exit", cleanup);
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

async function natsServer(conf: string, port: number): Promise<ChildProcess> {
  const dir = tmp("myelin-bench-nats-");
  const file = join(dir, "nats.conf");
  writeFileSync(file, conf.replaceAll("$DIR", dir));
  const c = spawn("/usr/sbin/nats-server", ["-c", file], { stdio: "ignore" });
  children.add(c);
  await waitForPort(port, 15000, "nats-server", () =>
    c.exitCode !== null ? "nats-server exited" : undefined,
  );
  return c;
}

async function stop(c: ChildProcess | undefined): Promise<void> {
  if (c === undefined || c.exitCode !== null) return;
  const done = new Promise((r) => c.once("exit", r));
  c.kill("SIGKILL");
  await done;
  children.delete(c);
}

function payloadOf(size: number, i: number): { data: string } {
  const s = `m${i}-`;
  // msgpack of {data: string} adds 7 bytes of framing
  return { data: s + "x".repeat(Math.max(0, size - 7 - s.length)) };
}

async function publishPersistent(node: Node, topic: string, size: number, count: number): Promise<number> {
  const pub = await node.createPublisher(topic, std_msgs.String, { qos: { durability: "persistent" } });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < count) await pub.publish(payloadOf(size, next++));
    }),
  );
  return performance.now() - t0;
}

async function siteHub(natsUrl: string | undefined): Promise<{ proc: HubProcess; node: Node; dir: string }> {
  const dir = tmp("myelin-bench-site-");
  const runtimeDir = join(dir, "run");
  const plugins = [storePlugin({ dataDir: join(dir, "data"), fsync: "batch" })];
  if (natsUrl !== undefined) {
    const file = join(dir, "uplink.yaml");
    writeFileSync(
      file,
      `site: bench\nnats: {servers: ["${natsUrl}"], jetStreamDomain: cloud}\nexport: {durable: ["/bench/**"]}\ncatchUp: {messagesPerSecond: 0, maxInFlight: 256}\n`,
    );
    plugins.push(uplinkPlugin({ file }));
  }
  const proc = await startHubProcess({
    hub: { runtimeDir },
    plugins,
    log: (l) => {
      if (process.env["BENCH_VERBOSE"] !== undefined) process.stderr.write(`hub: ${l}\n`);
    },
  });
  const node = await createNode({ name: "bench_pub", runtimeDir });
  return { proc, node, dir };
}

async function streamCount(url: string, stream: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await nc.jetstreamManager();
    return (await jsm.streams.info(stream)).state.messages;
  } catch (err) {
    if (process.env["BENCH_VERBOSE"] !== undefined)
      process.stderr.write(`stream info: ${(err as Error).message}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

/** Catch-up: store COUNT messages with the server away, start it, time until the stream has them. */
async function catchUp(size: number, path: "direct" | "leaf"): Promise<number> {
  const cloudPort = await freePort();
  const leafPort = await freePort();
  const sitePort = path === "direct" ? cloudPort : await freePort();
  const site = await siteHub(`nats://127.0.0.1:${sitePort}`);
  let cloud: ChildProcess | undefined;
  let leaf: ChildProcess | undefined;
  try {
    await publishPersistent(site.node, "/bench/data", size, COUNT);
    cloud = await natsServer(
      `port: ${cloudPort}\nhost: 127.0.0.1\njetstream { store_dir: "$DIR", domain: cloud }\nleafnodes { host: 127.0.0.1, port: ${leafPort} }\n`,
      cloudPort,
    );
    if (path === "leaf") {
      leaf = await natsServer(
        `port: ${sitePort}\nhost: 127.0.0.1\nleafnodes { remotes: [ { url: "nats://127.0.0.1:${leafPort}" } ] }\n`,
        sitePort,
      );
    }
    // Timed from the uplink being connected (its reconnect backoff is not counted) to the
    // forwarder's position covering every message (each one acknowledged by JetStream).
    const uplink = (site.proc.plugins.get("uplink") as RunningUplinkPlugin).uplink;
    const started = performance.now();
    let t0 = 0;
    for (;;) {
      const st = uplink.status();
      if (t0 === 0 && st.state === "connected") t0 = performance.now();
      if ((st.forwarders[0]?.forwarded ?? 0) >= COUNT) break;
      if (performance.now() - started > 300_000) throw new Error("catch-up did not finish within 300 s");
      await new Promise((r) => setTimeout(r, 2));
    }
    const n = await streamCount(`nats://127.0.0.1:${cloudPort}`, "MYELIN_SITE_bench");
    if (n !== COUNT) throw new Error(`the stream holds ${n} messages, expected ${COUNT}`);
    return COUNT / ((performance.now() - t0) / 1000);
  } finally {
    await site.node.close();
    await site.proc.close();
    await stop(leaf);
    await stop(cloud);
  }
}

/** A plain nats.js JetStream publisher: COUNT messages, 256 in flight, with Nats-Msg-Id. */
async function plainJetStream(size: number): Promise<number> {
  const port = await freePort();
  const server = await natsServer(`port: ${port}\nhost: 127.0.0.1\njetstream { store_dir: "$DIR" }\n`, port);
  const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({
      name: "PLAIN",
      subjects: ["plain.>"],
      storage: StorageType.File,
      duplicate_window: nanos(600_000),
    });
    const js = nc.jetstream();
    const payload = new Uint8Array(size).fill(120);
    const inflight = new Set<Promise<unknown>>();
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i++) {
      while (inflight.size >= 256) await Promise.race(inflight);
      const h = headers();
      h.set("Myelin-Seq", String(i + 1));
      const p = js.publish("plain.data", payload, { msgID: `plain/${i}`, headers: h });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await Promise.all(inflight);
    return COUNT / ((performance.now() - t0) / 1000);
  } finally {
    await nc.close();
    await stop(server);
  }
}

/** Persistent publish rate on a site hub, with the uplink forwarding live or without an uplink. */
async function steady(size: number, withUplink: boolean): Promise<number> {
  const port = await freePort();
  const server = withUplink
    ? await natsServer(
        `port: ${port}\nhost: 127.0.0.1\njetstream { store_dir: "$DIR", domain: cloud }\n`,
        port,
      )
    : undefined;
  const site = await siteHub(withUplink ? `nats://127.0.0.1:${port}` : undefined);
  try {
    // A first message creates the topic, so the forwarder is running before the measurement.
    const pub = await site.node.createPublisher("/bench/warm", std_msgs.String, {
      qos: { durability: "persistent" },
    });
    await pub.publish({ data: "warm" });
    if (withUplink) {
      const url = `nats://127.0.0.1:${port}`;
      const t = performance.now();
      while ((await streamCount(url, "MYELIN_SITE_bench")) < 1 && performance.now() - t < 30000) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const ms = await publishPersistent(site.node, "/bench/warm", size, COUNT);
    return COUNT / (ms / 1000);
  } finally {
    await site.node.close();
    await site.proc.close();
    await stop(server);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(what: string, f: () => Promise<number>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    xs.push(await f());
    process.stderr.write(`${what}: run ${i + 1}: ${xs[i]!.toFixed(0)} msg/s\n`);
  }
  return median(xs);
}

const rows: Row[] = [];
const load0 = loadavg()[0]!;
for (const size of [64, 4096]) {
  const plain = await measure(`plain JetStream ${size} B`, () => plainJetStream(size));
  rows.push({
    case: "catch-up",
    path: "plain JetStream publisher",
    size,
    msgPerSec: plain,
    mbPerSec: (plain * size) / 1e6,
    vsJetStream: 1,
  });
  for (const path of ["direct", "leaf"] as const) {
    const r = await measure(`catch-up ${path} ${size} B`, () => catchUp(size, path));
    rows.push({
      case: "catch-up",
      path: `uplink, ${path}`,
      size,
      msgPerSec: r,
      mbPerSec: (r * size) / 1e6,
      vsJetStream: r / plain,
    });
  }
  const base = await measure(`publish without uplink ${size} B`, () => steady(size, false));
  const up = await measure(`publish with uplink ${size} B`, () => steady(size, true));
  rows.push({
    case: "persistent publish",
    path: "no uplink",
    size,
    msgPerSec: base,
    mbPerSec: (base * size) / 1e6,
    vsJetStream: null,
  });
  rows.push({
    case: "persistent publish",
    path: "uplink exporting live",
    size,
    msgPerSec: up,
    mbPerSec: (up * size) / 1e6,
    vsJetStream: null,
  });
}
const load1 = loadavg()[0]!;
console.log(
  `uplink bench: ${COUNT} messages per run, median of ${RUNS}; load average ${load0.toFixed(1)} → ${load1.toFixed(1)}`,
);
console.log("case                | path                       |  size |     msg/s |   MB/s | vs plain JS");
for (const r of rows) {
  console.log(
    `${r.case.padEnd(19)} | ${r.path.padEnd(26)} | ${String(r.size).padStart(5)} | ${r.msgPerSec.toFixed(0).padStart(9)} | ${r.mbPerSec.toFixed(2).padStart(6)} | ${r.vsJetStream === null ? "" : r.vsJetStream.toFixed(2)}`,
  );
}
if (values.json !== undefined)
  writeFileSync(
    values.json,
    JSON.stringify({ count: COUNT, runs: RUNS, load: [load0, load1], rows }, null, 2),
  );
cleanup();
process.exit(0);
