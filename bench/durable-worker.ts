/**
 * A worker process of the durable-topic benchmark (`durable.ts`). Its role comes as JSON in argv[2];
 * it reports `{type: "ready"}` or `{type: "result", ...}` over the fork IPC channel, and
 * `{type: "error", message}` when it fails.
 *
 * Roles: `store` (hub + store service, until told to stop), `myelin-pub`, `myelin-consume`,
 * `myelin-fill` and `myelin-open` (a topic log written, then opened again), and the same for
 * NATS JetStream through nats.js: `nats-pub`, `nats-consume`, `nats-fill`, `nats-open`.
 */
import { join } from "node:path";
import {
  AckPolicy,
  connect,
  StorageType,
  type JetStreamClient,
  type NatsConnection,
  type PubAck,
} from "nats";
import { Hub } from "../src/hub/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { createNode, graphServes, STORE_PROTOCOL } from "../src/node/index.js";
import { DurableLog, StoreService, type FsyncPolicy } from "../src/store/index.js";

type Role =
  | { role: "store"; dir: string; fsync: FsyncPolicy; batchMs: number }
  | { role: "myelin-pub"; dir: string; topic: string; count: number; size: number; inflight: number }
  | { role: "myelin-consume"; dir: string; topic: string; count: number; maxInFlight: number }
  | { role: "myelin-fill"; dir: string; bytes: number; recordBytes: number }
  | { role: "myelin-open"; dir: string }
  | { role: "nats-pub"; url: string; stream: string; count: number; size: number; inflight: number }
  | { role: "nats-consume"; url: string; stream: string; count: number; maxInFlight: number }
  | { role: "nats-fill"; url: string; stream: string; bytes: number; recordBytes: number }
  | { role: "nats-open"; url: string; stream: string; timeoutMs: number };

const send = (m: object): void => void process.send?.(m);

/** CPU time of this process so far, user + system, in µs. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Runs `count` tasks with at most `inflight` at once; resolves with the elapsed seconds. */
async function pumped(count: number, inflight: number, task: () => Promise<unknown>): Promise<number> {
  let started = 0;
  const t0 = process.hrtime.bigint();
  const lane = async (): Promise<void> => {
    while (started < count) {
      started++;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, count) }, lane));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function natsStream(url: string, stream: string): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
  const nc = await connect({ servers: url });
  const jsm = await nc.jetstreamManager();
  await jsm.streams
    .add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File })
    .catch(() => undefined);
  return { nc, js: nc.jetstream() };
}

