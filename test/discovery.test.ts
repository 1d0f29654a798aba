/**
 * Discovery by deltas, with real sockets: the hub sends a new node one snapshot and then every
 * change as a delta; a node that sees a gap in versions asks for a snapshot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decodeHubToNode,
  encodeControl,
  unpackControl,
  type HubToNode,
  type NodeRecord,
} from "../src/node/control-protocol.js";
import { HubClient } from "../src/node/hub-client.js";
import { Hub } from "../src/hub/hub.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { DEFAULT_TRANSPORTS } from "../src/transport/default-transports.js";
import { transportFor, type Connection, type Frames, type Incoming } from "../src/transport/transport.js";
import { tempRuntime, until } from "./helpers.js";

function record(id: string, endpoint = `ipc:///nowhere/${id}`): NodeRecord {
  return {
    id,
    name: id,
    pid: 1,
    host: "h",
    process: id,
    endpoint,
    startedAt: 0,
    pubs: [],
    subs: [],
    services: [],
  };
}

/** A raw control connection that keeps what the hub sends. */
class RawNode {
  readonly got: HubToNode[] = [];
  readonly #conn: Connection;
  constructor(endpoint: string) {
    const conn = transportFor(DEFAULT_TRANSPORTS, endpoint).connect(endpoint, { maxMessageBytes: 1 << 24 });
    this.#conn = conn;
    void (async () => {
      for await (const f of conn as AsyncIterable<Frames>) this.got.push(decodeHubToNode(f[0]!));
    })();
  }
  send(m: Parameters<typeof encodeControl>[0]): void {
    this.#conn.send([encodeControl(m)]);
  }
  async next<T extends HubToNode["t"]>(t: T, from = 0): Promise<Extract<HubToNode, { t: T }>> {
    let found: HubToNode | undefined;
    await until(
      () => (found = this.got.slice(from).find((m) => m.t === t)) !== undefined,
      10000,
      `a ${t} message`,
    );
    return found as Extract<HubToNode, { t: T }>;
  }
  close(): Promise<void> {
    return this.#conn.close(0);
  }
}

test(
  "the hub sends a new node one snapshot, then every change as a delta from the version it holds",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using hub = await Hub.start({ runtimeDir: rt.dir });
    const ep = hub.endpoints[0]!;
    const a = new RawNode(ep);
    const b = new RawNode(ep);
    try {
      a.send({ v: 1, t: "register", node: record("a"), req: 1 });
      const snapA = await a.next("graph");
      assert.deepEqual(
        snapA.graph.nodes.map((n) => n.id),
        ["a"],
      );
      const seen = a.got.length;
      b.send({ v: 1, t: "register", node: record("b"), req: 1 });
      const snapB = await b.next("graph");
      assert.deepEqual(snapB.graph.nodes.map((n) => n.id).sort(), ["a", "b"]);
      const d = await a.next("delta", seen);
      assert.equal(d.delta.from, snapA.graph.version, "the delta starts at the version a holds");
      assert.equal(d.delta.version, d.delta.from + 1);
      assert.deepEqual(
        d.delta.upserts.map((n) => n.id),
        ["b"],
      );
      assert.equal(a.got.filter((m) => m.t === "graph").length, 1, "a got no second snapshot");
      const seen2 = a.got.length;
      b.send({ v: 1, t: "bye", id: "b" });
      const d2 = await a.next("delta", seen2);
      assert.equal(d2.delta.from, d.delta.version);
      assert.deepEqual(d2.delta.removed, ["b"]);
      assert.deepEqual(d2.delta.upserts, []);
      // `sync` answers with a snapshot at the current version.
      const seen3 = a.got.length;
      a.send({ v: 1, t: "sync" });
      const snap = await a.next("graph", seen3);
      assert.equal(snap.graph.version, d2.delta.version);
      assert.deepEqual(
        snap.graph.nodes.map((n) => n.id),
        ["a"],
      );
    } finally {
      await a.close();
      await b.close();
    }
  },
);

