/**
 * The hub's Prometheus endpoint (docs/metrics.md), on a real hub process (`myelin hub --metrics`)
 * with its store and an uplink to a nats-server the test starts: scraped over HTTP, read with a
 * strict parser of the text format, its values follow the messages (appends, consumer lag,
 * forwarded) and the uplink's lag grows during a cut and drains after it; OpenMetrics on request;
 * a bad address and a port in use are refused with a clear error. And a scrape over 1,000 open
 * durable topics stays short.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createNode, StoreClient } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { startHubProcess } from "../src/hub/index.js";
import { storePlugin } from "../src/store/index.js";
import { metricsPlugin, type RunningMetricsPlugin } from "../src/web/index.js";
import { NatsServer, tempDir } from "./bridge-peers.js";
import { parseExposition, sample, type Exposition } from "./prom-text.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

function env(dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {
    ...process.env,
    MYELIN_RUNTIME_DIR: join(dir, "run"),
    MYELIN_DATA_DIR: join(dir, "data"),
    ...extra,
  };
  delete e["MYELIN_HUB"];
  if (extra["MYELIN_METRICS"] === undefined) delete e["MYELIN_METRICS"];
  return e;
}

function run(
  args: string[],
  dir: string,
  extra: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: env(dir, extra), timeout: 30000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A `myelin hub` process; resolves once it printed its metrics URL and started. */
async function startHub(
  dir: string,
  args: string[],
): Promise<{ proc: ChildProcess; url: string; lines: string[]; [Symbol.asyncDispose](): Promise<void> }> {
  const proc = spawn(process.execPath, [CLI, "hub", ...args], {
    env: env(dir),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const dispose = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(t);
  };
  const url = await new Promise<string>((resolve, reject) => {
    let found: string | undefined;
    const timer = setTimeout(() => reject(new Error(`hub not ready in 30 s:\n${lines.join("\n")}`)), 30000);
    const onLine = (l: string): void => {
      lines.push(l);
      const m = /metrics: Prometheus endpoint (http:\/\/\S+)/.exec(l);
      if (m !== null) found = m[1];
      if (/myelin hub .* started/.test(l) && found !== undefined) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    createInterface({ input: proc.stdout }).on("line", onLine);
    createInterface({ input: proc.stderr }).on("line", onLine);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`hub exited (${code}):\n${lines.join("\n")}`));
    });
  }).catch(async (err: unknown) => {
    await dispose();
    throw err;
  });
  return { proc, url, lines, [Symbol.asyncDispose]: dispose };
}

async function scrape(url: string, openMetrics = false): Promise<{ e: Exposition; type: string }> {
  const res = await fetch(
    url,
    openMetrics ? { headers: { accept: "application/openmetrics-text; version=1.0.0" } } : {},
  );
  assert.equal(res.status, 200);
  const type = res.headers.get("content-type") ?? "";
  return { e: parseExposition(await res.text(), openMetrics), type };
}

