import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import { BUSY_HUB_TIMEOUT_MS, HUB_TIMEOUT_MS, hubTimeoutMs } from "./common.js";

function withEnv<R>(name: string, value: string | undefined, fn: () => R): R {
  const before = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

test("hubTimeoutMs: short without a running hub, longer when the pid file names a live one", () => {
  const dir = mkdtempSync(join(tmpdir(), "myelin-timeout-"));
  try {
    const inv = { positionals: [], values: { "runtime-dir": dir } };
    withEnv("MYELIN_HUB", undefined, () =>
      withEnv("MYELIN_HUB_TIMEOUT_MS", undefined, () => {
        assert.equal(hubTimeoutMs(inv), HUB_TIMEOUT_MS, "no pid file");
        writeFileSync(join(dir, "hub.pid"), "999999999\n");
        assert.equal(hubTimeoutMs(inv), HUB_TIMEOUT_MS, "a dead pid");
        writeFileSync(join(dir, "hub.pid"), "garbage\n");
        assert.equal(hubTimeoutMs(inv), HUB_TIMEOUT_MS, "an unreadable pid");
        writeFileSync(join(dir, "hub.pid"), `${process.pid}\n`);
        assert.equal(hubTimeoutMs(inv), BUSY_HUB_TIMEOUT_MS, "a live pid");
        const remote = { positionals: [], values: { "runtime-dir": dir, hub: "tcp://127.0.0.1:1" } };
        assert.equal(hubTimeoutMs(remote), HUB_TIMEOUT_MS, "a remote hub has no pid file here");
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hubTimeoutMs: MYELIN_HUB_TIMEOUT_MS wins and a bad value names the fix", () => {
  const inv = { positionals: [], values: {} };
  withEnv("MYELIN_HUB_TIMEOUT_MS", "7500", () => assert.equal(hubTimeoutMs(inv), 7500));
  for (const bad of ["0", "-5", "1.5", "soon"]) {
    withEnv("MYELIN_HUB_TIMEOUT_MS", bad, () =>
      assert.throws(
        () => hubTimeoutMs(inv),
        (e: unknown) =>
          e instanceof MyelinError &&
          e.code === "ERR_INVALID_ARGUMENT" &&
          /MYELIN_HUB_TIMEOUT_MS=5000/.test(e.message),
      ),
    );
  }
});
