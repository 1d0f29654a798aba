/**
 * Unit tests of the durable consumer state machine (src/store/consumer.ts): every rule with an
 * explicit clock, then a seeded random walk against a reference model.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { MyelinError } from "../errors.js";
import { ConsumerState, resolveStartSeq, type ConsumerOptions, type DeliveryBatch } from "./consumer.js";
import { DurableLog } from "./log.js";

const seqs = (b: DeliveryBatch): number[] => b.deliveries.map((d) => d.seq);
const counts = (b: DeliveryBatch): number[] => b.deliveries.map((d) => d.deliveries);

function fresh(opts: ConsumerOptions = {}, startSeq = 1): ConsumerState {
  return new ConsumerState({ ackTimeoutMs: 1000, maxDeliver: 3, maxInFlight: 100, ...opts }, { startSeq });
}

test("delivers new seqs in order, at most `limit`, and only up to the log's last seq", () => {
  const c = fresh();
  assert.deepEqual(seqs(c.nextToDeliver(0, 3, 10)), [1, 2, 3]);
  assert.deepEqual(seqs(c.nextToDeliver(0, 3, 10)), []);
  assert.deepEqual(seqs(c.nextToDeliver(0, 10, 2)), [4, 5]);
  const b = c.nextToDeliver(5, 10, 1, "x");
  assert.deepEqual(b.deliveries, [{ seq: 6, deliveries: 1, clientId: "x", deadline: 1005 }]);
  assert.equal(c.pending, 6);
});

test("the ack floor moves over out-of-order acks only once the hole is filled", () => {
  const c = fresh();
  c.nextToDeliver(0, 5, 10);
  assert.equal(c.ack(3), "acked");
  assert.equal(c.ack(2), "acked");
  assert.equal(c.floor, 0);
  assert.equal(c.stats().handledAboveFloor, 2);
  assert.equal(c.ack(1), "acked");
  assert.equal(c.floor, 3);
  assert.equal(c.stats().handledAboveFloor, 0);
  assert.equal(c.ack(5), "acked");
  assert.equal(c.floor, 3);
  assert.equal(c.ack(4), "acked");
  assert.equal(c.floor, 5);
  assert.equal(c.ack(4), "already-handled");
  assert.equal(c.ack(6), "not-delivered");
  assert.equal(c.pending, 0);
  assert.equal(c.stats().acked, 5);
});

test("an unacked delivery is redelivered after the ack timeout with an incremented count, before new seqs", () => {
  const c = fresh({ maxDeliver: 5 });
  c.nextToDeliver(0, 2, 10, "a");
  assert.deepEqual(c.expired(999), []);
  assert.deepEqual(seqs(c.nextToDeliver(999, 2, 10)), []);
  assert.deepEqual(c.expired(1000), [1, 2]);
  assert.equal(c.nextDeadline(), 1000);
  c.ack(2);
  const b = c.nextToDeliver(1000, 4, 10, "b");
  assert.deepEqual(seqs(b), [1, 3, 4]);
  assert.deepEqual(counts(b), [2, 1, 1]);
  assert.equal(b.deliveries[0]!.clientId, "b");
  assert.equal(b.deliveries[0]!.deadline, 2000);
  assert.deepEqual(counts(c.nextToDeliver(2000, 4, 1)), [3]);
  assert.equal(c.deliveriesOf(1), 3);
  assert.equal(c.stats().redelivered, 2);
});

test("a late ack from the client that timed out still counts, once", () => {
  const c = fresh();
  c.nextToDeliver(0, 1, 1, "a");
  c.nextToDeliver(1000, 1, 1, "b"); // redelivered to b
  assert.equal(c.ack(1), "acked"); // a finishes late
  assert.equal(c.ack(1), "already-handled"); // b's ack
  assert.equal(c.floor, 1);
});

test("touch extends the ack deadline without counting a delivery", () => {
  const c = fresh();
  c.nextToDeliver(0, 1, 1);
  assert.equal(c.touch(1, 900), true);
  assert.deepEqual(seqs(c.nextToDeliver(1000, 1, 1)), []);
  assert.deepEqual(counts(c.nextToDeliver(1900, 1, 1)), [2]);
  assert.equal(c.touch(7, 0), false);
});

test("nack redelivers after its delay, to any client", () => {
  const c = fresh();
  c.nextToDeliver(0, 2, 10, "a");
  assert.equal(c.nack(1, 300, 100), true);
  assert.equal(c.stats().waiting, 1);
  assert.deepEqual(seqs(c.nextToDeliver(399, 2, 10)), []);
  const b = c.nextToDeliver(400, 2, 10, "b");
  assert.deepEqual(b.deliveries, [{ seq: 1, deliveries: 2, clientId: "b", deadline: 1400 }]);
  assert.equal(c.nack(1, 0, 500), true);
  assert.deepEqual(counts(c.nextToDeliver(500, 2, 10)), [3]);
  assert.equal(c.nack(9, 0, 500), false);
  assert.throws(() => c.nack(1, -1, 0), { code: "ERR_INVALID_ARGUMENT" });
});

test("maxDeliver: a message that would be delivered once more is dead-lettered with the reason, and handled", () => {
  const c = fresh({ maxDeliver: 2 });
  c.nextToDeliver(0, 3, 10);
  c.ack(2);
  c.nack(3, 50, 0);
  assert.deepEqual(counts(c.nextToDeliver(1000, 3, 10)), [2, 2]); // 3 (nacked, due at 50) then 1 (timed out)
  c.nack(3, 60_000, 1000); // 2 deliveries already: dead-lettered at once, not after the delay
  const b = c.nextToDeliver(2000, 3, 10);
  assert.deepEqual(b.deliveries, []);
  assert.deepEqual(
    b.deadLetters.map((d) => [d.seq, d.deliveries, d.lastFailure]),
    [
      [3, 2, "nack"],
      [1, 2, "ack-timeout"],
    ],
  );
  assert.match(b.deadLetters[1]!.reason, /maxDeliver 2 reached; last delivery: ack-timeout/);
  assert.equal(c.floor, 3);
  assert.equal(c.pending, 0);
  assert.equal(c.ack(1), "already-handled");
  assert.equal(c.stats().deadLettered, 2);
  assert.equal(c.lag(3), 0);
});

test("reject dead-letters at once with the caller's reason", () => {
  const c = fresh();
  c.nextToDeliver(0, 1, 1);
  assert.deepEqual(c.reject(1, "payload fails schema /alert"), {
    seq: 1,
    deliveries: 1,
    reason: "payload fails schema /alert",
    lastFailure: "rejected",
  });
  assert.equal(c.reject(1, "again"), undefined);
  assert.equal(c.floor, 1);
});

test("maxInFlight bounds pending messages across clients; acks free room", () => {
  const c = fresh({ maxInFlight: 3 });
  assert.deepEqual(seqs(c.nextToDeliver(0, 100, 2, "a")), [1, 2]);
  assert.deepEqual(seqs(c.nextToDeliver(0, 100, 5, "b")), [3]);
  assert.deepEqual(seqs(c.nextToDeliver(0, 100, 5, "b")), []);
  c.nack(1, 10, 0); // nacked messages are still pending: no room
  assert.deepEqual(seqs(c.nextToDeliver(5, 100, 5, "b")), []);
  c.ack(2);
  assert.deepEqual(seqs(c.nextToDeliver(10, 100, 5, "b")), [1, 4]);
  assert.equal(c.pending, 3);
  // Redeliveries never add to pending, even at the bound.
  assert.deepEqual(seqs(c.nextToDeliver(5000, 100, 5, "a")).sort(), [1, 3, 4]);
});

test("two clients share the work; a released client's messages go to the other at once", () => {
  const c = fresh({ maxDeliver: 5 });
  const a = c.nextToDeliver(0, 6, 3, "a");
  const b = c.nextToDeliver(0, 6, 3, "b");
  assert.deepEqual(seqs(a), [1, 2, 3]);
  assert.deepEqual(seqs(b), [4, 5, 6]);
  assert.equal(c.stats().clients, 2);
  c.ack(4);
  c.ack(1);
  assert.equal(c.release("a", 10), 2);
  assert.equal(c.release("a", 10), 0);
  assert.equal(c.stats().clients, 1);
  const again = c.nextToDeliver(10, 6, 10, "b");
  assert.deepEqual(
    again.deliveries.map((d) => [d.seq, d.deliveries, d.clientId]),
    [
      [2, 2, "b"],
      [3, 2, "b"],
    ],
  );
  for (const s of [2, 3, 5, 6]) c.ack(s);
  assert.equal(c.floor, 6);
});

test("release of a client whose messages reached maxDeliver dead-letters them with reason 'released'", () => {
  const c = fresh({ maxDeliver: 1 });
  c.nextToDeliver(0, 1, 1, "a");
  c.release("a", 5);
  const b = c.nextToDeliver(5, 1, 1, "b");
  assert.deepEqual(b.deliveries, []);
  assert.equal(b.deadLetters[0]!.lastFailure, "released");
});

test("startAt: first, last, seq and time against a real log", async () => {
  const dir = mkdtempSync(join(tmpdir(), "myelin-consumer-start-"));
  try {
    await using log = await DurableLog.open({ dir });
    assert.equal(await resolveStartSeq("first", log), 1);
    assert.equal(await resolveStartSeq("last", log), 1); // empty: from the first appended later
    const e = new Uint8Array(0);
    for (let i = 0; i < 5; i++) await log.append(e, e, { ts: 1000 + i * 10 });
    assert.equal(await resolveStartSeq("first", log), 1);
    assert.equal(await resolveStartSeq("last", log), 5);
    assert.equal(await resolveStartSeq({ seq: 3 }, log), 3);
    assert.equal(await resolveStartSeq({ timeMs: 1015 }, log), 3);
    assert.equal(await resolveStartSeq({ timeMs: 0 }, log), 1);
    assert.equal(await resolveStartSeq({ timeMs: 9999 }, log), 6);
    const c = fresh({}, await resolveStartSeq("last", log));
    assert.deepEqual(seqs(c.nextToDeliver(0, log.last, 10)), [5]);
    assert.equal(c.floor, 4);
    const t = fresh({}, await resolveStartSeq({ timeMs: 1021 }, log));
    assert.deepEqual(seqs(t.nextToDeliver(0, log.last, 10)), [4, 5]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("lag counts messages in the log not yet handled; skipBelow follows retention", () => {
  const c = fresh();
  assert.equal(c.lag(0), 0);
  assert.equal(c.lag(10), 10);
  c.nextToDeliver(0, 10, 4);
  c.ack(2);
  c.ack(3);
  assert.equal(c.lag(10), 8);
  c.ack(1);
  assert.equal(c.lag(10), 7);
  assert.equal(c.floor, 3);
  assert.equal(c.skipBelow(7), 3); // 4 (pending), 5 and 6 (never delivered) were not handled
  assert.equal(c.floor, 6);
  assert.equal(c.pending, 0);
  assert.deepEqual(seqs(c.nextToDeliver(0, 10, 10)), [7, 8, 9, 10]);
  assert.equal(c.lag(10), 4);
});

test("options and arguments are validated", () => {
  const bad = (o: ConsumerOptions): void =>
    assert.throws(
      () => fresh(o),
      (e: unknown) => e instanceof MyelinError && e.code === "ERR_INVALID_ARGUMENT",
    );
  bad({ ackTimeoutMs: 0 });
  bad({ maxDeliver: 0 });
  bad({ maxDeliver: 1.5 });
  bad({ maxInFlight: 0 });
  bad({ startAt: { seq: 0 } });
  bad({ startAt: "middle" as never });
  assert.equal(fresh({ maxDeliver: Infinity }).options.maxDeliver, Infinity);
  const opts = { ackTimeoutMs: 5 };
  const c = new ConsumerState(opts, { startSeq: 1 });
  assert.deepEqual(opts, { ackTimeoutMs: 5 });
  assert.equal(c.options.maxInFlight, 1000);
  assert.throws(() => c.nextToDeliver(NaN, 1, 1), { code: "ERR_INVALID_ARGUMENT" });
  assert.throws(() => c.nextToDeliver(0, -1, 1), { code: "ERR_INVALID_ARGUMENT" });
  assert.throws(() => new ConsumerState({}, { startSeq: 0 }), { code: "ERR_INVALID_ARGUMENT" });
});

test("a snapshot round trip resumes after the last ack, keeping delivery counts of pending messages", () => {
  const c = fresh({ maxDeliver: 3 });
  c.nextToDeliver(0, 6, 10, "a");
  c.nextToDeliver(1000, 6, 1, "a"); // seq 1 delivered twice
  for (const s of [2, 4, 5]) c.ack(s);
  const snap = c.snapshot();
  assert.deepEqual(snap, {
    floor: 0,
    handled: [2, 4, 5],
    outstanding: [
      [1, 2],
      [3, 1],
      [6, 1],
    ],
  });
  const r = new ConsumerState(c.options, { snapshot: JSON.parse(JSON.stringify(snap)) });
  assert.equal(r.pending, 3);
  const b = r.nextToDeliver(0, 8, 10, "z");
  assert.deepEqual(
    b.deliveries.map((d) => [d.seq, d.deliveries]),
    [
      [1, 3],
      [3, 2],
      [6, 2],
      [7, 1],
      [8, 1],
    ],
  );
  // A snapshot missing a delivered seq (saved before its delivery) delivers it as new.
  const gap = new ConsumerState(c.options, { snapshot: { floor: 1, handled: [3], outstanding: [] } });
  assert.deepEqual(seqs(gap.nextToDeliver(0, 5, 10)), [2, 4, 5]);
  assert.throws(() => new ConsumerState({}, { snapshot: { floor: 2, handled: [2], outstanding: [] } }), {
    code: "ERR_INVALID_ARGUMENT",
  });
});

// ---- seeded random walk against a reference model ----

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ModelMsg {
  state: "new" | "pending" | "acked" | "dead";
  deliveries: number;
  holder: string | undefined;
  /** ack deadline (held) or redelivery time (waiting). */
  due: number;
}

