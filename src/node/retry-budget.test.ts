import { test } from "node:test";
import assert from "node:assert/strict";
import { RetryBudget, resolveRetryBudgetOptions } from "./retry-budget.js";

test("retry budget allows a burst, then about ratio retries per call", () => {
  const b = new RetryBudget({ ratio: 0.25, burst: 2 });
  assert.equal(b.withdraw(), true);
  assert.equal(b.withdraw(), true);
  assert.equal(b.withdraw(), false);
  assert.equal(b.refused, 1);
  for (let i = 0; i < 3; i++) b.deposit();
  assert.equal(b.withdraw(), false, "3 calls at 0.25 earn less than one retry");
  b.deposit();
  assert.equal(b.withdraw(), true);
  for (let i = 0; i < 100; i++) b.deposit();
  assert.equal(b.tokens, 2, "never more than burst");
});

test("retry budget options are checked", () => {
  assert.deepEqual(resolveRetryBudgetOptions({}, "x"), { ratio: 0.2, burst: 10 });
  assert.throws(
    () => resolveRetryBudgetOptions({ ratio: 2 }, "x"),
    /retryBudget.ratio must be a number from 0 to 1/,
  );
  assert.throws(() => resolveRetryBudgetOptions({ burst: 1.5 }, "x"), /retryBudget.burst must be an integer/);
});
