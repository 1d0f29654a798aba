import { test } from "node:test";
import assert from "node:assert/strict";
import type { NodeRecord } from "../node/control-protocol.js";
import { GraphRegistry, LOCAL_ORIGIN } from "./graph-registry.js";

const qos = { reliability: "reliable" as const, durability: "volatile" as const, depth: 10 };
function rec(id: string, pubs: [string, string][] = [], services: [string, string][] = []): NodeRecord {
  return {
    id,
    name: id,
    pid: 1,
    host: "h",
    process: "p",
    endpoint: `ipc:///tmp/${id}`,
    startedAt: 0,
    pubs: pubs.map(([topic, type]) => ({ topic, type, qos })),
    subs: [],
    services: services.map(([service, type]) => ({ service, type })),
  };
}

test("journals: a change is one step of the version, upserts and removals of one batch fold together", () => {
  const g = new GraphRegistry();
  assert.equal(g.site.take(), undefined);
  g.set(rec("a"), LOCAL_ORIGIN);
  g.set(rec("b"), "peer1");
  g.set(rec("a", [["/x", "T"]]), LOCAL_ORIGIN);
  const d = g.site.take()!;
  assert.deepEqual([d.from, d.version], [0, 1]);
  assert.deepEqual(d.upserts.map((r) => r.id).sort(), ["a", "b"]);
  assert.equal(d.upserts.find((r) => r.id === "a")!.pubs.length, 1);
  // The local journal carries only this hub's own records.
  const l = g.local.take()!;
  assert.deepEqual(
    l.upserts.map((r) => r.id),
    ["a"],
  );
  g.delete("a", LOCAL_ORIGIN);
  g.set(rec("a"), LOCAL_ORIGIN);
  g.delete("b", "peer1");
  const d2 = g.site.take()!;
  assert.deepEqual([d2.from, d2.version], [1, 2]);
  assert.deepEqual(
    d2.upserts.map((r) => r.id),
    ["a"],
  );
  assert.deepEqual(d2.removed, ["b"]);
});

test("no origin writes or removes another's records", () => {
  const g = new GraphRegistry();
  assert.ok(g.set(rec("n1"), "peer1"));
  assert.equal(g.set(rec("n1", [["/evil", "T"]]), LOCAL_ORIGIN), false);
  assert.equal(g.set(rec("n1"), "peer2"), false);
  assert.equal(g.delete("n1", LOCAL_ORIGIN), undefined);
  assert.equal(g.delete("n1", "peer2"), undefined);
  assert.equal(g.get("n1")!.pubs.length, 0);
  assert.deepEqual(g.idsOf("peer1"), ["n1"]);
  assert.ok(g.delete("n1", "peer1"));
  assert.equal(g.size, 0);
});

test("conflicts: a declaration of another type than another node's is refused, across origins, and the index follows changes", () => {
  const g = new GraphRegistry();
  g.set(rec("a", [["/t", "std_msgs/String"]], [["/s", "std_srvs/Trigger"]]), "peer1");
  const b = rec(
    "b",
    [
      ["/t", "std_msgs/Int32"],
      ["/u", "X"],
    ],
    [["/s", "std_srvs/Empty"]],
  );
  const refused = g.conflicts(b);
  assert.deepEqual(
    refused.map((r) => [r.kind, r.name]),
    [
      ["pub", "/t"],
      ["service", "/s"],
    ],
  );
  assert.match(refused[0]!.message, /has type std_msgs\/String \(from node a\); node b used std_msgs\/Int32/);
  assert.deepEqual(
    b.pubs.map((p) => p.topic),
    ["/u"],
  );
  // The same node changing its own type is no conflict with itself.
  g.set(rec("c", [["/v", "A"]]), LOCAL_ORIGIN);
  assert.equal(g.conflicts(rec("c", [["/v", "B"]])).length, 0);
  // Once a is gone, /t is free for any type.
  g.delete("a", "peer1");
  assert.equal(g.conflicts(rec("d", [["/t", "std_msgs/Int32"]])).length, 0);
});
