import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbox, type OutboxLimits, type OutboxSink } from "./outbox.js";

/** A socket whose writes complete only when the test says so. */
class HeldSink implements OutboxSink {
  readonly sent: { frames: readonly (string | Uint8Array)[]; done: () => void }[] = [];
  send(frames: readonly (string | Uint8Array)[], done: () => void): void {
    this.sent.push({ frames, done });
  }
  /** Completes the oldest write not completed yet. */
  flushOne(): void {
    const w = this.sent.find((x) => !(x as { flushed?: boolean }).flushed) as
      { frames: readonly (string | Uint8Array)[]; done: () => void; flushed?: boolean } | undefined;
    if (w === undefined) throw new Error("nothing to flush");
    w.flushed = true;
    w.done();
  }
  labels(): string[] {
    return this.sent.map((w) => {
      const f = w.frames[0]!;
      return (typeof f === "string" ? f : new TextDecoder().decode(f)).replace(/\0+$/, "");
    });
  }
}

function frame(label: string, size: number): Uint8Array {
  const b = new Uint8Array(size);
  b.set(new TextEncoder().encode(label).subarray(0, size));
  return b;
}

const LIMITS: OutboxLimits = { budgetBytes: 1000, writeWindowBytes: 100, controlBudgetBytes: 500 };

test("control frames go before queued message data, in order", () => {
  const sink = new HeldSink();
  const box = new Outbox(sink, LIMITS, { onDrop: () => {}, onOverflow: () => {} });
  box.data("/a", [frame("a1", 100)], 100); // goes at once (nothing in flight)
  box.data("/a", [frame("a2", 100)], 100); // waits: the window is full
  box.control("c1");
  box.control("c2");
  assert.deepEqual(sink.labels(), ["a1"]);
  sink.flushOne();
  sink.flushOne();
  sink.flushOne();
  assert.deepEqual(sink.labels(), ["a1", "c1", "c2", "a2"]);
});

test("topics are served round-robin, so a queue of large messages does not hold back small ones", () => {
  const sink = new HeldSink();
  const box = new Outbox(sink, { ...LIMITS, budgetBytes: 10000 }, { onDrop: () => {}, onOverflow: () => {} });
  for (let i = 0; i < 4; i++) box.data("/image", [frame(`i${i}`, 500)], 500);
  for (let i = 0; i < 4; i++) box.data("/small", [frame(`s${i}`, 10)], 10);
  while (sink.sent.length < 8) sink.flushOne();
  assert.deepEqual(
    sink.labels(), // i0 left at once; then the two queues take turns.
    ["i0", "i1", "s0", "i2", "s1", "i3", "s2", "s3"],
  );
});

test("a client that does not read holds at most its budget: the fullest topic drops its oldest, counted", () => {
  const sink = new HeldSink();
  const drops: [string, number, number][] = [];
  const box = new Outbox(sink, LIMITS, {
    onDrop: (k, n, b) => drops.push([k, n, b]),
    onOverflow: () => assert.fail("no control overflow expected"),
  });
  // 25 small messages hold fewer bytes than one image: the image topic is always the fullest.
  for (let i = 0; i < 25; i++) {
    box.data("/image", [frame(`i${i}`, 300)], 300);
    box.data("/small", [frame(`s${i}`, 10)], 10);
    const st = box.stats();
    // Within the budget, plus at most the newest message of each topic.
    assert.ok(st.queuedBytes + st.inFlightBytes <= LIMITS.budgetBytes + 300 + 10, JSON.stringify(st));
  }
  const st = box.stats();
  const image = st.keys["/image"]!;
  const small = st.keys["/small"]!;
  assert.equal(image.sent, 1, "only the first frame went before the socket stopped");
  assert.ok(image.dropped > 15, `image drops: ${image.dropped}`);
  assert.equal(image.sent + image.dropped + image.queued, 25);
  assert.equal(small.dropped, 0, "the small topic never lost a message to the image topic");
  assert.equal(small.queued, 25);
  assert.equal(
    drops.reduce((n, d) => n + d[1], 0),
    image.dropped,
  );
  assert.ok(drops.every((d) => d[0] === "/image"));
  // The newest image is still there when the client reads again.
  while (sink.sent.length < 1 + small.queued + image.queued) sink.flushOne();
  const labels = sink.labels();
  assert.ok(labels.includes("i24"));
  assert.ok(labels.includes("s24"));
});

test("a topic's own oldest message goes when it alone passes the budget", () => {
  const sink = new HeldSink();
  const box = new Outbox(sink, LIMITS, { onDrop: () => {}, onOverflow: () => {} });
  for (let i = 0; i < 20; i++) box.data("/a", [frame(`a${i}`, 200)], 200);
  const st = box.stats();
  assert.ok(st.queuedBytes + st.inFlightBytes <= LIMITS.budgetBytes, JSON.stringify(st));
  assert.equal(st.keys["/a"]!.dropped, 20 - 1 - st.keys["/a"]!.queued);
});

test("only the newest time frame waits", () => {
  const sink = new HeldSink();
  const box = new Outbox(sink, LIMITS, { onDrop: () => {}, onOverflow: () => {} });
  box.data("/a", [frame("a", 100)], 100);
  box.time(frame("t1", 9));
  box.time(frame("t2", 9));
  sink.flushOne();
  sink.flushOne();
  assert.deepEqual(sink.labels(), ["a", "t2"]);
});

test("control frames past their budget report an overflow once", () => {
  const sink = new HeldSink();
  let overflows = 0;
  const box = new Outbox(sink, LIMITS, { onDrop: () => {}, onOverflow: () => overflows++ });
  for (let i = 0; i < 100; i++) box.control("x".repeat(50));
  assert.equal(overflows, 1);
});

test("removeKey forgets a topic's queue without counting drops; close sends nothing more", () => {
  const sink = new HeldSink();
  const box = new Outbox(sink, LIMITS, { onDrop: () => {}, onOverflow: () => {} });
  box.data("/a", [frame("a0", 100)], 100);
  box.data("/a", [frame("a1", 100)], 100);
  box.data("/b", [frame("b0", 100)], 100);
  box.removeKey("/a");
  assert.equal(box.stats().queuedBytes, 100);
  assert.equal(box.stats().keys["/a"], undefined);
  box.close();
  sink.flushOne();
  assert.equal(sink.sent.length, 1);
});

test("a sink that completes at once does not recurse", () => {
  const sent: string[] = [];
  const box = new Outbox({ send: (frames, done) => (sent.push(String(frames[0])), done()) }, LIMITS, {
    onDrop: () => {},
    onOverflow: () => {},
  });
  for (let i = 0; i < 10000; i++) box.control(`c${i}`);
  assert.equal(sent.length, 10000);
});
