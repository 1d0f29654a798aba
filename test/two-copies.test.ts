/**
 * Two copies of Myelin's code in one process behave as one: copy A is the build under dist/src/
 * (what the CLI and the hub import), copy B a copy of that tree in a temp directory (standing in
 * for the bundle users import, or a second install). Types, the type registry, errors, in-process
 * delivery, the ZAP responder and the shared-memory counters are the same to both.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as A from "../src/index.js";
import type { ErrorClassName } from "../src/errors.js";
import * as aCodec from "../src/codec/index.js";
import * as aNode from "../src/node/node.js";
import * as aPolicy from "../src/node/access-policy.js";
import * as aShm from "../src/transport/shm/shm-writer.js";
import * as aZap from "../src/transport/zmq/zap-handler.js";
import { Proc, tempRuntime } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DIST_SRC = fileURLToPath(new URL("../src/", import.meta.url));

let dir = "";
let B: typeof A;
let bNode: typeof aNode;
let bPolicy: typeof aPolicy;
let bShm: typeof aShm;
let bZap: typeof aZap;

/** Imports module `rel` (relative to dist/src/) of copy B. */
async function importB<M>(rel: string): Promise<M> {
  return (await import(pathToFileURL(join(dir, "dist", "src", rel)).href)) as M;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "myelin-two-copies-"));
  cpSync(DIST_SRC, join(dir, "dist", "src"), {
    recursive: true,
    filter: (src) => !src.endsWith(".test.js") && !src.endsWith(".map"),
  });
  // Bare imports (zeromq, msgpack…) and the shared-memory addon resolve as from the repository.
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  if (existsSync(join(ROOT, "native"))) symlinkSync(join(ROOT, "native"), join(dir, "native"), "dir");
  B = await importB<typeof A>("index.js");
  bNode = await importB<typeof aNode>("node/node.js");
  bPolicy = await importB<typeof aPolicy>("node/access-policy.js");
  bShm = await importB<typeof aShm>("transport/shm/shm-writer.js");
  bZap = await importB<typeof aZap>("transport/zmq/zap-handler.js");
});