test(
  "a node that sees a gap in versions asks for a snapshot, and applies deltas in order",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const ep = `ipc://${join(rt.dir, "fake-hub.sock")}`;
    const listener = await transportFor(DEFAULT_TRANSPORTS, ep).listen(ep, { maxMessageBytes: 1 << 24 });
    const received: { t: string; peer: Buffer }[] = [];
    void (async () => {
      for await (const m of listener as AsyncIterable<Incoming>) {
        received.push({ t: String(unpackControl(m.frames[0]!)["t"]), peer: m.peer });
      }
    })();
    const graphs: { version: number; ids: string[]; removed: string[]; changed: string[] | undefined }[] = [];
    const client = new HubClient({
      endpoint: ep,
      heartbeatMs: 200,
      record: () => record("me"),
      onGraph: (g) =>
        graphs.push({
          version: g.version,
          ids: g.nodes.map((n) => n.id).sort(),
          removed: g.removed,
          changed: g.changed,
        }),
      onRefused: () => {},
      onBadMessage: (err) => assert.fail(err),
    });
    try {
      await until(() => received.some((r) => r.t === "register"), 10000, "the registration");
      const peer = received.find((r) => r.t === "register")!.peer;
      const send = (m: HubToNode): void => listener.send(peer, [encodeControl(m)]);
      const delta = (from: number, upserts: string[], removed: string[] = []): HubToNode => ({
        v: 1,
        t: "delta",
        delta: {
          hub: "H",
          from,
          version: from + 1,
          settled: true,
          upserts: upserts.map((id) => record(id)),
          removed,
        },
      });
      // A delta with nothing to apply it to: the client asks for a snapshot, once.
      send(delta(3, ["x"]));
      send(delta(4, ["y"]));
      await until(() => received.some((r) => r.t === "sync"), 5000, "a sync request");
      assert.equal(graphs.length, 0, "no graph from a delta without its base");
      send({
        v: 1,
        t: "graph",
        graph: {
          hub: "H",
          version: 5,
          settled: true,
          nodes: [record("me"), record("x"), record("y")],
          removed: [],
        },
      });
      await until(() => graphs.length === 1, 5000, "the snapshot");
      assert.equal(graphs[0]!.changed, undefined);
      send(delta(5, ["z"], ["x"]));
      await until(() => graphs.length === 2, 5000, "the delta 5 → 6");
      assert.deepEqual(graphs[1], { version: 6, ids: ["me", "y", "z"], removed: ["x"], changed: ["z"] });
      // A stale delta (already covered) changes nothing; a gap asks again.
      const syncs = received.filter((r) => r.t === "sync").length;
      send(delta(4, ["old"]));
      send(delta(8, ["w"]));
      await until(
        () => received.filter((r) => r.t === "sync").length === syncs + 1,
        5000,
        "a second sync request",
      );
      assert.equal(graphs.length, 2);
      assert.equal(client.gaps, 2);
      // The snapshot of the same hub says who is gone.
      send({
        v: 1,
        t: "graph",
        graph: { hub: "H", version: 9, settled: true, nodes: [record("me"), record("w")], removed: [] },
      });
      await until(() => graphs.length === 3, 5000, "the second snapshot");
      assert.deepEqual(graphs[2]!.removed.sort(), ["y", "z"]);
    } finally {
      await client.close();
      await listener.close(0);
    }
  },
);

test("nodes see each other through deltas and exchange data", { timeout: 30000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using sub = await createNode({ name: "sub", runtimeDir: rt.dir });
  const got: string[] = [];
  await sub.createSubscription("/d", std_msgs.String, (m) => void got.push(m.data));
  const pubs = [];
  for (let i = 0; i < 5; i++) pubs.push(await createNode({ name: `p${i}`, runtimeDir: rt.dir }));
  try {
    await sub.waitForGraph((g) => g.nodes.filter((n) => n.name.startsWith("p")).length === 5, 10000);
    const p = await pubs[4]!.createPublisher("/d", std_msgs.String);
    await sub.waitForGraph((g) => g.nodes.some((n) => n.name === "p4" && n.pubs.length === 1), 10000);
    const g = sub.graph()!;
    assert.ok(g.changed !== undefined, "the last graph came as a delta");
    await until(
      () => {
        void p.publish({ data: "hi" });
        return got.length > 0;
      },
      10000,
      "a message over the graph built from deltas",
    );
  } finally {
    for (const n of pubs) await n.close();
  }
});
