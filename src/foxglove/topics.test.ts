import { test } from "node:test";
import assert from "node:assert/strict";
import type { GraphSnapshot, NodeRecord } from "../node/index.js";
import { diffGraph, graphState } from "./connection-graph.js";
import { isHiddenName, TopicTable, type TopicEncoding } from "./topics.js";

const qos = { reliability: "reliable", durability: "volatile", depth: 10 } as const;

function node(
  name: string,
  pubs: [string, string][],
  subs: [string, string][] = [],
  services: string[] = [],
): NodeRecord {
  return {
    id: `${name}-1`,
    name,
    pid: 1,
    host: "h",
    process: "p",
    endpoint: "ipc:///x",
    startedAt: 0,
    pubs: pubs.map(([topic, type]) => ({ topic, type, qos })),
    subs: subs.map(([topic, type]) => ({ topic, type, qos })),
    services: services.map((service) => ({ service, type: "std_srvs/Trigger" })),
  };
}

function graph(...nodes: NodeRecord[]): GraphSnapshot {
  return { hub: "h", version: 1, settled: true, nodes, removed: [] };
}

const enc = (type: string): TopicEncoding => ({
  encoding: "json",
  schemaName: type,
  schemaEncoding: "jsonschema",
  schema: "{}",
  encode: () => new Uint8Array(),
});

test("channels follow the graph: allow-list, hidden names, unknown types, id reuse, type change", () => {
  const table = new TopicTable({
    allow: ["/camera/**", "/chatter", "/_gateway/errors"],
    showHidden: false,
    encodingFor: (t) => {
      if (t === "my_pkg/Unknown") throw new Error("not known to the hub");
      return enc(t);
    },
  });
  let ch = table.update(
    graph(
      node("camera", [["/camera/front/image", "sensor_msgs/Image"]]),
      node("talker", [
        ["/chatter", "std_msgs/String"],
        ["/secret", "std_msgs/String"],
      ]),
      node("gw", [["/_gateway/errors", "std_msgs/String"]]),
      node("odd", [["/camera/odd", "my_pkg/Unknown"]]),
    ),
  );
  assert.deepEqual(ch.added.map((c) => c.topic).sort(), ["/camera/front/image", "/chatter"]);
  assert.match(table.unencodable.get("/camera/odd") ?? "", /my_pkg\/Unknown: not known to the hub/);
  const imageId = table.byTopic("/camera/front/image")!.id;

  // The camera goes: its channel goes; it comes back: the same id.
  ch = table.update(graph(node("talker", [["/chatter", "std_msgs/String"]])));
  assert.deepEqual(
    ch.removed.map((c) => c.topic),
    ["/camera/front/image"],
  );
  assert.equal(table.unencodable.size, 0);
  ch = table.update(
    graph(
      node("talker", [["/chatter", "std_msgs/String"]]),
      node("camera", [["/camera/front/image", "sensor_msgs/Image"]]),
    ),
  );
  assert.equal(ch.added[0]!.id, imageId);

  // Another type on the topic: a new channel.
  ch = table.update(
    graph(
      node("talker", [["/chatter", "std_msgs/Int32"]]),
      node("camera", [["/camera/front/image", "sensor_msgs/Image"]]),
    ),
  );
  assert.equal(ch.removed.length, 1);
  assert.equal(ch.added.length, 1);
  assert.notEqual(ch.added[0]!.id, ch.removed[0]!.id);
  assert.ok(isHiddenName("/_store/append") && isHiddenName("/a/_b") && !isHiddenName("/a/b_c"));
});

test("the connection graph: full state first, then only what changed, hidden nodes left out", () => {
  const visible = (t: string): boolean => !t.startsWith("/secret");
  const g1 = graph(
    node("camera", [["/image", "sensor_msgs/Image"]]),
    node(
      "detector",
      [["/detections", "vision_msgs/Detection2DArray"]],
      [["/image", "sensor_msgs/Image"]],
      ["/detector/stats"],
    ),
    node("_myelin_tool", [], [["/image", "sensor_msgs/Image"]]),
    node("spy", [["/secret", "std_msgs/String"]]),
  );
  const s1 = graphState(g1, visible, () => true);
  const first = diffGraph(undefined, s1)!;
  assert.deepEqual(first.publishedTopics, [
    { name: "/image", publisherIds: ["camera"] },
    { name: "/detections", publisherIds: ["detector"] },
  ]);
  assert.deepEqual(first.subscribedTopics, [{ name: "/image", subscriberIds: ["detector"] }]);
  assert.deepEqual(first.advertisedServices, [{ name: "/detector/stats", providerIds: ["detector"] }]);
  assert.equal(
    diffGraph(
      s1,
      graphState(g1, visible, () => true),
    ),
    undefined,
    "nothing changed, nothing sent",
  );

  const g2 = graph(node("camera", [["/image", "sensor_msgs/Image"]]));
  const u = diffGraph(
    s1,
    graphState(g2, visible, () => true),
  )!;
  assert.deepEqual(u.removedTopics, ["/detections"]);
  assert.deepEqual(u.removedServices, ["/detector/stats"]);
  assert.deepEqual(u.subscribedTopics, [{ name: "/image", subscriberIds: [] }]);
});
