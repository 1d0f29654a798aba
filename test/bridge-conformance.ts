/**
 * The conformance suite every bridge backend passes, written once and run against each real
 * broker (MQTT through Mosquitto, NATS JetStream through nats-server, AMQP through RabbitMQ):
 * typed messages both ways, refusal of schema-failing payloads (counted and reported), and a
 * broker outage in the middle of a stream in both directions with no confirmed message lost.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode, type Node } from "../src/node/index.js";
import { geometry_msgs, myelin_msgs, std_msgs } from "../src/msgs/index.js";
import type { BridgeConfig, BridgeKind } from "../src/gateway/bridge-config.js";
import type { Bridge } from "../src/gateway/bridge.js";
import { startBridge } from "../src/gateway/bridge-host.js";
import type { MappingSpec } from "../src/gateway/mapping.js";
import { tempRuntime, until } from "./helpers.js";

/** Messages an external collector received. */
export class Collected {
  readonly messages: { topic: string; text: string }[] = [];
  #waiters = new Set<() => void>();

  push(topic: string, payload: Uint8Array): void {
    this.messages.push({ topic, text: new TextDecoder().decode(payload) });
    for (const w of [...this.#waiters]) w();
  }

  /** Distinct payload texts. */
  texts(): Set<string> {
    return new Set(this.messages.map((m) => m.text));
  }

  /** Resolves once `pred()` holds (checked on every message); rejects after `timeoutMs`. */
  until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; have ${this.messages.length} messages`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }
}

/** A client of the broker, outside Myelin, as the test's device or application. */
export interface ExternalClient {
  /** Publishes with the broker's confirmation (QoS 1, JetStream ack, publisher confirm); retries across an outage. */
  publish(topic: string, payload: Uint8Array): Promise<void>;
  /** Starts receiving what is published on `pattern` (reliably: across an outage too). */
  collect(pattern: string): Promise<Collected>;
  close(): Promise<void>;
}

/** A broker under test. */
export interface PeerUnderTest {
  kind: BridgeKind;
  /** Joins levels with the external separator. */
  topic(...levels: string[]): string;
  /** The external single-level wildcard. */
  one: string;
  /** A bridge configuration for `mapping` (its own names for queues and consumers). */
  bridgeConfig(name: string, mapping: MappingSpec[]): BridgeConfig;
  /** A new external client. */
  external(): Promise<ExternalClient>;
  /** The broker becomes unreachable for the bridge (stopped, or the link cut). */
  outage(): Promise<void>;
  /** The broker is back. */
  recover(): Promise<void>;
  close(): Promise<void>;
}

const enc = new TextEncoder();

interface World {
  app: Node;
  bridgeNode: Node;
  dataDir: string;
  [Symbol.asyncDispose](): Promise<void>;
}

async function world(): Promise<World> {
  const rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir });
  const app = await createNode({ name: "app", runtimeDir: rt.dir });
  const bridgeNode = await createNode({ name: "_bridge_test", runtimeDir: rt.dir });
  return {
    app,
    bridgeNode,
    dataDir: join(rt.dir, "data"),
    async [Symbol.asyncDispose]() {
      await app.close();
      await bridgeNode.close();
      hub.close();
      rt[Symbol.dispose]();
    },
  };
}

async function withBridge(w: World, cfg: BridgeConfig): Promise<Bridge> {
  const b = await startBridge(cfg, { node: w.bridgeNode, dataDir: w.dataDir });
  await b.waitConnected(15000);
  return b;
}

let counter = 0;

/**
 * Registers the conformance tests of one backend. `start` gives the broker under test (started
 * once for the suite, closed after it).
 */
export function bridgeConformance(label: string, start: () => Promise<PeerUnderTest>): void {
  describe(`bridge conformance: ${label}`, { timeout: 60000 }, () => {
    let peer: PeerUnderTest;
    before(async () => {
      peer = await start();
    });
    after(async () => {
      await peer?.close();
    });

    test("typed messages both ways", { timeout: 30000 }, async () => {
      const id = `t${process.pid}x${++counter}`;
      await using w = await world();
      const ext = await peer.external();
      try {
        const cfg = peer.bridgeConfig(`conf-${id}`, [
          {
            myelin: `/${id}/out/+`,
            external: peer.topic(id, "out", peer.one),
            type: "std_msgs/String",
            direction: "out",
          },
          {
            myelin: `/${id}/in/+`,
            external: peer.topic(id, "in", peer.one),
            type: "geometry_msgs/Point",
            direction: "in",
          },
        ]);
        await using bridge = await withBridge(w, cfg);
        // Out: Myelin → broker.
        const got = await ext.collect(peer.topic(id, "out", peer.one));
        const pub = await w.app.createPublisher(`/${id}/out/a`, std_msgs.String);
        await until(
          () => bridge.status().outTopics.includes(`/${id}/out/a`),
          10000,
          "the bridge subscribing",
        );
        for (let i = 0; i < 20; i++) await pub.publish({ data: `m${i}` });
        await got.until(() => got.texts().size >= 20, 15000, "20 messages out");
        assert.deepEqual(
          [...got.texts()].map((t) => JSON.parse(t) as unknown),
          Array.from({ length: 20 }, (_, i) => ({ data: `m${i}` })),
        );
        assert.ok(got.messages.every((m) => m.topic === peer.topic(id, "out", "a")));

        // In: broker → Myelin, typed.
        const seen: { x: number; y: number; z: number }[] = [];
        const topics = new Set<string>();
        await w.app.createSubscription(`/${id}/in/robot1`, geometry_msgs.Point, (m) => {
          seen.push(m);
        });
        await w.app.createSubscription(`/${id}/in/robot2`, geometry_msgs.Point, (m) => {
          seen.push(m);
          topics.add("robot2");
        });
        for (let i = 0; i < 10; i++) {
          await ext.publish(
            peer.topic(id, "in", i % 2 === 0 ? "robot1" : "robot2"),
            enc.encode(JSON.stringify({ x: i, y: 0.5, z: -1 })),
          );
        }
        await until(() => seen.length >= 10, 15000, "10 messages in");
        assert.deepEqual(
          seen.map((p) => p.x).sort((a, b) => a - b),
          Array.from({ length: 10 }, (_, i) => i),
        );
        assert.ok(seen.every((p) => typeof p.x === "number" && p.y === 0.5 && p.z === -1));
        assert.ok(topics.has("robot2"));
        const s = bridge.status();
        assert.equal(s.state, "connected");
        assert.equal(s.in, 10);
        assert.ok(s.out >= 20 && s.sent >= 20, JSON.stringify(s));
        assert.equal(s.rejected, 0);
      } finally {
        await ext.close();
      }
    });

    test(
      "schema-failing payloads are refused, counted and reported; good ones pass",
      { timeout: 30000 },
      async () => {
        const id = `t${process.pid}x${++counter}`;
        await using w = await world();
        const ext = await peer.external();
        try {
          const cfg = peer.bridgeConfig(`rej-${id}`, [
            {
              myelin: `/${id}/temp`,
              external: peer.topic(id, "temp"),
              type: "std_msgs/Float64",
              direction: "in",
            },
          ]);
          await using bridge = await withBridge(w, cfg);
          const rejects: { reason: string; external_topic: string }[] = [];
          await w.app.createSubscription("/_gateway/errors", myelin_msgs.GatewayReject, (r) => {
            rejects.push(r);
          });
          const temps: number[] = [];
          await w.app.createSubscription(`/${id}/temp`, std_msgs.Float64, (m) => {
            temps.push(m.data);
          });
          await ext.publish(peer.topic(id, "temp"), enc.encode(`{"data":"hot"}`));
          await ext.publish(peer.topic(id, "temp"), enc.encode(`not json at all`));
          await ext.publish(peer.topic(id, "temp"), enc.encode(`{"data":21.5}`));
          await until(
            () => temps.length >= 1 && bridge.status().rejected >= 2,
            15000,
            "one good message and two rejects",
          );
          assert.deepEqual(temps, [21.5]);
          const s = bridge.status();
          assert.equal(s.rejected, 2);
          assert.equal(s.in, 1);
          assert.match(s.lastReject ?? "", /std_msgs\/Float64/);
          await until(() => rejects.length >= 2, 10000, "rejects on /_gateway/errors");
          assert.ok(rejects.every((r) => r.external_topic === peer.topic(id, "temp")));
        } finally {
          await ext.close();
        }
      },
    );

    test("broker outage mid-stream: no confirmed message lost either way", { timeout: 60000 }, async () => {
      const id = `t${process.pid}x${++counter}`;
      await using w = await world();
      const ext = await peer.external();
      try {
        const cfg = peer.bridgeConfig(`out-${id}`, [
          {
            myelin: `/${id}/up`,
            external: peer.topic(id, "up"),
            type: "std_msgs/String",
            direction: "out",
            qos: 1,
          },
          {
            myelin: `/${id}/down`,
            external: peer.topic(id, "down"),
            type: "std_msgs/String",
            direction: "in",
            qos: 1,
          },
        ]);
        await using bridge = await withBridge(w, cfg);
        const up = await ext.collect(peer.topic(id, "up"));
        const down = new Set<string>();
        await w.app.createSubscription(`/${id}/down`, std_msgs.String, (m) => {
          down.add(m.data);
        });
        const pub = await w.app.createPublisher(`/${id}/up`, std_msgs.String);
        await until(() => bridge.status().outTopics.includes(`/${id}/up`), 10000, "the bridge subscribing");
        const N = 30;
        const extSends: Promise<void>[] = [];
        const phase = async (from: number, to: number): Promise<void> => {
          for (let i = from; i < to; i++) {
            await pub.publish({ data: `u${i}` });
            extSends.push(ext.publish(peer.topic(id, "down"), enc.encode(JSON.stringify({ data: `d${i}` }))));
          }
        };
        await phase(0, N);
        await up.until(() => up.texts().size >= N, 15000, "the first third out");
        await until(() => down.size >= N, 15000, "the first third in");

        await peer.outage();
        await until(() => bridge.status().state !== "connected", 15000, "the bridge noticing the outage");
        await phase(N, 2 * N); // Myelin side: into the offline queue
        await until(
          () => (bridge.status().queue?.messages ?? 0) >= N,
          15000,
          "messages waiting in the offline queue",
        );
        await peer.recover();
        await bridge.waitConnected(20000);
        await phase(2 * N, 3 * N);

        await Promise.all(extSends);
        await up.until(() => up.texts().size >= 3 * N, 30000, "every message out");
        await until(() => down.size >= 3 * N, 30000, `every message in (have ${down.size})`);
        const want = (p: string): string[] => Array.from({ length: 3 * N }, (_, i) => `${p}${i}`).sort();
        assert.deepEqual(
          [...up.texts()].map((t) => (JSON.parse(t) as { data: string }).data).sort(),
          want("u"),
        );
        assert.deepEqual([...down].sort(), want("d"));
        await until(() => bridge.status().queue?.messages === 0, 15000, "the queue to drain");
        const s = bridge.status();
        assert.ok(s.disconnects >= 1 && s.connects >= 2, JSON.stringify(s));
      } finally {
        await ext.close();
      }
    });
  });
}
