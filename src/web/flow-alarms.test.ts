import { test } from "node:test";
import assert from "node:assert/strict";
import type { NodeStatus, RemoteSubscriberStatus, SubscriptionStatus } from "../node/index.js";
import { flowAlarms, type FlowMemory } from "./flow-alarms.js";

const sub = (over: Partial<SubscriptionStatus> = {}): SubscriptionStatus => ({
  topic: "/scan",
  type: "sensor_msgs/LaserScan",
  reliable: false,
  group: "",
  received: 10,
  dropped: 0,
  pending: 0,
  invalid: 0,
  deadlineMs: 0,
  deadlinesMissed: 0,
  silentMs: 5,
  ...over,
});

const remote = (over: Partial<RemoteSubscriberStatus> = {}): RemoteSubscriberStatus => ({
  node: "viewer-id",
  reliable: false,
  group: "",
  backlog: 0,
  backlogBytes: 0,
  waits: 0,
  dropped: 0,
  ...over,
});

const status = (over: Partial<NodeStatus>): NodeStatus => ({
  node: "n",
  id: "n-id",
  at: 0,
  subscriptions: [],
  publishers: [],
  ...over,
});

const names = (id: string): string | undefined => ({ "viewer-id": "viewer", "lidar-id": "lidar" })[id];

const pubStatus = (r: RemoteSubscriberStatus): NodeStatus =>
  status({
    node: "lidar",
    id: "lidar-id",
    publishers: [
      { topic: "/scan", type: "sensor_msgs/LaserScan", id: "lidar#1", published: 100, subscribers: [r] },
    ],
  });

test("a subscription silent past its deadline raises missed-deadline until data flows again", () => {
  const mem: FlowMemory = new Map();
  const late = status({
    node: "viewer",
    id: "viewer-id",
    subscriptions: [sub({ deadlineMs: 100, silentMs: 350, deadlinesMissed: 3 })],
  });
  const r1 = flowAlarms([late], names, mem, 1000);
  assert.equal(r1.conditions.length, 1);
  assert.equal(r1.conditions[0]!.kind, "deadline-missed");
  assert.equal(r1.conditions[0]!.subject, "/scan → viewer");
  assert.match(r1.conditions[0]!.message, /past its deadline of 100 ms \(3 deadlines missed/);
  assert.equal(r1.topics["/scan"]!.subscriptions[0]!.late, true);
  const flowing = status({
    node: "viewer",
    id: "viewer-id",
    subscriptions: [sub({ deadlineMs: 100, silentMs: 20, deadlinesMissed: 3 })],
  });
  const r2 = flowAlarms([flowing], names, mem, 2000);
  assert.deepEqual(r2.conditions, []);
  assert.equal(r2.topics["/scan"]!.subscriptions[0]!.late, false);
  // without a deadline, silence is no alarm
  const quiet = status({ subscriptions: [sub({ silentMs: 1e6 })] });
  assert.deepEqual(flowAlarms([quiet], names, mem, 3000).conditions, []);
});

test("a best-effort subscriber its publisher drops for is a dropping subscriber while drops rise, then clears after the hold", () => {
  const mem: FlowMemory = new Map();
  // first sight: losses from before the dashboard looked are not news
  assert.deepEqual(flowAlarms([pubStatus(remote({ dropped: 50 }))], names, mem, 0).conditions, []);
  const r = flowAlarms([pubStatus(remote({ dropped: 80 }))], names, mem, 1000);
  assert.equal(r.conditions.length, 1);
  const c = r.conditions[0]!;
  assert.equal(c.kind, "dropping-subscriber");
  assert.equal(c.subject, "/scan lidar#1 → viewer");
  assert.match(c.message, /publisher lidar#1 dropped 80 messages of \/scan for viewer/);
  assert.equal(r.topics["/scan"]!.publishers[0]!.subscribers[0]!.state, "dropping");
  // no new drops: held for holdMs, then cleared
  assert.equal(
    flowAlarms([pubStatus(remote({ dropped: 80 }))], names, mem, 5000, { holdMs: 10000 }).conditions.length,
    1,
  );
  const cleared = flowAlarms([pubStatus(remote({ dropped: 80 }))], names, mem, 11001, { holdMs: 10000 });
  assert.deepEqual(cleared.conditions, []);
  assert.equal(cleared.topics["/scan"]!.publishers[0]!.subscribers[0]!.state, "ok");
});

test("a reliable subscriber with a backlog or that made its publisher wait is slow", () => {
  const mem: FlowMemory = new Map();
  const deep = flowAlarms(
    [pubStatus(remote({ reliable: true, backlog: 500, backlogBytes: 4096 }))],
    names,
    mem,
    0,
    {
      slowBacklog: 100,
    },
  );
  assert.deepEqual(
    deep.conditions.map((c) => [c.kind, c.subject]),
    [["slow-subscriber", "/scan lidar#1 → viewer"]],
  );
  assert.match(deep.conditions[0]!.message, /viewer is slow on \/scan: 500 messages \(4096 bytes\)/);
  // backlog drained but the publisher waited since the last poll: still slow
  const waited = flowAlarms([pubStatus(remote({ reliable: true, backlog: 0, waits: 3 }))], names, mem, 1000);
  assert.equal(waited.conditions[0]?.kind, "slow-subscriber");
  const fine = flowAlarms([pubStatus(remote({ reliable: true, backlog: 0, waits: 3 }))], names, mem, 20000);
  assert.deepEqual(fine.conditions, []);
});

test("a subscription whose queue overflows is a dropping subscriber; ignored and vanished nodes are forgotten", () => {
  const mem: FlowMemory = new Map();
  const at = (dropped: number): NodeStatus =>
    status({ node: "viewer", id: "viewer-id", subscriptions: [sub({ dropped })] });
  flowAlarms([at(0)], names, mem, 0);
  const r = flowAlarms([at(7)], names, mem, 100);
  assert.equal(r.conditions[0]?.kind, "dropping-subscriber");
  assert.match(r.conditions[0].message, /viewer is losing messages of \/scan: 7 messages/);
  // the dashboard's own watcher is ignored on both sides
  const ignoreViewer = (n: string): boolean => n === "viewer";
  assert.deepEqual(
    flowAlarms([at(9), pubStatus(remote({ dropped: 99 }))], names, mem, 200, {}, ignoreViewer).conditions,
    [],
  );
  flowAlarms([], names, mem, 300);
  assert.equal(mem.size, 0);
  // an unknown subscriber id is named by its id
  flowAlarms([pubStatus(remote({ node: "ghost-id" }))], names, mem, 400);
  const g = flowAlarms([pubStatus(remote({ node: "ghost-id", dropped: 1 }))], names, mem, 500);
  assert.equal(g.conditions[0]?.subject, "/scan lidar#1 → ghost-id");
});