async function main(r: Role): Promise<void> {
  switch (r.role) {
    case "store": {
      const hub = await Hub.start({ runtimeDir: r.dir });
      const store = await StoreService.start({
        dataDir: join(r.dir, "data"),
        runtimeDir: r.dir,
        defaults: { fsync: r.fsync, batchMs: r.batchMs },
      });
      process.on("message", (m) => {
        if (m === "stop") void store.close().then(() => (hub.close(), process.exit(0)));
        // CPU time of the store process so far (user + system, µs), for CPU per message.
        if (m === "cpu") send({ type: "cpu", us: cpuUs() });
      });
      send({ type: "ready" });
      return;
    }
    case "myelin-pub": {
      const node = await createNode({ name: "bench_pub", runtimeDir: r.dir });
      await node.waitForGraph((g) => graphServes(g, STORE_PROTOCOL.append), 10000);
      const pub = await node.createPublisher(r.topic, std_msgs.UInt8MultiArray, {
        qos: { durability: "persistent" },
      });
      const msg = std_msgs.UInt8MultiArray.create({ data: new Uint8Array(Math.max(0, r.size - 16)) });
      await pub.publish(msg); // warm: opens the topic
      const cpu0 = cpuUs();
      const s = await pumped(r.count, r.inflight, () => pub.publish(msg));
      send({ type: "result", rate: r.count / s, cpuUsPerMsg: (cpuUs() - cpu0) / r.count });
      await node.close();
      return;
    }
    case "myelin-consume": {
      const node = await createNode({ name: "bench_consume", runtimeDir: r.dir });
      await node.waitForGraph((g) => graphServes(g, STORE_PROTOCOL.fetch), 10000);
      const c = node.createDurableConsumer(r.topic, std_msgs.UInt8MultiArray, {
        name: "bench",
        maxInFlight: r.maxInFlight,
      });
      const t0 = process.hrtime.bigint();
      const cpu0 = cpuUs();
      let n = 0;
      let firstMs = 0;
      let s = 0;
      let cpu = 0;
      for await (const m of c) {
        if (n === 0) firstMs = Number(process.hrtime.bigint() - t0) / 1e6;
        void m.ack();
        if (++n === r.count) {
          // The clock stops at the last message, as for JetStream: leaving the loop closes the
          // consumer, which waits for its outstanding credit grant (up to 1 s), not consuming.
          s = Number(process.hrtime.bigint() - t0) / 1e9;
          cpu = cpuUs() - cpu0;
          break;
        }
      }
      send({ type: "result", rate: n / s, cpuUsPerMsg: cpu / n, firstMs });
      await c.close();
      await node.close();
      return;
    }
    case "myelin-fill": {
      const log = await DurableLog.open({ dir: r.dir, fsync: "never" });
      const payload = new Uint8Array(r.recordBytes);
      const n = Math.ceil(r.bytes / r.recordBytes);
      const header = new Uint8Array(0);
      for (let i = 0; i < n; i += 256) {
        await Promise.all(Array.from({ length: Math.min(256, n - i) }, () => log.append(header, payload)));
      }
      await log.close();
      send({ type: "result", records: n });
      return;
    }
    case "myelin-open": {
      const t0 = process.hrtime.bigint();
      const log = await DurableLog.open({ dir: r.dir, fsync: "always" });
      const last = await log.read(log.last, 1); // ready: the newest record can be served
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      send({ type: "result", ms, records: log.count, bytes: log.bytes, ok: last.length === 1 });
      await log.close();
      return;
    }
    case "nats-pub": {
      const { nc, js } = await natsStream(r.url, r.stream);
      const data = new Uint8Array(r.size);
      const subject = `${r.stream}.x`;
      await js.publish(subject, data);
      const s = await pumped(r.count, r.inflight, (): Promise<PubAck> => js.publish(subject, data));
      send({ type: "result", rate: r.count / s });
      await nc.close();
      return;
    }
    case "nats-consume": {
      const { nc, js } = await natsStream(r.url, r.stream);
      const jsm = await nc.jetstreamManager();
      await jsm.consumers.add(r.stream, { durable_name: "bench", ack_policy: AckPolicy.Explicit });
      const consumer = await js.consumers.get(r.stream, "bench");
      const t0 = process.hrtime.bigint();
      let n = 0;
      let s = 0;
      const msgs = await consumer.consume({ max_messages: r.maxInFlight });
      for await (const m of msgs) {
        m.ack();
        if (++n === r.count) {
          s = Number(process.hrtime.bigint() - t0) / 1e9; // at the last message, as for Myelin
          break;
        }
      }
      send({ type: "result", rate: n / s });
      await msgs.close();
      await nc.close();
      return;
    }
    case "nats-fill": {
      const { nc, js } = await natsStream(r.url, r.stream);
      const data = new Uint8Array(r.recordBytes);
      const n = Math.ceil(r.bytes / r.recordBytes);
      await pumped(n, 256, () => js.publish(`${r.stream}.x`, data));
      send({ type: "result", records: n });
      await nc.close();
      return;
    }
    case "nats-open": {
      // Ready when the restarted server answers stream info with every message; the clock starts
      // when the runner has spawned the server.
      await new Promise((res) => process.once("message", res));
      const t0 = process.hrtime.bigint();
      for (;;) {
        try {
          const nc = await connect({ servers: r.url, timeout: 1000 });
          const info = await (await nc.jetstreamManager()).streams.info(r.stream);
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          send({ type: "result", ms, records: info.state.messages, bytes: info.state.bytes, ok: true });
          await nc.close();
          return;
        } catch {
          if (Number(process.hrtime.bigint() - t0) / 1e6 > r.timeoutMs)
            throw new Error("nats-server did not come back");
          await new Promise((res) => setTimeout(res, 5));
        }
      }
    }
  }
}

main(JSON.parse(process.argv[2] ?? "{}") as Role).catch((err: unknown) => {
  send({ type: "error", message: err instanceof Error ? err.message : String(err) });
  process.exitCode = 1;
});
