/**
 * Device twins: how many reports per second the gateway accepts (each one written to disk before
 * its answer), and how long an operator's desired change takes to reach a connected device.
 *
 *   npm run build --silent && node dist/bench/twins.js [--devices 1,16] [--duration-ms 3000] [--json FILE]
 *
 * A hub, the gateway (twins in a temp data directory, so every report is an fsync'd file write)
 * and the MQTT.js devices all run in this process; the devices report in a loop, one request in
 * flight each (publish QoS 1 to twins/<d>/reported, wait for reported/accepted). Then one device
 * receives 200 desired changes made with TwinClient.setDesired, one at a time.
 */
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { MqttGateway } from "../src/gateway/mqtt-gateway.js";
import { TwinClient } from "../src/gateway/twin-client.js";
import { percentileSorted, sortedCopy } from "./stats.js";

interface Row {
  case: string;
  devices: number;
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

async function device(port: number, id: string): Promise<MqttClient> {
  const c = mqtt.connect({ host: "127.0.0.1", port, protocolVersion: 4, reconnectPeriod: 0, clientId: id });
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
  });
  return c;
}

/** Resolves with the next message on `topic`. */
function nextOn(c: MqttClient, topic: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const on = (t: string, p: Buffer): void => {
      if (t !== topic) return;
      c.off("message", on);
      resolve(p);
    };
    c.on("message", on);
  });
}

async function reports(port: number, n: number, durationMs: number): Promise<Row> {
  const devs = await Promise.all(Array.from({ length: n }, (_, i) => device(port, `bench-${n}-${i}`)));
  await Promise.all(devs.map((d, i) => d.subscribeAsync(`twins/bench-${n}-${i}/reported/+`, { qos: 1 })));
  const lat: number[] = [];
  const end = performance.now() + durationMs;
  const start = performance.now();
  await Promise.all(
    devs.map(async (d, i) => {
      const topic = `twins/bench-${n}-${i}/reported`;
      for (let k = 0; performance.now() < end; k++) {
        const t0 = performance.now();
        const answer = nextOn(d, `${topic}/accepted`);
        await d.publishAsync(topic, JSON.stringify({ state: { seq: k, temperature: 20 + (k % 10) } }), {
          qos: 1,
        });
        await answer;
        lat.push(performance.now() - t0);
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  await Promise.all(devs.map((d) => d.endAsync()));
  const s = sortedCopy(lat);
  return {
    case: "report→accepted",
    devices: n,
    ops_per_s: lat.length / secs,
    p50_ms: percentileSorted(s, 0.5),
    p99_ms: percentileSorted(s, 0.99),
  };
}

async function deltas(port: number, twins: TwinClient, count: number): Promise<Row> {
  const d = await device(port, "bench-delta");
  await d.subscribeAsync("twins/bench-delta/desired/delta", { qos: 1 });
  await twins.setDesired("bench-delta", {}, { create: true });
  const lat: number[] = [];
  const start = performance.now();
  for (let k = 1; k <= count; k++) {
    const t0 = performance.now();
    const got = nextOn(d, "twins/bench-delta/desired/delta");
    await twins.setDesired("bench-delta", { level: k });
    await got;
    lat.push(performance.now() - t0);
  }
  const secs = (performance.now() - start) / 1000;
  await d.endAsync();
  const s = sortedCopy(lat);
  return {
    case: "set desired→delta",
    devices: 1,
    ops_per_s: count / secs,
    p50_ms: percentileSorted(s, 0.5),
    p99_ms: percentileSorted(s, 0.99),
  };
}

async function main(): Promise<void> {
  const counts = arg("devices", "1,16").split(",").map(Number);
  const durationMs = Number(arg("duration-ms", "3000"));
  const dir = mkdtempSync(join(tmpdir(), "myelin-bench-twins-"));
  const hub = await Hub.start({ runtimeDir: dir });
  const gw = await MqttGateway.start({
    listeners: { tcp: { port: 0, host: "127.0.0.1" } },
    runtimeDir: dir,
    dataDir: join(dir, "mqtt"),
  });
  const node = await createNode({ name: "bench_operator", runtimeDir: dir });
  const twins = new TwinClient(node);
  const rows: Row[] = [];
  try {
    await twins.waitForService(10000);
    const port = gw.port("tcp")!;
    for (const n of counts) rows.push(await reports(port, n, durationMs));
    rows.push(await deltas(port, twins, 200));
  } finally {
    twins.close();
    await node.close();
    await gw.close();
    hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log("case                devices      ops/s    p50 ms    p99 ms");
  for (const r of rows)
    console.log(
      `${r.case.padEnd(18)} ${String(r.devices).padStart(8)} ${r.ops_per_s.toFixed(0).padStart(10)} ${r.p50_ms.toFixed(2).padStart(9)} ${r.p99_ms.toFixed(2).padStart(9)}`,
    );
  const json = arg("json", "");
  if (json !== "") writeFileSync(json, JSON.stringify(rows, null, 2));
}

await main();
