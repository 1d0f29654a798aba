/**
 * MQTT fan-out benchmark: one MQTT.js publisher sends M QoS 1 messages to a topic that N QoS 1
 * MQTT.js subscribers (clean sessions) receive, through Mosquitto, a bare aedes and the Myelin
 * gateway in the same run. The topic is mapped by the gateway (JSON, schema-validated, also
 * published into Myelin), so the gateway pays for mapping and validation as a user's would; every
 * broker carries the same JSON payload.
 *
 * `node dist/bench/mqtt-fanout.js [--subscribers 50] [--messages 20000] [--runs 3]
 * [--brokers mosquitto,aedes,gateway] [--json FILE]`; `--port P` measures a broker already listening
 * on 127.0.0.1:P instead (e.g. a hub started under `--cpu-prof`), `--pid PID` also its CPU time.
 *
 * Reported per broker: the median time from the first publish to the last subscriber having every
 * message, deliveries per second (N × M / time), the ratio to Mosquitto's time, and the CPU time
 * per delivery of the broker process (from /proc, over the same span) and of the subscribers'
 * process. On a shared, loaded machine the CPU times are the steadier figures.
 *
 * The subscribers run in one child process and the publisher in another, so the harness's own
 * clients do not share a thread with each other.
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { mqttImpl } from "./impls/mqtt.js";
import { medianIndex } from "./stats.js";

const SELF = fileURLToPath(import.meta.url);
const TOPIC = "bench/fan";
type Broker = "mosquitto" | "aedes" | "gateway";

interface Row {
  broker: Broker;
  subscribers: number;
  messages: number;
  ms: number | null;
  deliveries_per_s: number | null;
  /** CPU time of the broker process per delivery, µs (null where /proc cannot tell). */
  broker_cpu_us: number | null;
  /** CPU time of the subscribers' process per delivery, µs. */
  subscriber_cpu_us: number | null;
  vs_mosquitto: number | null;
  runs: number;
  error: string | null;
}

/** The JSON body every broker carries: the gateway's mapped type (myelin_msgs/RawPayload). */
function body(): Buffer {
  return Buffer.from(`{"data":"${Buffer.alloc(48, 7).toString("base64")}"}`);
}

