import { test } from "node:test";
import assert from "node:assert/strict";
import { Balancer, resolveBalancePolicy, type BreakerEvent, type Candidate } from "./balancer.js";

const cands = (down: string[] = []): Candidate[] =>
  ["a", "b", "c"].map((id) => ({ id, name: `n-${id}`, down: down.includes(id) }));
const none = new Set<string>();

function pickId(b: Balancer, c: Candidate[], now = 0, exclude: ReadonlySet<string> = none): string {
  const p = b.pick(c, exclude, now);
  assert.ok(p.ok, `expected a pick, got ${JSON.stringify(p)}`);
  return p.id;
}

test("round-robin takes replicas in turn and skips down links and tried replicas", () => {
  const b = new Balancer({ policy: "round-robin", breaker: false });
  const seq = [];
  for (let i = 0; i < 6; i++) {
    const id = pickId(b, cands());
    b.done(id, "ok", 0);
    seq.push(id);
  }
  assert.deepEqual(seq, ["a", "b", "c", "a", "b", "c"]);
  const down = cands(["b"]);
  const ids = [0, 1, 2, 3].map(() => {
    const id = pickId(b, down);
    b.done(id, "ok", 0);
    return id;
  });
  assert.ok(!ids.includes("b"));
  assert.equal(pickId(b, cands(), 0, new Set(["a", "b"])), "c");
  const p = b.pick(cands(["c"]), new Set(["a", "b"]), 0);
  assert.deepEqual(p, { ok: false, reason: "down", retryInMs: 0 });
  assert.deepEqual(b.pick(cands(), new Set(["a", "b", "c"]), 0), {
    ok: false,
    reason: "tried",
    retryInMs: 0,
  });
});

test("least-outstanding picks the replica with the fewest calls waiting", () => {
  const b = new Balancer({ policy: "least-outstanding", breaker: false });
  const first = [pickId(b, cands()), pickId(b, cands()), pickId(b, cands())].sort();
  assert.deepEqual(first, ["a", "b", "c"]);
  b.done("b", "ok", 0);
  assert.equal(pickId(b, cands()), "b");
  b.done("a", "ok", 0);
  b.done("c", "ok", 0);
  const stats = Object.fromEntries(b.stats(0).map((s) => [s.id, s.outstanding]));
  assert.deepEqual(stats, { a: 0, b: 1, c: 0 });
  const next = pickId(b, cands());
  assert.notEqual(next, "b");
});

test("a replica that timed out is passed over while others remain; used when it is the last", () => {
  const b = new Balancer({ policy: "round-robin", breaker: { failureThreshold: 5, openMs: 1000 } });
  const id = pickId(b, cands());
  b.done(id, "timeout", 0);
  for (let i = 0; i < 10; i++) {
    const x = pickId(b, cands(), 10);
    assert.notEqual(x, id);
    b.done(x, "ok", 10);
  }
  const others = new Set(["a", "b", "c"].filter((x) => x !== id));
  assert.equal(pickId(b, cands(), 10, others), id, "a suspect replica still serves when nothing else can");
  b.done(id, "ok", 10);
  assert.equal(b.stats(10).find((s) => s.id === id)!.suspect, false, "an answer clears suspicion");
});

test("breakers: repeated faults open one replica; all open gives the time to wait", () => {
  const events: BreakerEvent[] = [];
  const b = new Balancer({ policy: "round-robin", breaker: { failureThreshold: 2, openMs: 1000 } }, (e) =>
    events.push(e),
  );
  const one: Candidate[] = [{ id: "a", name: "n-a", down: false }];
  for (let i = 0; i < 2; i++) {
    assert.equal(pickId(b, one, 0), "a");
    b.done("a", "fault", 0);
  }
  assert.deepEqual(events, [{ id: "a", name: "n-a", state: "open" }]);
  assert.deepEqual(b.pick(one, none, 400), { ok: false, reason: "open", retryInMs: 600 });
  assert.equal(pickId(b, one, 1000), "a", "half-open lets a probe through");
  assert.equal(b.pick(one, none, 1001).ok, false, "one probe at a time");
  b.done("a", "ok", 1002);
  assert.deepEqual(
    events.map((e) => e.state),
    ["open", "half-open", "closed"],
  );
  const id = pickId(b, one, 1003);
  b.done(id, "unreachable", 1003);
  assert.equal(b.stats(1003)[0]!.breaker, "open", "a lost link trips the breaker at once");
});

test("balance policy names are checked", () => {
  assert.equal(resolveBalancePolicy(undefined, "x"), "round-robin");
  assert.equal(resolveBalancePolicy("least-outstanding", "x"), "least-outstanding");
  assert.throws(
    () => resolveBalancePolicy("random", "client of /a"),
    /client of \/a: balance must be one of "round-robin", "least-outstanding", got "random"/,
  );
});

test("locality: replicas on the caller's host while any is healthy, then the others, suspect ones last", () => {
  const c = (down: string[] = []): Candidate[] =>
    ["r1", "l1", "r2", "l2"].map((id) => ({
      id,
      name: `n-${id}`,
      down: down.includes(id),
      preferred: id.startsWith("l"),
    }));
  for (const policy of ["round-robin", "least-outstanding"] as const) {
    const b = new Balancer({ policy, breaker: false });
    const seq: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = pickId(b, c());
      b.done(id, "ok", 0);
      seq.push(id);
    }
    assert.deepEqual([...new Set(seq)].sort(), ["l1", "l2"], `${policy}: only the local ones`);
    // One local link down: the other local one takes every call.
    for (let i = 0; i < 4; i++) {
      const id = pickId(b, c(["l1"]));
      b.done(id, "ok", 0);
      assert.equal(id, "l2", policy);
    }
    // The other local one timed out (suspect): healthy remote ones come first, then it.
    b.pick(c(), new Set(["l1", "r1", "r2"]), 0);
    b.done("l2", "timeout", 0);
    const after = pickId(b, c(["l1"]), 1);
    b.done(after, "ok", 1);
    assert.ok(after === "r1" || after === "r2", `${policy}: got ${after}`);
    assert.equal(pickId(b, c(["l1"]), 1, new Set(["r1", "r2"])), "l2", `${policy}: suspect local last`);
  }
  // Least-outstanding prefers a busier local replica to an idle remote one.
  const lo = new Balancer({ policy: "least-outstanding", breaker: false });
  const two: Candidate[] = [
    { id: "r", name: "r", down: false },
    { id: "l", name: "l", down: false, preferred: true },
  ];
  assert.equal(pickId(lo, two), "l");
  assert.equal(pickId(lo, two), "l"); // two outstanding on l, none on r
});
