/**
 * The uplink's status, alarms and error paths, with a real nats-server and an in-process hub:
 * retention pressure on an unforwarded backlog raises an alarm; messages retention removed before
 * they were forwarded are counted, and the rest still reach the stream; bad configurations stop
 * the hub with ERR_BAD_CONFIG; a missing password variable shows in the status; volatile exports
 * dropped during a cut are counted; `myelin uplink status` prints the lag.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { connect } from "nats";
import { startHubProcess, type HubProcess } from "../src/hub/index.js";
import { createNode, StoreClient } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { storePlugin } from "../src/store/index.js";
import { uplinkPlugin, type RunningUplinkPlugin, type UplinkStatus } from "../src/gateway/index.js";
import { NatsServer, tempDir } from "./bridge-peers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

async function hubWith(dir: string, uplink: string, segmentBytes = 4096): Promise<HubProcess> {
  const file = join(dir, "uplink.yaml");
  writeFileSync(file, uplink);
  return startHubProcess({
    hub: { runtimeDir: join(dir, "run") },
    plugins: [
      storePlugin({
        dataDir: join(dir, "data"),
        fsync: "batch",
        segmentBytes,
        topics: [{ pattern: "/robot/**", config: { retention: { maxMessages: 100 } } }],
      }),
      uplinkPlugin({ file }),
    ],
  });
}

function statusOf(p: HubProcess): UplinkStatus {
  return (p.plugins.get("uplink") as RunningUplinkPlugin).uplink.status();
}

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 20000): Promise<void> {
  if (process.env["UPLINK_DEBUG"] !== undefined) console.error(`waiting for ${what}`);
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test(
  "a backlog near its retention raises an alarm; what retention removed unforwarded is counted, the rest arrives",
  { timeout: 60_000 },
  async () => {
    using tmp = tempDir("myelin-uplink-st-");
    await using nats = await NatsServer.start();
    await nats.stop(); // the link is down from the start
    const hub = await hubWith(
      tmp.dir,
      `site: s1\nnats: {servers: ["${nats.url}"], connectTimeoutMs: 500}\nexport: {durable: ["/robot/**"], volatile: [{topic: /live/temp, type: std_msgs/String}]}\n`,
    );
    const node = await createNode({ name: "pub", runtimeDir: join(tmp.dir, "run") });
    try {
      const pub = await node.createPublisher("/robot/log", std_msgs.String, {
        qos: { durability: "persistent" },
      });
      for (let i = 0; i < 90; i++) await pub.publish({ data: `m${i}` });
      // The status is refreshed periodically: the alarm can be raised by a refresh taken before the
      // last appends (lag 87 of 90), so wait for a refresh that has seen all of them.
      await until("the alarm with all 90 messages behind", () => {
        const st = statusOf(hub);
        return st.alarm && st.forwarders[0]?.lagMessages === 90;
      });
      const f = statusOf(hub).forwarders[0]!;
      assert.equal(f.topic, "/robot/log");
      assert.equal(f.lagMessages, 90);
      assert.ok(f.retentionPressure >= 0.8 && f.lagBytes > 0 && f.lagAgeMs >= 0);
      // The CLI shows it, and exits with 2 while the alarm is on.
      // (asynchronously: the hub runs in this process)
      const run = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
        new Promise((resolve) => {
          const c = execFile(
            process.execPath,
            [CLI, ...args],
            {
              env: { ...process.env, MYELIN_RUNTIME_DIR: join(tmp.dir, "run") },
              encoding: "utf8",
              timeout: 20000,
            },
            (_err, stdout, stderr) => resolve({ status: c.exitCode, stdout, stderr }),
          );
        });
      const cli = await run("uplink", "status");
      assert.equal(cli.status, 2, cli.stderr);
      const info = await run("topic", "info", "/robot/log");
      assert.match(
        info.stdout,
        /Uplink: forwarded up to 0 → sites\.s1\.robot\.log; lag 90 messages.*ALARM/,
        info.stderr,
      );
      assert.match(cli.stdout, /\/robot\/log .*ALARM/);
      // `site status` carries the uplink's state and lag in one line (and in --json).
      const site = await run("site", "status");
      assert.match(
        site.stdout,
        /uplink \(site s1\): \w+, 1 topic\(s\) forwarded, not yet forwarded 90 message\(s\).*ALARM/,
        site.stderr,
      );
      const siteJson = JSON.parse((await run("site", "status", "--json")).stdout) as {
        uplink?: { forwarders: { lagMessages: number }[] };
      };
      assert.equal(siteJson.uplink?.forwarders[0]?.lagMessages, 90);
      // Volatile messages during the cut are dropped and counted.
      const live = await node.createPublisher("/live/temp", std_msgs.String);
      await until("the uplink subscribed to /live/temp", async () => {
        await live.publish({ data: "t" });
        return statusOf(hub).volatileDropped > 0;
      });
      // Retention removes old segments of the unforwarded backlog.
      for (let i = 90; i < 400; i++) await pub.publish({ data: `m${i}` });
      await nats.restart();
      const nc = await connect({ servers: nats.url });
      try {
        const jsm = await nc.jetstreamManager();
        let stored = 0;
        await until("the catch-up", async () => {
          stored = await jsm.streams.info("MYELIN_SITE_s1").then(
            (i) => i.state.messages,
            () => 0,
          );
          return stored > 0 && statusOf(hub).forwarders[0]!.lagMessages === 0;
        });
        // Read again: acknowledgements that came between the stream's count and the lag check
        // (the last in-flight publishes) are in the stream by now.
        stored = (await jsm.streams.info("MYELIN_SITE_s1")).state.messages;
        const s = statusOf(hub).forwarders[0]!;
        assert.ok(s.lostToRetention > 0, "retention removed unforwarded messages");
        assert.equal(
          stored + s.lostToRetention,
          400,
          "every message is either in the stream or counted as lost",
        );
        assert.equal(s.forwarded, 400);
        await until("the alarm to clear", () => !statusOf(hub).alarm);
        // Volatile exports ride core NATS (JSON) while the link is up.
        const sub = nc.subscribe("live.s1.live.temp", { max: 1 });
        await nc.flush();
        const got = (async () => {
          for await (const m of sub) return new TextDecoder().decode(m.data);
          return "";
        })();
        await until("a live message on NATS", async () => {
          await live.publish({ data: "21.5" });
          return statusOf(hub).volatileSent > 0;
        });
        assert.deepEqual(JSON.parse(await got), { data: "21.5" });
      } finally {
        await nc.close();
      }
    } finally {
      await node.close();
      await hub.close();
    }
  },
);

test(
  "bad uplink configurations stop the hub with ERR_BAD_CONFIG naming the file; a missing password variable shows in the status",
  { timeout: 30_000 },
  async () => {
    using tmp = tempDir("myelin-uplink-bad-");
    const file = join(tmp.dir, "bad.yaml");
    await assert.rejects(
      hubWith(tmp.dir, "site: s1\nnats: {servers: []}\nexport: {durable: [/a]}\n"),
      (e: Error & { code?: string }) =>
        e.code === "ERR_BAD_CONFIG" && /uplink.yaml: nats.servers/.test(e.message),
    );
    await assert.rejects(
      startHubProcess({ hub: { runtimeDir: join(tmp.dir, "run2") }, plugins: [uplinkPlugin({ file })] }),
      (e: Error & { code?: string }) =>
        e.code === "ERR_BAD_CONFIG" && /cannot read the uplink configuration/.test(e.message),
    );
    writeFileSync(file, "site: s1\nnats: {servers: [nats://127.0.0.1:1]}\nexport: {durable: [/a]}\n");
    await assert.rejects(
      startHubProcess({ hub: { runtimeDir: join(tmp.dir, "run3") }, plugins: [uplinkPlugin({ file })] }),
      (e: Error & { code?: string }) => e.code === "ERR_BAD_CONFIG" && /needs the store/.test(e.message),
    );
    delete process.env["MYELIN_TEST_UNSET_PW"];
    const hub = await hubWith(
      join(tmp.dir),
      "site: s1\nnats: {servers: [nats://127.0.0.1:1], user: u, passEnv: MYELIN_TEST_UNSET_PW}\nexport: {durable: [/a]}\n",
    );
    try {
      await until("the error in the status", () =>
        /MYELIN_TEST_UNSET_PW/.test(statusOf(hub).lastError ?? ""),
      );
      assert.notEqual(statusOf(hub).state, "connected");
    } finally {
      await hub.close();
    }
  },
);

test(
  "an exported work-queue topic is not forwarded, says why (status, log, alarm), and is forwarded once switched to limits mode",
  { timeout: 60_000 },
  async () => {
    using tmp = tempDir("myelin-uplink-wq-");
    const file = join(tmp.dir, "uplink.yaml");
    writeFileSync(
      file,
      "site: s1\nnats: {servers: [nats://127.0.0.1:1], connectTimeoutMs: 500}\nexport: {durable: [/robot/**]}\n",
    );
    const logs: string[] = [];
    const hub = await startHubProcess({
      hub: { runtimeDir: join(tmp.dir, "run") },
      log: (l) => logs.push(l),
      plugins: [
        storePlugin({
          dataDir: join(tmp.dir, "data"),
          fsync: "never",
          topics: [{ pattern: "/robot/jobs", config: { mode: "work-queue" } }],
        }),
        uplinkPlugin({ file }),
      ],
    });
    const node = await createNode({ name: "pub", runtimeDir: join(tmp.dir, "run") });
    const store = new StoreClient(node, { timeoutMs: 10000 });
    try {
      for (const topic of ["/robot/jobs", "/robot/log"]) {
        const pub = await node.createPublisher(topic, std_msgs.String, { qos: { durability: "persistent" } });
        await pub.publish({ data: "x" });
      }
      await until("the refusal and the other topic's forwarder", () => {
        const s = statusOf(hub);
        return (s.refused ?? []).length === 1 && s.forwarders.length === 1;
      });
      const s = statusOf(hub);
      assert.equal(s.forwarders[0]!.topic, "/robot/log");
      assert.equal(s.refused![0]!.topic, "/robot/jobs");
      assert.match(
        s.refused![0]!.reason,
        /work-queue durable topic: its consumers' acknowledgements remove messages/,
      );
      assert.match(s.refused![0]!.reason, /myelin topic config \/robot\/jobs --mode limits/);
      assert.equal(s.alarm, true);
      assert.equal(logs.filter((l) => /NOT FORWARDED: \/robot\/jobs/.test(l)).length, 1, "logged once");
      // Switched to limits mode: forwarded from the next scan on.
      await store.configure({
        topic: "/robot/jobs",
        type: "",
        config_json: JSON.stringify({ mode: "limits" }),
        rule: false,
      });
      await until("the work queue forwarded once in limits mode", () => {
        const x = statusOf(hub);
        return (x.refused ?? []).length === 0 && x.forwarders.some((f) => f.topic === "/robot/jobs");
      });
    } finally {
      store.close();
      await node.close();
      await hub.close();
    }
  },
);