function connect(port: number, id: string): Promise<mqtt.MqttClient> {
  const c = mqtt.connect({
    host: "127.0.0.1",
    port,
    protocolVersion: 4,
    clientId: id,
    clean: true,
    reconnectPeriod: 0,
  });
  return new Promise((resolve, reject) => {
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

/**
 * Child: N subscribers; says "ready" once all are subscribed, "done" once each has M messages
 * (with the CPU time, µs, the process spent since "ready").
 */
async function subscribers(port: number, n: number, m: number): Promise<void> {
  const clients: mqtt.MqttClient[] = [];
  let complete = 0;
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const c = await connect(port, `fan-sub-${process.pid}-${i}`);
    let got = 0;
    c.on("message", () => {
      if (++got === m && ++complete === n) {
        const d = process.cpuUsage(cpu0);
        process.send!({ t: "done", cpuUs: d.user + d.system });
      }
    });
    await c.subscribeAsync(TOPIC, { qos: 1 });
    clients.push(c);
  }
  cpu0 = process.cpuUsage();
  process.send!({ t: "ready" });
  process.once("message", () => {
    for (const c of clients) c.end(true);
    process.exit(0);
  });
}

const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) of process `pid` so far, µs, from /proc; undefined where there is none. */
function processCpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Child: publishes M messages at QoS 1 with 256 in flight; says "started" at the first. */
async function publisher(port: number, m: number): Promise<void> {
  const c = await connect(port, `fan-pub-${process.pid}`);
  const payload = body();
  let inflight = 0;
  let resume: (() => void) | undefined;
  process.send!({ t: "started" });
  for (let i = 0; i < m; i++) {
    inflight++;
    c.publish(TOPIC, payload, { qos: 1 }, () => {
      inflight--;
      if (resume !== undefined && inflight <= 128) {
        const r = resume;
        resume = undefined;
        r();
      }
    });
    if (inflight >= 256) await new Promise<void>((r) => (resume = r));
  }
  process.once("message", () => {
    c.end(true);
    process.exit(0);
  });
}

function expect(child: ChildProcess, t: string, timeoutMs: number): Promise<{ t: string; cpuUs?: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `no "${t}" from the ${t === "started" ? "publisher" : "subscribers"} within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    const onMsg = (msg: { t: string; cpuUs?: number }): void => {
      if (msg.t !== t) return;
      clearTimeout(timer);
      child.off("message", onMsg);
      child.off("exit", onExit);
      resolve(msg);
    };
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`a child exited (${code}) before "${t}"`));
    };
    child.on("message", onMsg);
    child.once("exit", onExit);
  });
}

interface RunResult {
  ms: number;
  /** Broker CPU time over the run, µs (undefined without /proc or a known pid). */
  brokerCpuUs: number | undefined;
  /** Subscribers' process CPU time from "ready" to "done", µs. */
  subscriberCpuUs: number | undefined;
}

async function oneRun(
  port: number,
  n: number,
  m: number,
  timeoutMs: number,
  brokerPid: number | undefined,
): Promise<RunResult> {
  const subs = fork(SELF, ["--child", "subscribers", String(port), String(n), String(m)]);
  let pub: ChildProcess | undefined;
  try {
    await expect(subs, "ready", 60000);
    const cpu0 = processCpuUs(brokerPid);
    pub = fork(SELF, ["--child", "publisher", String(port), "0", String(m)]);
    await expect(pub, "started", 30000);
    const t0 = process.hrtime.bigint();
    const done = await expect(subs, "done", timeoutMs);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu1 = processCpuUs(brokerPid);
    return {
      ms,
      brokerCpuUs: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0,
      subscriberCpuUs: done.cpuUs,
    };
  } finally {
    for (const c of [subs, pub]) {
      if (c === undefined || c.exitCode !== null) continue;
      c.send("stop");
      const t = setTimeout(() => c.kill("SIGKILL"), 3000);
      await new Promise((r) => c.once("exit", r));
      clearTimeout(t);
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      subscribers: { type: "string", default: "50" },
      messages: { type: "string", default: "20000" },
      runs: { type: "string", default: "3" },
      brokers: { type: "string", default: "mosquitto,aedes,gateway" },
      json: { type: "string" },
      "timeout-ms": { type: "string", default: "180000" },
      port: { type: "string" },
      pid: { type: "string" },
    },
  });
  const n = Number(values.subscribers);
  const m = Number(values.messages);
  const runs = Number(values.runs);
  const timeoutMs = Number(values["timeout-ms"]);
  const brokers = values.brokers.split(",") as Broker[];
  console.log(
    `mqtt fan-out: ${n} QoS 1 subscribers × ${m} messages, ${runs} run(s) per broker; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  const rows: Row[] = [];
  if (values.port !== undefined) {
    const pid = values.pid === undefined ? undefined : Number(values.pid);
    const r = await oneRun(Number(values.port), n, m, timeoutMs, pid);
    console.log(
      `broker on port ${values.port}: ${(r.ms / 1000).toFixed(2)} s, ${Math.round((n * m * 1000) / r.ms)} deliveries/s${cpuText(r, n * m)}`,
    );
    return;
  }
  for (const broker of brokers) {
    const impl = mqttImpl(broker, 1);
    const why = await impl.unavailable?.();
    if (why !== undefined) {
      rows.push({
        broker,
        subscribers: n,
        messages: m,
        ms: null,
        deliveries_per_s: null,
        broker_cpu_us: null,
        subscriber_cpu_us: null,
        vs_mosquitto: null,
        runs: 0,
        error: why,
      });
      continue;
    }
    const dir = mkdtempSync(join(tmpdir(), "myelin-fanout-"));
    const children: ChildProcess[] = [];
    let teardown: (() => Promise<void>) | undefined;
    try {
      const setup = await impl.setup!({
        caseName: "mqtt-fanout",
        dir,
        track: (c) => children.push(c),
        log: (l) => console.error(`${broker}: ${l}`),
      });
      teardown = setup.teardown;
      const port = Number(setup.env?.["BENCH_MQTT_PORT"]);
      const results: RunResult[] = [];
      for (let r = 0; r < runs; r++) {
        const res = await oneRun(port, n, m, timeoutMs, children[0]?.pid);
        console.error(
          `  ${broker} run ${r + 1}/${runs}: ${(res.ms / 1000).toFixed(2)} s${cpuText(res, n * m)}`,
        );
        results.push(res);
      }
      const med = results[medianIndex(results, (x) => x.ms)]!;
      const perDelivery = (pick: (x: RunResult) => number | undefined): number | null => {
        const v = results.map(pick).filter((x): x is number => x !== undefined);
        return v.length === 0 ? null : v[medianIndex(v, (x) => x)]! / (n * m);
      };
      rows.push({
        broker,
        subscribers: n,
        messages: m,
        ms: med.ms,
        deliveries_per_s: (n * m * 1000) / med.ms,
        broker_cpu_us: perDelivery((x) => x.brokerCpuUs),
        subscriber_cpu_us: perDelivery((x) => x.subscriberCpuUs),
        vs_mosquitto: null,
        runs,
        error: null,
      });
    } catch (err) {
      rows.push({
        broker,
        subscribers: n,
        messages: m,
        ms: null,
        deliveries_per_s: null,
        broker_cpu_us: null,
        subscriber_cpu_us: null,
        vs_mosquitto: null,
        runs: 0,
        error: (err as Error).message,
      });
    } finally {
      await teardown?.();
      for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const ref = rows.find((r) => r.broker === "mosquitto")?.ms ?? null;
  for (const r of rows) if (r.ms !== null && ref !== null) r.vs_mosquitto = r.ms / ref;
  console.log("");
  console.log(
    `${"broker".padEnd(10)} ${"time s".padStart(8)} ${"deliveries/s".padStart(13)} ${"time / mosquitto".padStart(17)} ${"broker CPU µs/delivery".padStart(23)} ${"subscribers CPU µs/delivery".padStart(28)}`,
  );
  for (const r of rows) {
    if (r.error !== null) {
      console.log(`${r.broker.padEnd(10)} error: ${r.error}`);
      continue;
    }
    console.log(
      `${r.broker.padEnd(10)} ${(r.ms! / 1000).toFixed(2).padStart(8)} ${Math.round(r.deliveries_per_s!).toLocaleString("en-US").padStart(13)} ${(r.vs_mosquitto === null ? "-" : `${r.vs_mosquitto.toFixed(2)}×`).padStart(17)} ${(r.broker_cpu_us === null ? "-" : r.broker_cpu_us.toFixed(2)).padStart(23)} ${(r.subscriber_cpu_us === null ? "-" : r.subscriber_cpu_us.toFixed(2)).padStart(28)}`,
    );
  }
  console.log(`median of ${runs} run(s); gateway: topic mapped (JSON, schema-validated, also into Myelin).`);
  if (values.json !== undefined)
    writeFileSync(values.json, JSON.stringify({ loadavg: loadavg(), rows }, null, 2));
}

/** ", broker CPU x µs/delivery, subscribers y µs/delivery" for a run, or "" when unknown. */
function cpuText(r: RunResult, deliveries: number): string {
  const parts: string[] = [];
  if (r.brokerCpuUs !== undefined)
    parts.push(`broker CPU ${(r.brokerCpuUs / deliveries).toFixed(2)} µs/delivery`);
  if (r.subscriberCpuUs !== undefined)
    parts.push(`subscribers ${(r.subscriberCpuUs / deliveries).toFixed(2)} µs/delivery`);
  return parts.length === 0 ? "" : `, ${parts.join(", ")}`;
}

const at = process.argv.indexOf("--child");
if (at >= 0) {
  const [role, port, n, m] = process.argv.slice(at + 1);
  if (role === "subscribers") await subscribers(Number(port), Number(n), Number(m));
  else await publisher(Number(port), Number(m));
} else {
  await main();
}
