/**
 * What an idle node loads: a program that imports the public API, starts a hub and a node with one
 * subscription loads none of the libraries only the gateway, the bridges, the uplink, the web
 * servers, the recorder or config files need (they are required on first use). A child process
 * reports every module it loaded, ES modules through a loader hook and CommonJS ones from the
 * require cache; the test checks the package names, not sizes or times.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as api from "../src/index.js";
import { Hub } from "../src/hub/index.js";
import { shmStats } from "../src/transport/shm/shm-stats.js";
import { unixTransport } from "../src/transport/unix/unix-transport.js";
import { zmqTransport } from "../src/transport/zmq/zmq-transport.js";
import { runModuleProgram, tempRuntime } from "./helpers.js";

const INDEX = fileURLToPath(new URL("../src/index.js", import.meta.url));
/** The package entry, `import … from "myelin"` (scripts/bundle.mjs). */
const ENTRY = fileURLToPath(new URL("../pkg/myelin.js", import.meta.url));

/** Packages an idle node (public API, hub, node, subscription) must not load. */
const NOT_LOADED = [
  "yaml",
  "nats",
  "mqtt",
  "amqplib",
  "kafkajs",
  "ws",
  "aedes",
  "@foxglove/wasm-zstd",
  "@foxglove/wasm-lz4",
  "@foxglove/ws-protocol",
  "@mcap/core",
  "kubernetes-models",
  "prom-client",
];

// The loader hook records every ES module URL in an array on the main thread's side of a port.
const HOOK = `
let port;
export function initialize(data) { port = data.port; }
export async function load(url, context, next) { port.postMessage(url); return next(url, context); }
`;

/** A program that records what it loads; it starts its own hub unless `withHub` is false. */
const program = (withHub: boolean, entry = INDEX, roundTrip = false): string => `
import { register } from "node:module";
import Module from "node:module";
import { MessageChannel } from "node:worker_threads";
const { port1, port2 } = new MessageChannel();
const esm = [];
port1.on("message", (u) => esm.push(u));
port1.unref();
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)}, {
  data: { port: port2 },
  transferList: [port2],
});
const m = await import(${JSON.stringify(entry)});
const hub = ${withHub ? "await m.Hub.start({ runtimeDir: process.env.MYELIN_RUNTIME_DIR })" : "undefined"};
const node = await m.createNode({ name: "idle" });
const T = m.defineMessage("footprint_test/Bytes", { data: m.t.bytes() });
let got;
const arrived = new Promise((r) => (got = r));
await node.createSubscription("/footprint/idle", T, (msg) => got(msg.data.length));
${roundTrip ? "const pub = await node.createPublisher('/footprint/idle', T); await pub.waitForSubscribers(1, 10000); await pub.publish({ data: new Uint8Array(3 << 20) }); if (await arrived !== 3 << 20) throw new Error('the message arrived changed');" : ""}
await new Promise((r) => setImmediate(r));
const shm = m.shmStats().available;
await node.close();
hub?.close();
const cjs = Object.keys(Module._cache);
process.stdout.write(JSON.stringify({ files: [...esm, ...cjs], shm }));
`;

/** The npm package a loaded file or URL belongs to, if any. */
function packageOf(file: string): string | undefined {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(decodeURIComponent(file));
  return m?.[1];
}

/** Runs the program (with its own hub) with `env` added; the files and URLs of every module it loaded. */
async function loadedBy(env: Record<string, string>): Promise<string[]> {
  using rt = tempRuntime();
  return (
    JSON.parse(await runModuleProgram(program(true), { MYELIN_RUNTIME_DIR: rt.dir, ...env })) as {
      files: string[];
    }
  ).files;
}

/** True when one of `files` is the compiled module `rel` of this project (e.g. `transport/unix/unix-transport.js`). */
function hasModule(files: readonly string[], rel: string): boolean {
  return files.some((f) => decodeURIComponent(f).endsWith(`/src/${rel}`));
}

test("an idle node loads none of the gateway, bridge, web, recorder or YAML libraries", async () => {
  const files = await loadedBy({});
  const packages = new Set(files.map(packageOf).filter((p): p is string => p !== undefined));
  // The check sees packages at all: the node needs msgpackr.
  assert.ok(packages.has("msgpackr"), `msgpackr not among the loaded packages: ${[...packages].join(", ")}`);
  const loaded = NOT_LOADED.filter((p) => packages.has(p));
  assert.deepEqual(
    loaded,
    [],
    `an idle node loaded ${loaded.join(", ")}; require it on first use (see src/codec/yaml.ts, src/gateway/libs.ts)`,
  );
});

test("a node whose ipc:// goes over the Unix carrier does not load zeromq", async () => {
  const files = await loadedBy({ MYELIN_IPC_TRANSPORT: "unix" });
  assert.ok(hasModule(files, "transport/unix/unix-transport.js"), "the Unix carrier was not loaded");
  const packages = new Set(files.map(packageOf));
  assert.ok(
    !packages.has("zeromq") && !hasModule(files, "transport/zmq/zmq-transport.js"),
    "zeromq was loaded by a node using only the Unix carrier; import it on first use (src/transport/carriers.ts)",
  );
});

