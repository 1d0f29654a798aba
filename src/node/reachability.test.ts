import { test } from "node:test";
import assert from "node:assert/strict";
import type { NodeRecord } from "./control-protocol.js";
import { Reachability, type LinkView } from "./reachability.js";

const node = (id: string, endpoint: string): NodeRecord => ({
  id,
  name: id,
  pid: 1,
  host: "other",
  process: id,
  endpoint,
  startedAt: 0,
  pubs: [],
  subs: [],
  services: [],
});

test("a link with subscriptions silent past the limit is reported once, and leaves the list when heard again", () => {
  const r = new Reachability(3000);
  const nodes = [node("p", "tcp://10.0.0.1:7500")];
  const ep = (n: NodeRecord): string => n.endpoint;
  const link: { -readonly [K in keyof LinkView]: LinkView[K] } = {
    endpoint: "tcp://10.0.0.1:7500",
    subscriptionCount: 1,
    lastSeen: 0,
    openedAt: 1000,
  };
  assert.deepEqual(r.check([link], nodes, ep, 3500), { lost: [], back: [] });
  const first = r.check([link], nodes, ep, 4500);
  assert.equal(first.lost.length, 1);
  assert.match(first.lost[0]!.reason, /no answer in 3500 ms since the link opened/);
  assert.deepEqual(r.check([link], nodes, ep, 9000), { lost: [], back: [] }, "reported once");
  assert.equal(r.list().length, 1);
  link.lastSeen = 9000;
  const back = r.check([link], nodes, ep, 9100);
  assert.equal(back.back.length, 1);
  assert.deepEqual(r.list(), []);
  // Silent again after having spoken: the reason says so.
  const again = r.check([link], nodes, ep, 12500);
  assert.match(again.lost[0]!.reason, /silent for 3500 ms/);
  // A link without subscriptions, or to a node no longer in the graph, is not reported.
  link.subscriptionCount = 0;
  assert.equal(r.check([link], nodes, ep, 20000).back.length, 1);
  link.subscriptionCount = 1;
  assert.equal(r.check([link], [], ep, 20000).lost.length, 0);
  // A link that closed leaves the list.
  r.check([link], nodes, ep, 20000);
  assert.equal(r.list().length, 1);
  assert.equal(r.check([], nodes, ep, 20001).back.length, 1);
});
