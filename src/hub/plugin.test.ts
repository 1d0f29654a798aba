import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHubProcess, type HubPlugin } from "./plugin.js";

function runtime(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "myelin-plugin-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A plugin that records its start and close in `events`, or fails to start. */
function plugin(
  name: string,
  events: string[],
  opts: { fail?: boolean; optional?: boolean } = {},
): HubPlugin {
  return {
    name,
    ...(opts.optional !== undefined ? { optional: opts.optional } : {}),
    start(ctx) {
      if (opts.fail === true) return Promise.reject(new Error(`${name} cannot start`));
      events.push(
        `start ${name} (before: ${["a", "b", "c"].filter((n) => ctx.plugin(n) !== undefined).join(",")})`,
      );
      return Promise.resolve({
        close: () => {
          events.push(`close ${name}`);
          return Promise.resolve();
        },
        status: () => ({ name }),
      });
    },
  };
}

test("plugins start in order, see the ones before them, and close in reverse", async (t) => {
  const events: string[] = [];
  const proc = await startHubProcess({
    hub: { runtimeDir: runtime(t) },
    plugins: [plugin("a", events), plugin("b", events), plugin("c", events)],
  });
  assert.deepEqual([...proc.plugins.keys()], ["a", "b", "c"]);
  assert.deepEqual(proc.plugins.get("b")?.status?.(), { name: "b" });
  await proc.close();
  await proc.close(); // idempotent
  assert.deepEqual(events, [
    "start a (before: )",
    "start b (before: a)",
    "start c (before: a,b)",
    "close c",
    "close b",
    "close a",
  ]);
  assert.equal(await proc.stopped, "closed");
});

test("an optional plugin that fails is logged and skipped; a required one stops the start", async (t) => {
  const events: string[] = [];
  const lines: string[] = [];
  const dir = runtime(t);
  const proc = await startHubProcess({
    hub: { runtimeDir: dir },
    log: (l) => lines.push(l),
    plugins: [plugin("a", events), plugin("b", events, { fail: true, optional: true }), plugin("c", events)],
  });
  assert.deepEqual([...proc.plugins.keys()], ["a", "c"]);
  assert.ok(
    lines.some((l) => /b: not started, the hub runs without it: b cannot start/.test(l)),
    lines.join("\n"),
  );
  await proc.close();

  events.length = 0;
  await assert.rejects(
    startHubProcess({
      hub: { runtimeDir: dir },
      plugins: [plugin("a", events), plugin("b", events, { fail: true })],
    }),
    /b cannot start/,
  );
  assert.deepEqual(events, ["start a (before: )", "close a"], "what started before is closed again");
  // The registry was closed too: another hub can take the runtime directory.
  const again = await startHubProcess({ hub: { runtimeDir: dir } });
  await again.close();
});

test("a plugin given twice is refused, naming it; requestStop and the signal end the process", async (t) => {
  const dir = runtime(t);
  await assert.rejects(
    startHubProcess({ hub: { runtimeDir: dir }, plugins: [plugin("a", []), plugin("a", [])] }),
    { code: "ERR_INVALID_ARGUMENT", message: /hub plugin .a. is given twice/ },
  );
  let stop: ((why: string) => void) | undefined;
  const proc = await startHubProcess({
    hub: { runtimeDir: dir },
    plugins: [
      {
        name: "stopper",
        start(ctx) {
          stop = ctx.requestStop;
          return Promise.resolve({ close: () => Promise.resolve() });
        },
      },
    ],
  });
  stop!("myelin down");
  assert.equal(await proc.stopped, "myelin down");
  await proc.close();
  const ac = new AbortController();
  const proc2 = await startHubProcess({ hub: { runtimeDir: dir }, signal: ac.signal });
  ac.abort();
  assert.equal(await proc2.stopped, "signal");
  await proc2.close();
});
