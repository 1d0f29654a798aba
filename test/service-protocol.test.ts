/** Service protocols: defineProtocol, serveProtocol and protocolClient against a real hub. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../src/hub/index.js";
import { defineService, t } from "../src/msgs/index.js";
import { createNode, defineProtocol, graphServes, protocolClient, serveProtocol } from "../src/node/index.js";
import { tempRuntime } from "./helpers.js";

const Add = defineService("test_protocol/Add", { a: t.i32(), b: t.i32() }, { sum: t.i32() });
const Echo = defineService("test_protocol/Echo", { text: t.string() }, { text: t.string() });

const CALC = defineProtocol({
  add: { service: "/_test_calc/add", type: Add, idempotent: true },
  echo: { service: "/_test_calc/echo", type: Echo },
});

test("defineProtocol refuses reserved method names, bad service names, non-service types and shared names", () => {
  const bad = (spec: unknown, pattern: RegExp): void =>
    assert.throws(
      () => defineProtocol(spec as Parameters<typeof defineProtocol>[0]),
      (e: Error) => {
        assert.equal((e as { code?: string }).code, "ERR_INVALID_ARGUMENT");
        assert.match(e.message, pattern);
        return true;
      },
    );
  bad({ close: { service: "/_x/close", type: Add } }, /method close: the name is reserved/);
  bad(
    { add: { service: "_x/add", type: Add } },
    /method add: service "_x\/add" is not an absolute service name/,
  );
  bad({ add: { service: "/_x/add", type: Add.request } }, /\/_x\/add\): type must be a service type/);
  bad(
    { add: { service: "/_x/add", type: Add }, sum: { service: "/_x/add", type: Add } },
    /method sum: service \/_x\/add is already the service of method add/,
  );
  assert.ok(Object.isFrozen(CALC) && Object.isFrozen(CALC.add));
  if (false as boolean) {
    // @ts-expect-error a reserved method name does not compile either
    defineProtocol({ close: { service: "/_x/close", type: Add } });
    // @ts-expect-error nor does a method without a service type
    defineProtocol({ add: { service: "/_x/add" } });
  }
});

test("a protocol served on one node is called through its typed client on another", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using server = await createNode({ name: "calc", runtimeDir: rt.dir });
  await using caller = await createNode({ name: "caller", runtimeDir: rt.dir });

  const served = await serveProtocol(server, CALC, {
    add: (req) => ({ sum: req.a + req.b }),
    echo: (req, ctx) => ({ text: `${req.text} from ${ctx.caller === "" ? "?" : "caller"}` }),
  });
  assert.deepEqual(
    served.servers.map((s) => s.name),
    ["/_test_calc/add", "/_test_calc/echo"],
  );
  const g = await caller.waitForGraph((x) => graphServes(x, CALC.add) && graphServes(x, CALC.echo), 5000);
  // The idempotent flag travels with the declaration.
  const decl = g.nodes.find((n) => n.name === "calc")!.services.find((s) => s.service === "/_test_calc/add");
  assert.equal(decl?.idempotent, true);

  const calc = protocolClient(caller, CALC, { timeoutMs: 3000 });
  assert.equal(await calc.waitForServer("add", 3000), true);
  assert.deepEqual(await calc.add({ a: 2, b: 40 }), { sum: 42 });
  assert.deepEqual(await calc.echo({ text: "hi" }, { timeoutMs: 2000 }), { text: "hi from caller" });
  assert.equal(calc.serviceOf("add").timeoutMs, 3000);

  if (false as boolean) {
    // Requests and replies are typed from the service types: these lines must not compile.
    // @ts-expect-error a field of the wrong type
    await calc.add({ a: "2", b: 40 });
    // @ts-expect-error a missing field
    await calc.echo({});
    // @ts-expect-error no such method
    await calc.multiply({ a: 1, b: 2 });
    // @ts-expect-error the reply of add has no text
    assert.equal((await calc.add({ a: 1, b: 2 })).text, "");
    // @ts-expect-error a handler must return the reply type
    await serveProtocol(server, CALC, { add: () => ({ total: 1 }), echo: (r) => r });
    // @ts-expect-error every method needs a handler
    await serveProtocol(server, CALC, { add: (r) => ({ sum: r.a }) });
  }

  // A request that does not match the type is refused before it is sent.
  await assert.rejects(calc.add({ a: 1.5, b: 0 }), { code: "ERR_VALIDATION" });

  // Closing the servers removes the services; the client then finds no server.
  served.close();
  await caller.waitForGraph((x) => !graphServes(x, CALC.add), 5000);
  await assert.rejects(calc.add({ a: 1, b: 1 }), { code: "ERR_NO_SERVER" });

  // A closed client refuses further calls.
  calc.close();
  await assert.rejects(calc.echo({ text: "late" }), { code: "ERR_CLOSED" });
});

test("serveProtocol serves all of a protocol or none of it", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using other = await createNode({ name: "other", runtimeDir: rt.dir });
  await using node = await createNode({ name: "calc2", runtimeDir: rt.dir });

  const onlyAdd = { add: (r: { a: number; b: number }) => ({ sum: r.a + r.b }) };
  await assert.rejects(serveProtocol(node, CALC, onlyAdd as never), {
    code: "ERR_INVALID_ARGUMENT",
    message: /serving \/_test_calc\/echo on node calc2: no handler for method echo/,
  });

  // Another node serves /_test_calc/echo with another type: the hub refuses the declaration, and
  // the method served meanwhile is stopped again.
  await other.createService("/_test_calc/echo", Add, (r) => ({ sum: r.a }));
  await node.waitForGraph((g) => graphServes(g, CALC.echo), 5000);
  await assert.rejects(serveProtocol(node, CALC, { add: (r) => ({ sum: r.a + r.b }), echo: (r) => r }), {
    code: "ERR_TYPE_MISMATCH",
  });
  const g = await node.queryGraph(3000);
  assert.equal(
    g.nodes.find((n) => n.name === "calc2")?.services.some((s) => s.service === CALC.add.service),
    false,
  );

  assert.throws(() => protocolClient(node, CALC, { timeoutMs: -1 }), {
    code: "ERR_INVALID_ARGUMENT",
    message: /client of \/_test_calc\/add: timeoutMs must be a number of milliseconds > 0/,
  });
});
