import { test } from "node:test";
import assert from "node:assert/strict";
import { AlarmBook } from "./alarms.js";

const down = { kind: "process-down", subject: "detector#1", severity: "error" as const, message: "down" };

test("an alarm is raised once, updated in place, and cleared into the history", () => {
  const book = new AlarmBook(2);
  assert.equal(book.update("ps", [down], 1000), true);
  assert.equal(book.update("ps", [down], 2000), false);
  assert.deepEqual(
    book.active().map((a) => [a.id, a.since]),
    [["ps:process-down:detector#1", 1000]],
  );
  assert.equal(book.update("ps", [{ ...down, message: "backoff" }], 2500), true);
  assert.equal(book.active()[0]!.message, "backoff");
  assert.equal(book.update("ps", [], 3000), true);
  assert.deepEqual(book.active(), []);
  assert.equal(book.history()[0]!.clearedAt, 3000);
  assert.equal(book.history()[0]!.since, 1000);
});

test("sources are independent and the history is bounded", () => {
  const book = new AlarmBook(2);
  book.update("ps", [down], 1);
  book.update("bridges", [{ ...down, kind: "bridge-down", subject: "b" }], 1);
  book.update("ps", [], 2);
  assert.deepEqual(
    book.active().map((a) => a.source),
    ["bridges"],
  );
  for (let i = 0; i < 5; i++) {
    book.update("ps", [down], 10 + i);
    book.update("ps", [], 10 + i);
  }
  assert.equal(book.history().length, 2);
});