after(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

test("copy B is another copy: its own classes and functions", () => {
  assert.notEqual(B.MyelinError, A.MyelinError);
  assert.notEqual(B.defineMessage, A.defineMessage);
  assert.notEqual(bNode.Node, aNode.Node);
});

test("a type defined by one copy is a type to the other: checks, nesting, validation, codecs", () => {
  const Reading = B.defineMessage("two_copies/Reading", {
    id: B.t.u32(),
    value: B.t.f64({ default: 1.5 }),
    big: B.t.u64(),
    note: B.t.optional(B.t.string()),
  });
  assert.ok(A.isMessageType(Reading));
  const Srv = B.defineService("two_copies/Echo", { x: B.t.i32() }, { y: B.t.i32() });
  assert.ok(A.isServiceType(Srv));
  // A's builders take B's fields and types, and the other way round.
  const Batch = A.defineMessage("two_copies/Batch", {
    first: A.t.msg(Reading),
    rest: A.t.array(A.t.msg(Reading), { maxLength: 4 }),
    tag: B.t.optional(A.t.string()),
  });
  const Wrapped = B.defineMessage("two_copies/Wrapped", { batch: B.t.msg(Batch), n: A.t.u8() });
  // create() leaves an optional field of the other copy absent.
  const made = Batch.create({ first: { id: 1 } });
  assert.equal("tag" in made, false);
  assert.equal("note" in made.first, false);
  assert.equal(made.first.value, 1.5);
  assert.deepEqual(Wrapped.validate({ batch: made, n: 3 }), { ok: true });
  const bad = Wrapped.validate({ batch: { ...made, rest: [{ id: -1, value: 0, big: 0n }] }, n: 3 });
  assert.equal(bad.ok, false);
  assert.deepEqual(!bad.ok && bad.errors.map((e) => e.path), ["batch.rest[0].id"]);
  // A's codecs encode and decode B's types.
  const msg = Reading.create({ id: 7, value: -2.25, big: 2n ** 63n, note: "hi" });
  const bytes = A.msgpackCodec.encode(msg);
  assert.deepEqual(aCodec.decodeCompiled(Reading, bytes), msg);
  assert.deepEqual(A.fromJson(Reading, A.toJson(Reading, msg)), msg);
  assert.deepEqual(A.toJson(Reading, msg), { id: 7, value: -2.25, big: "9223372036854775808", note: "hi" });
});

test("the type registry is one: registered through B, found through A", () => {
  const Pose = B.defineMessage("two_copies/Pose", { x: B.t.f64(), y: B.t.f64() });
  B.registerType(Pose);
  assert.equal(A.lookupType("two_copies/Pose"), Pose);
  const Trigger = B.defineService("two_copies/Trigger", {}, { ok: B.t.bool() });
  B.registerType(Trigger);
  assert.equal(A.lookupService("two_copies/Trigger"), Trigger);
  assert.ok(A.listTypes().includes("two_copies/Trigger_Request"));
  // An identical definition from A is accepted; another one is refused, with A's error class.
  A.registerType(A.defineMessage("two_copies/Pose", { x: A.t.f64(), y: A.t.f64() }));
  assert.throws(
    () => A.registerType(A.defineMessage("two_copies/Pose", { x: A.t.f64() })),
    (e: unknown) => e instanceof B.TypeMismatchError && e instanceof A.TypeMismatchError,
  );
});

test("errors of one copy are instances of the other's classes, of the right class only", () => {
  // Every error class: the base and each class a code is thrown as.
  const classes = [...new Set<ErrorClassName>(["MyelinError", ...Object.values(A.ERROR_CLASS_OF)])];
  assert.ok(classes.length >= 8, `only ${classes.length} error classes found: ${classes.join(", ")}`);
  for (const [from, to] of [
    [B, A],
    [A, B],
  ] as const) {
    for (const code of A.ERROR_CODES) {
      const err = from.myelinError(code, `about ${code}`);
      const own = A.ERROR_CLASS_OF[code];
      for (const name of classes) {
        const expected = name === "MyelinError" || name === own;
        assert.equal(err instanceof to[name], expected, `${code} (a ${own}) instanceof ${name}`);
      }
      assert.equal(err.name, own);
      assert.equal(err instanceof Error, true);
    }
  }
  // Thrown for real by the other copy's code.
  const Reading = B.defineMessage("two_copies/Strict", { id: B.t.u8() });
  assert.throws(
    () => Reading.assert({ id: 300 }),
    (e: unknown) => e instanceof A.ValidationError && e.code === "ERR_VALIDATION",
  );
  assert.throws(
    () => B.t.array({ kind: "bool" } as never),
    (e: unknown) => e instanceof A.MyelinError && !(e instanceof A.ValidationError),
  );
  // Nothing else is: plain errors, look-alikes, non-objects.
  for (const name of classes) {
    const cls = A[name];
    assert.equal(new Error("x") instanceof cls, false);
    assert.equal(Object.assign(new Error("x"), { name, code: "ERR_TIMEOUT" }) instanceof cls, false);
    assert.equal((null as unknown) instanceof cls, false);
    assert.equal(("ERR_TIMEOUT" as unknown) instanceof cls, false);
  }
  // A user's subclass of one copy's class keeps working.
  class AppError extends B.TimeoutError {}
  const app = new AppError("ERR_TIMEOUT", "slow");
  assert.ok(app instanceof A.TimeoutError && app instanceof A.MyelinError && app instanceof AppError);
  assert.equal(new A.TimeoutError("ERR_TIMEOUT", "x") instanceof AppError, false);
});

test(
  "nodes of both copies deliver to each other in memory, through one hub",
  { timeout: 30000 },
  async () => {
    assert.equal(bNode.PROCESS_ID, aNode.PROCESS_ID);
    using rt = tempRuntime();
    await using _hub = await A.Hub.start({ runtimeDir: rt.dir });
    const a = await A.createNode({ name: "copy_a", runtimeDir: rt.dir });
    const b = await B.createNode({ name: "copy_b", runtimeDir: rt.dir });
    try {
      const Reading = B.defineMessage("two_copies/Live", { id: B.t.u32(), note: B.t.optional(B.t.string()) });
      const got: { id: number; note?: string }[] = [];
      let arrived!: () => void;
      const third = new Promise<void>((resolve) => (arrived = resolve));
      await b.createSubscription("/two_copies/live", Reading, (m) => {
        got.push(m);
        if (got.length === 3) arrived();
      });
      const pub = await a.createPublisher("/two_copies/live", Reading, { qos: { reliability: "reliable" } });
      await pub.waitForSubscribers(1, 5000);
      for (let id = 1; id <= 3; id++) await pub.publish(id === 2 ? { id, note: "two" } : { id });
      await withTimeout(third, 5000, "three messages from copy A's node at copy B's subscription");
      assert.deepEqual(got, [{ id: 1 }, { id: 2, note: "two" }, { id: 3 }]);

      // A service of copy B's node, called from copy A's node: in this process, so in memory.
      const Echo = A.defineService("two_copies/Echo2", { x: A.t.i32() }, { y: A.t.i32() });
      const identities: string[] = [];
      await b.createService("/two_copies/echo", Echo, (req, ctx) => {
        identities.push(ctx.identity);
        if (req.x < 0) throw new B.MyelinError("ERR_INVALID_ARGUMENT", "x must be >= 0");
        return { y: req.x * 2 };
      });
      const client = a.createClient("/two_copies/echo", Echo);
      assert.deepEqual(await client.call({ x: 21 }, { timeoutMs: 5000 }), { y: 42 });
      await assert.rejects(
        client.call({ x: -1 }, { timeoutMs: 5000 }),
        (e: unknown) => e instanceof A.MyelinError,
      );
      assert.deepEqual(identities, ["process", "process"]);
    } finally {
      await b.close();
      await a.close();
    }
  },
);

test("one ZAP responder per process, whichever copy opens it", { timeout: 20000 }, async () => {
  const allow = (): { ok: true } => ({ ok: true });
  const first = await aZap.registerZapDomain(allow);
  // Without one shared responder, B would find inproc://zeromq.zap.01 taken and throw.
  const second = await bZap.registerZapDomain(allow);
  assert.notEqual(first.domain, second.domain);
  await first.release();
  await second.release();
  // Closed by whichever copy released last: it opens again for the other.
  const again = await bZap.registerZapDomain(allow);
  await again.release();
});

test("services delegated through one copy are delegated for the other", () => {
  const policy = new A.AccessPolicy({ source: "test", admins: [], grants: [] });
  assert.equal(policy.check("anonymous", "call", "/_two_copies/ask").allowed, false);
  bPolicy.delegateServiceCheck("/_two_copies/ask");
  assert.equal(policy.check("anonymous", "call", "/_two_copies/ask").allowed, true);
});

test("one shared-memory writer per process: both copies report the same counters", () => {
  assert.equal(bShm.ShmWriter.forProcess(), aShm.ShmWriter.forProcess());
  const a = A.shmStats();
  const b = B.shmStats();
  assert.equal(b.available, a.available);
  assert.deepEqual(b.writer, a.writer);
  assert.deepEqual(b.reader, a.reader);
});

/** `p`, or a rejection naming `what` after `ms`. */
async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A node module reporting whether its node is an instance of the `Node` class of module `api`. */
const reportingModule = (api: string): string => `
import { Node } from ${JSON.stringify(pathToFileURL(api).href)};
export default async function (node) {
  console.log(JSON.stringify({ event: "started", same: node instanceof Node }));
}
`;

test("the module runner makes its node with the package entry, or with its own modules where there is none", async () => {
  using rt = tempRuntime();
  const hub = await A.Hub.start({ runtimeDir: rt.dir });
  try {
    const cases = [
      // This build: the package entry next to dist/src is what user modules import.
      { runner: join(DIST_SRC, "orchestrator", "runner.js"), api: join(DIST_SRC, "..", "pkg", "myelin.js") },
      // Copy B has no dist/pkg (as after `tsc` alone): its runner falls back to its own modules.
      {
        runner: join(dir, "dist", "src", "orchestrator", "runner.js"),
        api: join(dir, "dist", "src", "node", "node.js"),
      },
    ];
    for (const [i, c] of cases.entries()) {
      const mod = join(rt.dir, `reporting-${i}.mjs`);
      writeFileSync(mod, reportingModule(c.api));
      const launch = JSON.stringify({
        modules: [{ node: `two_copies_runner_${i}`, path: mod, export: "default", args: [], parameters: {} }],
        replica: 0,
      });
      await using runner = new Proc(c.runner, [], { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_LAUNCH: launch });
      const line = await runner.waitFor((l) => l.event === "started", 30_000, "the module's report");
      assert.equal(line["same"], true, `${c.runner}: the node is not made by ${c.api}`);
    }
  } finally {
    hub.close();
  }
});
