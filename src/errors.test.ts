import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ERROR_CODES, MyelinError, TimeoutError } from "./errors.js";

test("docs/errors.md lists exactly the codes in src/errors.ts", () => {
  const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  const documented = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)`/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), [...ERROR_CODES].sort());
});

test("errors carry their code, class name and cause", () => {
  const cause = new Error("socket closed");
  const err = new TimeoutError("ERR_TIMEOUT", "service /add did not answer within 5 ms", { cause });
  assert.ok(err instanceof MyelinError);
  assert.equal(err.code, "ERR_TIMEOUT");
  assert.equal(err.name, "TimeoutError");
  assert.equal(err.cause, cause);
});