/** Scrapes until `pred` holds; fails after `timeoutMs` showing the last values of `show`. */
async function scrapeUntil(
  url: string,
  what: string,
  pred: (e: Exposition) => boolean,
  show: string[],
  timeoutMs = 30000,
): Promise<Exposition> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { e } = await scrape(url);
    if (pred(e)) return e;
    if (Date.now() > end) {
      const seen = [...e.samples].filter(([k]) => show.some((s) => k.startsWith(s)));
      throw new Error(
        `timed out waiting for ${what}; last values:\n${seen.map(([k, v]) => `${k} ${v}`).join("\n")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

test(
  "a hub with a store and an uplink: the scraped metrics follow the messages, and the uplink's lag grows during a cut and drains after it",
  { timeout: 120_000 },
  async () => {
    using tmp = tempDir("wt-metrics-hub-");
    await using nats = await NatsServer.start();
    const uplink = join(tmp.dir, "uplink.yaml");
    writeFileSync(
      uplink,
      `site: m1\nnats: {servers: ["${nats.url}"], connectTimeoutMs: 1000}\nexport: {durable: ["/robot/**"]}\n`,
    );
    await using hub = await startHub(tmp.dir, [
      "--metrics",
      "127.0.0.1:0",
      "--uplink-config",
      uplink,
      "--no-supervisor",
    ]);
    assert.match(hub.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const T = { topic: "/robot/log" };
    const { e: first, type } = await scrape(hub.url);
    assert.equal(type, "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(first.types.get("myelin_store_fsync_seconds"), "histogram");
    assert.equal(first.types.get("myelin_uplink_forwarder_lag_messages"), "gauge");
    assert.equal(first.types.get("myelin_hub_declarations_refused_total"), "counter");
    assert.ok(
      (sample(first, "process_cpu_seconds_total") ?? -1) >= 0,
      "prom-client's process metrics are there",
    );
    assert.equal(sample(first, "myelin_uplink_info", { role: "site", site: "m1" }), 1);

    const node = await createNode({ name: "metrics_pub", runtimeDir: join(tmp.dir, "run") });
    const store = new StoreClient(node, { timeoutMs: 10000 });
    try {
      const pub = await node.createPublisher(T.topic, std_msgs.String, { qos: { durability: "persistent" } });
      for (let i = 0; i < 50; i++) await pub.publish({ data: `m${i}` });
      // A named consumer takes 10 and acknowledges none.
      const got = await store.fetch({
        topic: T.topic,
        type: "std_msgs/String",
        consumer: "audit",
        client: "t",
        max: 10,
        wait_ms: 0,
        start_at: "first",
        ack_timeout_ms: 60000,
        max_deliver: 0,
        max_in_flight: 0,
      });
      assert.equal(got.seqs.length, 10);
      const C = { topic: T.topic, consumer: "audit" };
      let e = await scrapeUntil(
        hub.url,
        "the 50 messages forwarded",
        (x) =>
          sample(x, "myelin_uplink_connected") === 1 &&
          sample(x, "myelin_uplink_forwarder_forwarded_seq", T) === 50 &&
          sample(x, "myelin_uplink_forwarder_lag_messages", T) === 0,
        ["myelin_uplink"],
      );
      assert.equal(sample(e, "myelin_store_topic_last_seq", T), 50);
      assert.equal(sample(e, "myelin_store_topic_first_seq", T), 1);
      assert.equal(sample(e, "myelin_store_topic_messages", T), 50);
      assert.equal(sample(e, "myelin_store_topic_appends_total", T), 50);
      assert.ok((sample(e, "myelin_store_topic_bytes", T) ?? 0) > 50 * 4);
      assert.equal(sample(e, "myelin_store_consumer_lag_messages", C), 50);
      assert.equal(sample(e, "myelin_store_consumer_pending_messages", C), 10);
      assert.ok((sample(e, "myelin_store_fsync_seconds_count") ?? 0) >= 1, "the store's fsyncs are timed");
      assert.equal(sample(e, "myelin_uplink_forwarder_forwarded_total", T), 50);
      assert.equal(sample(e, "myelin_uplink_forwarder_lost_total", T), 0);
      assert.equal(sample(e, "myelin_uplink_forwarder_lag_age_seconds", T), 0);
      assert.equal(sample(e, "myelin_uplink_forwarder_retention_alarm", T), 0);
      assert.ok(
        (sample(e, "myelin_hub_nodes", { origin: "local" }) ?? 0) >= 3,
        "the store, the uplink and the publisher",
      );
      assert.ok((sample(e, "myelin_hub_topics") ?? 0) >= 1);
      assert.equal(sample(e, "myelin_site_peer_state", { peer: "x", state: "up" }), undefined);
      const version = sample(e, "myelin_hub_graph_version") ?? 0;

      // The cut: NATS goes away; the site keeps storing, and the lag shows it.
      await nats.stop();
      await scrapeUntil(
        hub.url,
        "the uplink to see the cut",
        (x) => sample(x, "myelin_uplink_connected") === 0,
        ["myelin_uplink"],
      );
      for (let i = 50; i < 80; i++) await pub.publish({ data: `m${i}` });
      e = await scrapeUntil(
        hub.url,
        "a lag of 30 messages",
        (x) =>
          sample(x, "myelin_uplink_forwarder_lag_messages", T) === 30 &&
          (sample(x, "myelin_uplink_forwarder_lag_age_seconds", T) ?? 0) > 0,
        ["myelin_uplink_forwarder"],
      );
      assert.ok((sample(e, "myelin_uplink_forwarder_lag_bytes", T) ?? 0) > 0);
      assert.equal(sample(e, "myelin_uplink_forwarder_forwarded_seq", T), 50);
      assert.ok((sample(e, "myelin_uplink_disconnects_total") ?? 0) >= 1);
      assert.equal(sample(e, "myelin_store_topic_last_seq", T), 80);
      assert.equal(sample(e, "myelin_store_topic_appends_total", T), 80);
      assert.equal(sample(e, "myelin_store_consumer_lag_messages", C), 80);
      // The lag's age grows while the link is down.
      const age = sample(e, "myelin_uplink_forwarder_lag_age_seconds", T)!;
      await scrapeUntil(
        hub.url,
        "the lag's age to grow",
        (x) => (sample(x, "myelin_uplink_forwarder_lag_age_seconds", T) ?? 0) > age + 0.5,
        ["myelin_uplink_forwarder"],
      );

      // The link returns: the backlog drains.
      await nats.restart();
      e = await scrapeUntil(
        hub.url,
        "the catch-up",
        (x) =>
          sample(x, "myelin_uplink_connected") === 1 &&
          sample(x, "myelin_uplink_forwarder_lag_messages", T) === 0 &&
          sample(x, "myelin_uplink_forwarder_forwarded_seq", T) === 80,
        ["myelin_uplink"],
      );
      assert.ok((sample(e, "myelin_uplink_forwarder_forwarded_total", T) ?? 0) >= 80);
      assert.equal(sample(e, "myelin_uplink_forwarder_lag_age_seconds", T), 0);
      assert.ok((sample(e, "myelin_uplink_connects_total") ?? 0) >= 2);
      assert.ok((sample(e, "myelin_hub_graph_version") ?? 0) >= version);

      // OpenMetrics when asked for; counters are families without _total, samples with it.
      const om = await scrape(hub.url, true);
      assert.equal(om.type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
      assert.equal(om.e.types.get("myelin_uplink_forwarder_forwarded"), "counter");
      assert.equal(sample(om.e, "myelin_store_topic_appends_total", T), 80);
      // Anything but /metrics is not found; only GET and HEAD.
      assert.equal((await fetch(hub.url.replace(/\/metrics$/, "/nope"))).status, 404);
      assert.equal((await fetch(hub.url, { method: "POST" })).status, 405);
      assert.equal((await fetch(hub.url, { method: "HEAD" })).status, 200);
      // `myelin doctor` names the endpoint.
      const doc = await run(["doctor"], tmp.dir);
      assert.match(
        doc.stdout,
        new RegExp(`metrics.*${hub.url.replace(/[.]/g, "\\.")}`),
        doc.stdout + doc.stderr,
      );
    } finally {
      store.close();
      await node.close();
    }
  },
);

test(
  "a bad metrics address or a port in use stops the hub with an error that says what to fix",
  { timeout: 60_000 },
  async () => {
    using tmp = tempDir("wt-metrics-bad-");
    const bad = await run(["hub", "--metrics", "1.2.3.4:port", "--no-supervisor"], tmp.dir);
    assert.notEqual(bad.code, 0);
    assert.match(
      bad.stderr,
      /--metrics '1\.2\.3\.4:port': 'port' is not a port number; give ADDR:PORT, e\.g\. 127\.0\.0\.1:9464/,
    );
    const big = await run(["hub", "--metrics", "70000", "--no-supervisor"], tmp.dir);
    assert.match(big.stderr, /port 70000 is above 65535/);
    const v6 = await run(["hub", "--metrics", "::1:9464", "--no-supervisor"], tmp.dir);
    assert.match(v6.stderr, /write an IPv6 address in brackets, \[ADDR\]:PORT/);
    const envBad = await run(["hub", "--no-supervisor"], tmp.dir, { MYELIN_METRICS: "localhost:" });
    assert.notEqual(envBad.code, 0);
    assert.match(envBad.stderr, /MYELIN_METRICS 'localhost:': the port is missing/);

    // A port some other program holds.
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (holder.address() as { port: number }).port;
      const inUse = await run(["hub", "--metrics", `127.0.0.1:${port}`, "--no-supervisor"], tmp.dir);
      assert.notEqual(inUse.code, 0);
      assert.match(
        inUse.stderr + inUse.stdout,
        new RegExp(
          `the metrics endpoint cannot listen on 127\\.0\\.0\\.1:${port}: port ${port} is in use \\(another hub or exporter\\?\\); pick a free port with --metrics ADDR:PORT`,
        ),
      );
      assert.doesNotMatch(inUse.stderr, /at .*\.js:\d+/, "no stack trace");
      // An address that is not this host's.
      const notHere = await run(["hub", "--metrics", "192.0.2.1:9464", "--no-supervisor"], tmp.dir);
      assert.match(notHere.stderr + notHere.stdout, /192\.0\.2\.1 is not an address of this host/);
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
  },
);

test("one scrape over 1,000 open durable topics stays short", { timeout: 120_000 }, async () => {
  using tmp = tempDir("wt-metrics-1k-");
  const proc = await startHubProcess({
    hub: { runtimeDir: join(tmp.dir, "run") },
    plugins: [
      storePlugin({ dataDir: join(tmp.dir, "data"), fsync: "never" }),
      metricsPlugin({ address: { host: "127.0.0.1", port: 0 }, version: "test" }),
    ],
  });
  const node = await createNode({ name: "many", runtimeDir: join(tmp.dir, "run") });
  const store = new StoreClient(node, { timeoutMs: 30000 });
  try {
    const N = 1000;
    for (let i = 0; i < N; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_x, j) =>
          store.append(`/many/t${i + j}`, "std_msgs/String", new Uint8Array(8)),
        ),
      );
    }
    const m = proc.plugins.get("metrics") as RunningMetricsPlugin;
    // The longest the event loop is held: the synchronous part of one scrape (read + render).
    let worstMs = 0;
    let worstCpuMs = 0;
    for (let k = 0; k < 5; k++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const p = m.metrics.scrape();
      const syncMs = performance.now() - t0;
      const { body } = await p;
      worstCpuMs = Math.max(worstCpuMs, (process.cpuUsage(c0).user + process.cpuUsage(c0).system) / 1000);
      worstMs = Math.max(worstMs, syncMs);
      const e = parseExposition(body);
      assert.equal(sample(e, "myelin_store_topics"), N);
      assert.equal(sample(e, "myelin_store_topic_last_seq", { topic: "/many/t999" }), 1);
    }
    const load = (await import("node:os")).loadavg()[0]!.toFixed(1);
    console.log(
      `# scrape of ${N} topics: event loop held at most ${worstMs.toFixed(1)} ms, CPU at most ${worstCpuMs.toFixed(1)} ms (load average ${load})`,
    );
    assert.ok(worstMs < 1000, `one scrape held the event loop ${worstMs.toFixed(0)} ms`);
  } finally {
    store.close();
    await node.close();
    await proc.close();
  }
});
