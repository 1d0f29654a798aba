/**
 * Discovery benchmark: N nodes publishing T topics in P processes register with the hub (or with
 * the hubs of a site); measured: the time from the last registration until every node sees the
 * whole graph, and the hubs' CPU per node registered. Hubs run in this process (so their CPU is
 * this process's), the nodes in forked processes (discovery-worker.ts).
 *
 *   node dist/bench/discovery.js [--nodes 50,100,200] [--topics 1000] [--procs 10] [--hubs 1] [--runs 3] [--json FILE]
 *
 * With `--hubs H` > 1, H hubs on 127.0.0.1 peer with each other (a site of H "hosts", each with
 * its own runtime directory and host name), and the nodes are spread evenly over them.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub } from "../src/hub/index.js";
import type { DiscoveryJob, DiscoveryReport } from "./discovery-worker.js";

const { values } = parseArgs({
  options: {
    nodes: { type: "string" },
    topics: { type: "string" },
    procs: { type: "string" },
    hubs: { type: "string" },
    runs: { type: "string" },
    json: { type: "string" },
  },
});
const nodeCounts = (values.nodes ?? "50,100,200").split(",").map(Number);
const topics = Number(values.topics ?? 1000);
const procs = Number(values.procs ?? 10);
const hubCount = Number(values.hubs ?? 1);
const runs = Number(values.runs ?? 3);
const WORKER = fileURLToPath(new URL("./discovery-worker.js", import.meta.url));

interface Row {
  nodes: number;
  topics: number;
  procs: number;
  hubs: number;
  /** Median over runs: last registration → the whole graph in every node, in ms. */
  whole_after_last_ms: number;
  /** Median: first process started → the whole graph everywhere, in ms. */
  total_ms: number;
  /** Median: the hubs' CPU (user + system) per node registered, in ms. */
  hub_cpu_per_node_ms: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function once(n: number): Promise<{ afterLast: number; total: number; cpuPerNode: number }> {
  const root = mkdtempSync(join(tmpdir(), "myelin-bench-discovery-"));
  const hubs: Hub[] = [];
  const children: ChildProcess[] = [];
  try {
    // Ports for the hubs' listeners: bound to 0 first, then peers are given the real ports.
    for (let h = 0; h < hubCount; h++) {
      const peers = hubs.map((x) => x.endpoints.find((e) => e.startsWith("tcp://"))!);
      hubs.push(
        await Hub.start({
          runtimeDir: join(root, `h${h}`),
          host: `bench-host-${h}`,
          listen: hubCount > 1 ? ["tcp://127.0.0.1:0"] : [],
          insecure: true,
          peers,
          advertiseAddress: "127.0.0.1",
          nodeTimeoutMs: 10000,
          peerLeaseMs: 10000,
        }),
      );
    }
    const perNodeTopics = Math.max(1, Math.round(topics / n));
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    const registered: number[] = [];
    const whole: number[] = [];
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      for (let p = 0; p < procs; p++) {
        const count = Math.floor(n / procs) + (p < n % procs ? 1 : 0);
        const names = Array.from({ length: count }, (_, i) => `n${p}_${i}`);
        const h = p % hubCount;
        const child = fork(WORKER, [], {
          env: {
            ...process.env,
            MYELIN_RUNTIME_DIR: join(root, `h${h}`),
            MYELIN_HOST: `bench-host-${h}`,
            MYELIN_INSECURE: "1",
          },
          stdio: ["ignore", "inherit", "inherit", "ipc"],
        });
        children.push(child);
        const job: DiscoveryJob = {
          names,
          firstTopic: next,
          topicsPerNode: perNodeTopics,
          expectNodes: n,
          expectPubs: n * perNodeTopics,
        };
        next += count * perNodeTopics;
        child.on("message", (r: DiscoveryReport) => {
          if (r.t === "error") reject(new Error(r.message));
          else if (r.t === "registered") registered.push(r.at);
          else if (whole.push(r.at) === procs) resolve();
        });
        child.on("exit", (code) => {
          if (whole.length < procs)
            reject(new Error(`a worker exited (code ${code}) before the graph was whole`));
        });
        child.send({ t: "start", job });
      }
    });
    const cpu = process.cpuUsage(cpu0);
    return {
      afterLast: Math.max(...whole) - Math.max(...registered),
      total: Math.max(...whole) - t0,
      cpuPerNode: (cpu.user + cpu.system) / 1000 / n,
    };
  } finally {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const kill = setTimeout(() => c.kill("SIGKILL"), 5000);
            c.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            c.send({ t: "stop" });
          }),
      ),
    );
    for (const h of hubs) h.close();
    rmSync(root, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
for (const n of nodeCounts) {
  const r: { afterLast: number; total: number; cpuPerNode: number }[] = [];
  for (let i = 0; i < runs; i++) r.push(await once(n));
  rows.push({
    nodes: n,
    topics: n * Math.max(1, Math.round(topics / n)),
    procs,
    hubs: hubCount,
    whole_after_last_ms: median(r.map((x) => x.afterLast)),
    total_ms: median(r.map((x) => x.total)),
    hub_cpu_per_node_ms: median(r.map((x) => x.cpuPerNode)),
  });
}
console.log(
  `nodes  topics  procs  hubs  whole after last reg (ms)  total (ms)  hub CPU per node (ms)   [median of ${runs}]`,
);
for (const r of rows)
  console.log(
    `${String(r.nodes).padStart(5)}  ${String(r.topics).padStart(6)}  ${String(r.procs).padStart(5)}  ${String(r.hubs).padStart(4)}  ${r.whole_after_last_ms.toFixed(0).padStart(25)}  ${r.total_ms.toFixed(0).padStart(10)}  ${r.hub_cpu_per_node_ms.toFixed(2).padStart(21)}`,
  );
if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
process.exit(0);