function walk(seed: number): void {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const opts = {
    ackTimeoutMs: 1 + Math.floor(r() * 50),
    maxDeliver: 1 + Math.floor(r() * 4),
    maxInFlight: 1 + Math.floor(r() * 8),
  };
  const c = new ConsumerState(opts, { startSeq: 1 });
  const model = new Map<number, ModelMsg>();
  const clients = ["a", "b", "c"];
  let now = 0;
  let last = 0;
  const ctx = (): string => `seed ${seed} opts ${JSON.stringify(opts)} now ${now}`;
  const pendingSeqs = (): number[] => [...model].filter(([, m]) => m.state === "pending").map(([s]) => s);

  const deliver = (client: string, limit: number): void => {
    const b = c.nextToDeliver(now, last, limit, client);
    assert.ok(b.deliveries.length <= limit, ctx());
    let sawNew = false;
    for (const d of b.deliveries) {
      const m = model.get(d.seq)!;
      assert.ok(
        m.state === "new" || m.state === "pending",
        `${ctx()}: delivered ${d.seq} in state ${m.state}`,
      );
      if (m.state === "pending") {
        assert.ok(!sawNew, `${ctx()}: redelivery of ${d.seq} after a new seq`);
        assert.ok(m.due <= now, `${ctx()}: ${d.seq} redelivered before its time`);
      } else sawNew = true;
      assert.equal(d.deliveries, m.deliveries + 1, `${ctx()}: delivery count of ${d.seq}`);
      assert.ok(d.deliveries <= opts.maxDeliver, ctx());
      Object.assign(m, { state: "pending", deliveries: d.deliveries, holder: client, due: d.deadline });
    }
    for (const dl of b.deadLetters) {
      const m = model.get(dl.seq)!;
      assert.equal(m.state, "pending", `${ctx()}: dead-lettered ${dl.seq} in state ${m.state}`);
      assert.ok(m.due <= now && m.deliveries >= opts.maxDeliver, ctx());
      assert.equal(dl.deliveries, m.deliveries);
      m.state = "dead";
      m.holder = undefined;
    }
    // Nothing due is left behind when the client had credit to spare.
    if (b.deliveries.length < limit)
      for (const [s, m] of model)
        assert.ok(!(m.state === "pending" && m.due <= now), `${ctx()}: ${s} due but not redelivered`);
  };

  const check = (): void => {
    const pend = pendingSeqs();
    assert.equal(c.pending, pend.length, ctx());
    assert.ok(c.pending <= opts.maxInFlight, `${ctx()}: ${c.pending} pending > maxInFlight`);
    let floor = 0;
    while (["acked", "dead"].includes(model.get(floor + 1)?.state ?? "")) floor++;
    assert.equal(c.floor, floor, ctx());
    const unhandled = [...model.values()].filter((m) => m.state === "new" || m.state === "pending").length;
    assert.equal(c.lag(last), unhandled, ctx());
  };

  for (let step = 0; step < 400; step++) {
    const op = r();
    if (op < 0.15) {
      const n = Math.floor(r() * 4);
      for (let i = 0; i < n; i++)
        model.set(++last, { state: "new", deliveries: 0, holder: undefined, due: 0 });
    } else if (op < 0.4) deliver(pick(clients), Math.floor(r() * 5));
    else if (op < 0.6) {
      const candidates = [...model.keys()];
      if (candidates.length === 0) continue;
      const s = pick(candidates);
      const m = model.get(s)!;
      const res = c.ack(s);
      const want = m.state === "pending" ? "acked" : m.state === "new" ? "not-delivered" : "already-handled";
      assert.equal(res, want, `${ctx()}: ack ${s}`);
      if (m.state === "pending") Object.assign(m, { state: "acked", holder: undefined });
    } else if (op < 0.7) {
      const p = pendingSeqs();
      if (p.length === 0) continue;
      const s = pick(p);
      const m = model.get(s)!;
      const delay = Math.floor(r() * 30);
      assert.equal(c.nack(s, delay, now), true);
      Object.assign(m, { holder: undefined, due: m.deliveries >= opts.maxDeliver ? now : now + delay });
    } else if (op < 0.8) {
      const who = pick(clients);
      const held = pendingSeqs().filter((s) => model.get(s)!.holder === who);
      assert.equal(c.release(who, now), held.length, `${ctx()}: release ${who}`);
      for (const s of held) Object.assign(model.get(s)!, { holder: undefined, due: now });
    } else if (op < 0.9) {
      const want = pendingSeqs()
        .filter((s) => model.get(s)!.holder !== undefined && model.get(s)!.due <= now)
        .sort((a, b) => a - b);
      assert.deepEqual(c.expired(now), want, ctx());
    } else now += Math.floor(r() * 40);
    check();
  }

  // Drain: keep delivering and settling until every seq is handled.
  for (let round = 0; round < 10_000 && c.floor < last; round++) {
    now += opts.ackTimeoutMs + 30;
    deliver(pick(clients), 1 + Math.floor(r() * 5));
    for (const s of pendingSeqs()) {
      const m = model.get(s)!;
      if (m.holder === undefined || r() < 0.3) continue;
      if (r() < 0.5) {
        assert.equal(c.ack(s), "acked");
        Object.assign(m, { state: "acked", holder: undefined });
      } else {
        c.nack(s, 0, now);
        Object.assign(m, { holder: undefined, due: now });
      }
    }
    check();
  }
  assert.equal(c.floor, last, `${ctx()}: not drained`);
  const st = c.stats();
  const acked = [...model.values()].filter((m) => m.state === "acked").length;
  const dead = [...model.values()].filter((m) => m.state === "dead").length;
  assert.equal(acked + dead, last, ctx());
  assert.equal(st.acked, acked, ctx());
  assert.equal(st.deadLettered, dead, ctx());
  assert.equal(st.pending, 0, ctx());
}

test("seeded random walk: every seq ends acked or dead-lettered, never both, never delivered once handled", () => {
  const base = Number(process.env["MYELIN_SEED"] ?? 1);
  for (let seed = base; seed < base + 300; seed++) walk(seed);
});
