import { test } from "node:test";
import assert from "node:assert/strict";
import { CircuitBreaker, resolveBreakerOptions, type BreakerState } from "./circuit-breaker.js";

test("breaker opens after failureThreshold failures in a row, half-opens after openMs, closes on success", () => {
  const changes: BreakerState[] = [];
  const b = new CircuitBreaker({ failureThreshold: 3, openMs: 1000 }, (s) => changes.push(s));
  assert.equal(b.acquire(0), true);
  b.failure(0);
  b.failure(1);
  b.success(); // resets the run
  b.failure(2);
  b.failure(3);
  assert.equal(b.state(3), "closed");
  b.failure(4);
  assert.equal(b.state(4), "open");
  assert.equal(b.reopensAt, 1004);
  assert.equal(b.acquire(500), false);
  assert.equal(b.state(1004), "half-open");
  assert.equal(b.acquire(1004), true, "one probe goes through");
  assert.equal(b.acquire(1005), false, "only one probe at a time");
  b.success();
  assert.equal(b.state(1006), "closed");
  assert.deepEqual(changes, ["open", "half-open", "closed"]);
});

test("a failed probe opens the breaker again; release frees the probe; trip opens at once", () => {
  const b = new CircuitBreaker({ failureThreshold: 2, openMs: 100 });
  b.failure(0);
  b.failure(0);
  assert.equal(b.acquire(100), true);
  b.failure(100);
  assert.equal(b.state(150), "open");
  assert.equal(b.acquire(200), true);
  b.release();
  assert.equal(b.available(200), true);
  b.success();
  b.trip(300);
  assert.equal(b.state(300), "open");
  assert.equal(b.state(400), "half-open");
});

test("breaker options are checked with clear errors", () => {
  assert.deepEqual(resolveBreakerOptions(undefined, "x"), { failureThreshold: 5, openMs: 5000 });
  assert.throws(
    () => resolveBreakerOptions({ failureThreshold: 0 }, "client of /a"),
    /client of \/a: breaker.failureThreshold must be an integer >= 1, got 0/,
  );
  assert.throws(() => resolveBreakerOptions({ openMs: -1 }, "c"), /breaker.openMs must be/);
});
