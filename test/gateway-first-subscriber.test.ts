/**
 * The first external message on a new Myelin topic waits for the subscribers the graph lists to
 * connect: on a loaded host that can take seconds, and a message published before they are there
 * would be lost while its sender (a Kafka offset commit, an MQTT PUBACK) is told it arrived. The
 * subscriber here is a stand-in node registered with a real hub, which connects to the port's new
 * publisher only when the test says so — or leaves the graph without connecting.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../src/hub/index.js";
import { createNode, type Node } from "../src/node/index.js";
import { hostName } from "../src/node/config.js";
import { std_msgs } from "../src/msgs/index.js";
import { TopicMap } from "../src/gateway/mapping.js";
import { MyelinPort } from "../src/gateway/myelin-port.js";
import { encodeControl, type NodeRecord } from "../src/node/control-protocol.js";
import { DEFAULT_TRANSPORTS } from "../src/transport/default-transports.js";
import { transportFor, type Connection } from "../src/transport/transport.js";
import { encodeHello, encodeSub, FrameKind, parseFrame } from "../src/transport/frame.js";
import { tempRuntime, until } from "./helpers.js";

const qos = { reliability: "reliable" as const, durability: "volatile" as const, depth: 10 };

/** Registers a node record listing a subscription to each of `topics` (std_msgs/String). */
function standIn(hubEndpoint: string, id: string, topics: string[]): Connection {
  const control = transportFor(DEFAULT_TRANSPORTS, hubEndpoint).connect(hubEndpoint, {
    maxMessageBytes: 1 << 24,
  });
  const record: NodeRecord = {
    id,
    name: id.replace(/-/g, "_"),
    pid: process.pid,
    host: hostName(),
    process: `${id}-process`,
    endpoint: "ipc:///nowhere",
    startedAt: Date.now(),
    pubs: [],
    subs: topics.map((topic) => ({ topic, type: std_msgs.String.name, qos })),
    services: [],
  };
  control.send([encodeControl({ v: 1, t: "register", node: record, req: 1, secret: "s" })]);
  return control;
}

function listed(node: Node, id: string): boolean {
  return node.graph()?.nodes.some((n) => n.id === id) === true;
}

test(
  "a new topic's first message waits for a listed subscriber to connect, and stops waiting when it leaves the graph",
  { timeout: 60000 },
  async (t) => {
    using rt = tempRuntime();
    await using hub = await Hub.start({ runtimeDir: rt.dir });
    const portNode = await createNode({ name: "_bridge_first", runtimeDir: rt.dir });
    t.after(() => portNode.close());
    const map = new TopicMap(
      [{ myelin: "/first/+", external: "first/+", type: "std_msgs/String", direction: "in" }],
      { syntax: "mqtt" },
    );
    // A bound far beyond the test's: only the subscriber's arrival or departure ends the wait.
    const port = await MyelinPort.start({
      node: portNode,
      map,
      errorTopic: "/_bridge_first/errors",
      firstSubscriberWaitMs: 120000,
      onOutbound: () => {},
    });
    t.after(() => port.close());
    const enc = new TextEncoder();

    // 1. A listed subscriber that connects late gets the first message.
    const control = standIn(hub.endpoints[0]!, "late-sub-1", ["/first/a"]);
    t.after(() => control.close(0));
    await until(() => listed(portNode, "late-sub-1"), 10000, "the stand-in in the port's graph");
    let settled: unknown;
    const first = port.inbound("first/a", enc.encode('{"data":"one"}')).then((r) => (settled = r));
    // The port's publisher appears in the graph; the message waits meanwhile.
    await until(
      () => portNode.graph()?.nodes.some((n) => n.pubs.some((p) => p.topic === "/first/a")) === true,
      10000,
      "the port's publisher of /first/a in the graph",
    );
    assert.equal(settled, undefined, "the first message did not wait for the listed subscriber");
    const endpoint = portNode.graph()!.nodes.find((n) => n.id === portNode.id)!.endpoint;
    const data = transportFor(DEFAULT_TRANSPORTS, endpoint).connect(endpoint, { maxMessageBytes: 1 << 24 });
    t.after(() => data.close(0));
    const kinds: number[] = [];
    const gotData = new Promise<void>((resolve) => {
      void (async () => {
        for await (const frames of data) {
          const f = parseFrame(frames);
          kinds.push(f.kind);
          if (f.kind === FrameKind.Data) resolve();
        }
      })();
    });
    data.send([encodeHello({ node: "late-sub-1", process: "late-sub-1-process" })]);
    data.send([
      encodeSub({
        sid: 1,
        topic: "/first/a",
        type: std_msgs.String.name,
        reliable: true,
        history: 0,
        creditMsgs: 100,
        creditBytes: 1 << 20,
      }),
    ]);
    assert.deepEqual(await first, { ok: true, myelinTopic: "/first/a" });
    await gotData;

    // 2. A listed subscriber that leaves the graph without connecting ends the wait.
    const gone = standIn(hub.endpoints[0]!, "gone-sub-1", ["/first/b"]);
    await until(() => listed(portNode, "gone-sub-1"), 10000, "the second stand-in in the port's graph");
    let second: unknown;
    const pending = port.inbound("first/b", enc.encode('{"data":"two"}')).then((r) => (second = r));
    await until(
      () => portNode.graph()?.nodes.some((n) => n.pubs.some((p) => p.topic === "/first/b")) === true,
      10000,
      "the port's publisher of /first/b in the graph",
    );
    assert.equal(second, undefined);
    gone.send([encodeControl({ v: 1, t: "bye", id: "gone-sub-1" })]);
    await gone.close(1000);
    assert.deepEqual(await pending, { ok: true, myelinTopic: "/first/b" });
  },
);