test("a node whose ipc:// goes over ZeroMQ does not load the Unix carrier", async () => {
  const files = await loadedBy({ MYELIN_IPC_TRANSPORT: "zeromq" });
  const packages = new Set(files.map(packageOf));
  assert.ok(packages.has("zeromq"), "zeromq was not loaded");
  assert.ok(
    !hasModule(files, "transport/unix/unix-transport.js"),
    "the Unix carrier was loaded by a node using ZeroMQ; import it on first use (src/transport/carriers.ts)",
  );
});

/** Modules of the hub, the store, the supervisor and the gateway that only their `start()` loads. */
const STARTED_ONLY = [
  "hub/hub.js",
  "hub/federation.js",
  "store/service.js",
  "store/log.js",
  "orchestrator/supervisor.js",
  "gateway/mqtt-gateway.js",
  "gateway/bridge-host.js",
  "gateway/bridge.js",
  "gateway/uplink.js",
];

test("a program that imports the public API and makes a node evaluates none of the hub, store, supervisor or gateway", async () => {
  using rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir });
  try {
    const { files } = JSON.parse(await runModuleProgram(program(false), { MYELIN_RUNTIME_DIR: rt.dir })) as {
      files: string[];
    };
    assert.ok(
      hasModule(files, "node/node.js"),
      "the check sees the project's modules: node/node.js is not among them",
    );
    const loaded = STARTED_ONLY.filter((m) => hasModule(files, m));
    assert.deepEqual(
      loaded,
      [],
      `importing the package evaluated ${loaded.join(", ")}; export the class from its layer's *-api.ts module and load the implementation in start() (see src/hub/hub-api.ts)`,
    );
  } finally {
    hub.close();
  }
});

// A node alone (its hub runs elsewhere), made through the public API: what it loads of Node's own modules.
const NODE_PROGRAM = `
const m = await import(${JSON.stringify(INDEX)});
const n = await m.createNode({ name: "idle_alone" });
const T = m.defineMessage("footprint_test/Bytes", { data: m.t.bytes() });
await n.createSubscription("/footprint/alone", T, () => {});
await new Promise((r) => setImmediate(r));
await n.close();
process.stdout.write(JSON.stringify(process.moduleLoadList));
`;

test("an idle node over the Unix carrier does not load node:crypto (OpenSSL)", async () => {
  using rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir, transports: { ipc: unixTransport, tcp: zmqTransport } });
  try {
    const out = await runModuleProgram(NODE_PROGRAM, {
      MYELIN_RUNTIME_DIR: rt.dir,
      MYELIN_IPC_TRANSPORT: "unix",
    });
    const builtins = JSON.parse(out) as string[];
    assert.ok(builtins.includes("NativeModule net"), `the list sees Node's modules: ${builtins.join(", ")}`);
    const crypto = builtins.filter((m) => /crypto/.test(m));
    assert.deepEqual(
      crypto,
      [],
      "an idle node loaded node:crypto; take random bytes and the crypto module from src/transport/node-crypto.ts",
    );
  } finally {
    hub.close();
  }
});

test('import "myelin" resolves to the package entry, which exports every name of src/index.ts', async () => {
  assert.equal(import.meta.resolve("myelin"), pathToFileURL(ENTRY).href);
  const entry = (await import("myelin")) as Record<string, unknown>;
  assert.deepEqual(Object.keys(entry).sort(), Object.keys(api).sort());
});

test('a program that imports "myelin" and makes a node loads the package entry as a few modules, and it works', async () => {
  using rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir });
  try {
    const out = JSON.parse(
      await runModuleProgram(program(false, ENTRY, true), { MYELIN_RUNTIME_DIR: rt.dir }),
    ) as { files: string[]; shm: boolean };
    // JavaScript modules of this package (the shared-memory addon, a .node file, aside).
    const ours = out.files.filter(
      (f) => !f.startsWith("node:") && !f.endsWith(".node") && packageOf(f) === undefined,
    );
    const pkg = new URL("../pkg/", import.meta.url).href;
    const outside = ours.filter((f) => !f.startsWith(pkg) && !f.startsWith("data:"));
    assert.deepEqual(outside, [], "the package entry loaded modules of dist/src; see scripts/bundle.mjs");
    // The entry, the chunk of everything it loads up front, and the carrier (loaded on first use).
    assert.ok(
      ours.length <= 3,
      `the package entry is ${ours.length} modules (${ours.join(", ")}); keep what a node needs up front in one chunk (scripts/bundle.mjs)`,
    );
    // The shared-memory addon is found from dist/pkg as from dist/src (a 3 MiB frame went through it).
    assert.equal(out.shm, shmStats().available);
  } finally {
    hub.close();
  }
});
