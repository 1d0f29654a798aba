/**
 * Identities and permissions, tried as an attacker would: over plain tcp (identity `anonymous`)
 * and from another local process, against a hub with a policy file. Every attack of the
 * multi-host security issue is tried and refused — a fake store registration, `bye` and
 * re-registration for another node, topic injection against the policy, the store's and the
 * supervisor's services called by an identity that is no admin — and the same step by an
 * identity that may do it succeeds, so each check is shown able to fail.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { parsePolicy } from "../src/hub/policy-file.js";
import { createNode } from "../src/node/index.js";
import { myelin_msgs, std_msgs } from "../src/msgs/index.js";
import {
  decodeHubToNode,
  encodeControl,
  type HubToNode,
  type NodeRecord,
} from "../src/node/control-protocol.js";
import { DEFAULT_TRANSPORTS } from "../src/transport/default-transports.js";
import { transportFor, type Connection } from "../src/transport/transport.js";
import { spawnFixture, tempRuntime, type Proc } from "./helpers.js";
import { runCli, spawnCli, world } from "./cli-world.js";

// Attacks from the network are made over plain tcp (identity 'anonymous'): every hub here runs
// --insecure, and this process and its children speak plain text. CURVE refusals have their own tests.
process.env["MYELIN_INSECURE"] = "1";

const POLICY = `
identities:
  operators: local
  guests: anonymous
admins: [operators]
grants:
  - identity: guests
    publish: ["/telemetry/**"]
    subscribe: ["/status", "/telemetry/**"]
    serve: ["/guest/*"]
    call: ["/robot/info"]
`;

/** A raw control connection, as a hostile client would open one: sends messages, collects replies. */
class RawControl implements AsyncDisposable {
  readonly conn: Connection;
  readonly replies: HubToNode[] = [];
  #waiters = new Set<() => void>();
  constructor(endpoint: string) {
    // The carrier the hub serves this endpoint with (ipc:// and tcp:// may differ).
    const conn = transportFor(DEFAULT_TRANSPORTS, endpoint).connect(endpoint, { maxMessageBytes: 1 << 24 });
    this.conn = conn;
    void (async () => {
      for await (const frames of conn) {
        this.replies.push(decodeHubToNode(frames[0]!));
        for (const w of [...this.#waiters]) w();
      }
    })();
  }
  send(msg: Parameters<typeof encodeControl>[0]): void {
    this.conn.send([encodeControl(msg)]);
  }
  /** The first reply matching `pred` (already received or future). */
  reply<T extends HubToNode>(pred: (m: HubToNode) => m is T, timeoutMs = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.replies.find(pred);
        if (hit === undefined) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`no matching reply within ${timeoutMs} ms; got ${JSON.stringify(this.replies)}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.conn.close(0);
  }
}

const isRegistered =
  (req: number) =>
  (m: HubToNode): m is Extract<HubToNode, { t: "registered" }> =>
    m.t === "registered" && m.req === req;
const isError = (m: HubToNode): m is Extract<HubToNode, { t: "error" }> => m.t === "error";

test("registration: declarations the policy does not grant are refused, naming identity, permission and name; /_ services only from the hub's own process", async () => {
  using rt = tempRuntime();
  const policy = parsePolicy(POLICY, "policy.yaml");
  const log: string[] = [];
  await using hub = await Hub.start({
    insecure: true,
    runtimeDir: rt.dir,
    listen: ["tcp://127.0.0.1:0"],
    policy,
    log: (l) => log.push(l),
  });
  const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;

  // Over plain tcp: identity anonymous ("guests").
  await using guest = await createNode({ name: "guest", hub: tcp, runtimeDir: rt.dir });
  assert.equal(guest.identity, "anonymous");
  await assert.rejects(guest.createPublisher("/cmd_vel", std_msgs.String), (e: Error & { code?: string }) => {
    assert.equal(e.code, "ERR_NOT_AUTHORIZED");
    assert.match(e.message, /identity 'anonymous' has no 'publish' grant matching \/cmd_vel/);
    assert.match(e.message, /policy\.yaml/);
    assert.match(e.message, /\/telemetry\/\*\*/); // what it may publish
    return true;
  });
  await guest.createPublisher("/telemetry/battery", std_msgs.String); // granted
  await guest
    .createService("/guest/ping", myelin_msgs.StoreInfo, () => ({}) as never)
    .catch(() => {
      throw new Error("a granted serve was refused");
    });
  // The fake store: refused however the policy reads, for any process but the hub's.
  await assert.rejects(
    guest.createService("/_store/append", myelin_msgs.StoreAppend, () => ({}) as never),
    (e: Error & { code?: string }) =>
      e.code === "ERR_NOT_AUTHORIZED" && /only by the hub's own plugins/.test(e.message),
  );
  assert.ok(!hub.graph().nodes.some((n) => n.services.some((s) => s.service === "/_store/append")));
  assert.ok(
    log.some((l) => /refused pub \/cmd_vel of node guest/.test(l)),
    log.join("\n"),
  );

  // A node of this process over ipc is one of the hub's own: it may serve /_store/append.
  await using own = await createNode({ name: "own", runtimeDir: rt.dir });
  assert.equal(own.identity, "hub");
  await own.createService("/_store/append", myelin_msgs.StoreAppend, () => ({}) as never);

  // Another process on this host (identity local, an admin) may do everything but serve /_ names.
  const other = spawnFixture(
    "perm-proc",
    {
      role: "attacker",
      actions: [
        { kind: "serve", name: "/_store/append", type: "myelin_msgs/StoreAppend" },
        { kind: "publish", name: "/cmd_vel" },
      ],
    },
    { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_HUB: "" },
  );
  await using _o = other;
  await other.waitFor((l) => l.event === "done", 20000, "the local process's attempts");
  const results = other.lines.filter((l) => l.event === "result");
  assert.equal(results[0]!["code"], "ERR_NOT_AUTHORIZED", JSON.stringify(results[0]));
  assert.match(String(results[0]!["message"]), /identity 'local' may not serve \/_store\/append/);
  assert.equal(results[1]!["code"], "ok", JSON.stringify(results[1]));
  assert.ok(hub.refusals.declarations >= 3);
});

test("ownership: bye, heartbeat and re-registration for another connection's node are refused; the node itself reconnects with its secret", async () => {
  using rt = tempRuntime();
  const log: string[] = [];
  await using hub = await Hub.start({
    insecure: true,
    runtimeDir: rt.dir,
    listen: ["tcp://127.0.0.1:0"],
    log: (l) => log.push(l),
  });
  const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
  const ipc = hub.endpoints[0]!;
  const record = (id: string): NodeRecord => ({
    id,
    name: "victim",
    pid: 4242,
    host: "h",
    process: "p",
    endpoint: "ipc:///nowhere",
    startedAt: Date.now(),
    pubs: [],
    subs: [],
    services: [],
  });

  // The victim registers with its secret on its own connection.
  await using victim = new RawControl(ipc);
  victim.send({ v: 1, t: "register", node: record("victim-1"), req: 1, secret: "s3cret" });
  await victim.reply(isRegistered(1));
  assert.equal(hub.graph().nodes.length, 1);

  // bye for it from another connection (a network attacker): refused, logged, counted.
  await using attacker = new RawControl(tcp);
  attacker.send({ v: 1, t: "bye", id: "victim-1" });
  const err = await attacker.reply(isError);
  assert.match(err.message, /refused bye for node victim \(id victim-1\)/);
  assert.match(err.message, /this one is 'anonymous'/);
  assert.equal(hub.graph().nodes.length, 1);
  assert.ok(log.some((l) => /refused bye/.test(l)));

  // Re-registration hijack: same id, another endpoint, with no secret or a wrong one.
  const hijacked = { ...record("victim-1"), endpoint: "tcp://10.6.6.6:1" };
  attacker.send({ v: 1, t: "register", node: hijacked, req: 7 });
  attacker.send({ v: 1, t: "register", node: hijacked, req: 8, secret: "guess" });
  for (const req of [7, 8]) {
    const r = await attacker.reply(isRegistered(req));
    assert.equal(r.refused[0]?.kind, "node");
    assert.equal(r.refused[0]?.code, "ERR_NOT_AUTHORIZED");
    assert.match(r.refused[0].message, /registered on another connection/);
  }
  // A local process that learned the id (same identity) and no secret: refused as well.
  await using localIntruder = new RawControl(ipc);
  localIntruder.send({ v: 1, t: "register", node: hijacked, req: 9 });
  assert.equal((await localIntruder.reply(isRegistered(9))).refused[0]?.kind, "node");
  assert.equal(hub.graph().nodes[0]!.endpoint, "ipc:///nowhere");

  // Heartbeats from another connection do not keep it alive: that connection is asked to register.
  attacker.send({ v: 1, t: "heartbeat", id: "victim-1" });
  await attacker.reply((m): m is Extract<HubToNode, { t: "reregister" }> => m.t === "reregister");
  assert.equal(hub.refusals.ownership, 4);

  // The victim's own bye (its connection) works.
  victim.send({ v: 1, t: "bye", id: "victim-1" });
  // The same node after a reconnect (new connection, same secret): accepted, and the record moves.
  await using again = new RawControl(ipc);
  again.send({ v: 1, t: "register", node: record("victim-2"), req: 1, secret: "k2" });
  await again.reply(isRegistered(1));
  await using reconnected = new RawControl(ipc);
  reconnected.send({
    v: 1,
    t: "register",
    node: { ...record("victim-2"), endpoint: "ipc:///moved" },
    req: 2,
    secret: "k2",
  });
  const ok = await reconnected.reply(isRegistered(2));
  assert.deepEqual(ok.refused, []);
  assert.equal(hub.graph().nodes.find((n) => n.id === "victim-2")?.endpoint, "ipc:///moved");
  assert.equal(
    hub.graph().nodes.find((n) => n.id === "victim-1"),
    undefined,
  );
});

test("a real node survives a bye for its id from the network and keeps its subscribers", async () => {
  using rt = tempRuntime();
  await using hub = await Hub.start({ insecure: true, runtimeDir: rt.dir, listen: ["tcp://127.0.0.1:0"] });
  const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
  await using node = await createNode({ name: "talker", runtimeDir: rt.dir });
  await node.createPublisher("/chatter", std_msgs.String);
  await using attacker = new RawControl(tcp);
  attacker.send({ v: 1, t: "bye", id: node.id });
  await attacker.reply(isError);
  // Still there after its next heartbeats, with its publication.
  await using watcher = await createNode({ name: "watcher", runtimeDir: rt.dir });
  const g = await watcher.queryGraph(2000);
  assert.ok(g.nodes.some((n) => n.id === node.id && n.pubs.some((p) => p.topic === "/chatter")));
});

async function hubWithTcpData(t: import("node:test").TestContext, policy: string) {
  const w = await world(t, "myelin-perm-");
  const file = join(w.dir, "policy.yaml");
  writeFileSync(file, policy);
  // Every node of the hub process (store, supervisor) binds tcp: reachable from "other hosts".
  w.env["MYELIN_DATA_ENDPOINT"] = "tcp://127.0.0.1:0";
  const hub = spawnCli(t, w, ["hub", "--insecure", "--listen", "tcp://127.0.0.1:0", "--policy", file]);
  const line = await hub.waitFor(/listening on .*tcp:\/\/127\.0\.0\.1:\d+/, 30000);
  const tcp = /tcp:\/\/127\.0\.0\.1:\d+/.exec(line)![0];
  const remote = { ...w.env, MYELIN_HUB: tcp, MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0" };
  return { w, hub, tcp, remote };
}

test("internal services from an identity that is no admin: /_store/read and /_supervisor/apply (myelin up) are refused and nothing runs", async (t) => {
  const { w, tcp, remote } = await hubWithTcpData(t, POLICY);
  const marker = join(w.dir, "pwned");
  const spec = join(w.dir, "evil.yaml");
  writeFileSync(
    spec,
    `nodes:\n  evil:\n    command: [touch, ${marker}]\n    restart: never\n    readiness: process\n`,
  );

  const attacker: Proc = spawnFixture(
    "perm-proc",
    {
      role: "attacker",
      actions: [
        {
          kind: "call",
          name: "/_store/read",
          type: "myelin_msgs/StoreRead",
          request: { topic: "/x", from_seq: 0, from_time_ms: 0, max: 10 },
        },
        { kind: "call", name: "/_store/info", type: "myelin_msgs/StoreInfo", request: { topic: "/x" } },
        { kind: "subscribe", name: "/cmd_vel" },
      ],
    },
    { MYELIN_RUNTIME_DIR: w.dir, MYELIN_HUB: tcp, MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0" },
  );
  t.after(() => attacker.kill("SIGKILL"));
  await attacker.waitFor((l) => l.event === "done", 30000, "the attacker's attempts");
  const results = attacker.lines.filter((l) => l.event === "result");
  for (const r of results) assert.equal(r["code"], "ERR_NOT_AUTHORIZED", JSON.stringify(r));
  assert.match(String(results[0]!["message"]), /internal services are for admins only/);

  // myelin up from the network: the supervisor refuses before its handler runs.
  const up = await runCli(t, { dir: w.dir, env: remote }, ["up", spec, "--wait-ms", "3000"], 40000);
  assert.notEqual(up.code, 0, up.stdout);
  assert.match(up.stderr, /ERR_NOT_AUTHORIZED|admins only/);
  assert.equal(existsSync(marker), false, "the command ran");
});

test("control: with a policy that makes anonymous an admin, the same myelin up from the network runs its command", async (t) => {
  const { w, remote } = await hubWithTcpData(t, `admins: [local, anonymous]\n`);
  const marker = join(w.dir, "ran");
  const spec = join(w.dir, "ok.yaml");
  writeFileSync(
    spec,
    `nodes:\n  toucher:\n    command: [touch, ${marker}]\n    restart: never\n    readiness: process\n`,
  );
  const up = await runCli(t, { dir: w.dir, env: remote }, ["up", spec, "--wait-ms", "3000"], 40000);
  const until = Date.now() + 10000;
  while (!existsSync(marker) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.equal(existsSync(marker), true, `the admin's command did not run: ${up.stdout}\n${up.stderr}`);
});

test("data plane: a publisher refuses a subscriber whose identity the policy does not grant the topic, and counts it", async (t) => {
  using rt = tempRuntime();
  const policy = parsePolicy(POLICY, "policy.yaml");
  await using hub = await Hub.start({
    insecure: true,
    runtimeDir: rt.dir,
    listen: ["tcp://127.0.0.1:0"],
    policy,
  });
  await using pubNode = await createNode({
    name: "driver",
    runtimeDir: rt.dir,
    dataEndpoint: "tcp://127.0.0.1:0",
  });
  const cmd = await pubNode.createPublisher("/cmd_vel", std_msgs.String);
  const tele = await pubNode.createPublisher("/telemetry/speed", std_msgs.String);
  const endpoint = hub.graph().nodes.find((n) => n.id === pubNode.id)!.endpoint;
  // Straight to the data socket over tcp, past the hub: anonymous may not subscribe to /cmd_vel …
  const refused = spawnFixture(
    "perm-proc",
    { role: "raw-sub", endpoint, topic: "/cmd_vel", type: "std_msgs/String" },
    {},
  );
  t.after(() => refused.kill("SIGKILL"));
  const e = await refused.waitFor(
    (l) => l.event === "error" || l.event === "data",
    15000,
    "the publisher's answer",
  );
  assert.equal(e["code"], "ERR_NOT_AUTHORIZED", JSON.stringify(e));
  assert.match(String(e["message"]), /identity 'anonymous' has no 'subscribe' grant matching \/cmd_vel/);
  assert.equal(cmd.stats().subscribersRefused, 1);
  assert.equal(cmd.stats().remoteSubscribers, 0);
  // … but may subscribe to /telemetry/**.
  const allowed = spawnFixture(
    "perm-proc",
    { role: "raw-sub", endpoint, topic: "/telemetry/speed", type: "std_msgs/String" },
    {},
  );
  t.after(() => allowed.kill("SIGKILL"));
  await tele.waitForSubscribers(1, 15000);
  assert.equal(tele.stats().subscribersRefused, 0);
});

test("the fake-store attack over tcp: its /_store/append server and its bye for the real store are refused; 50 of 50 persistent publishes reach the real store", async (t) => {
  const policy = `${POLICY}
  - identity: guests
    publish: ["/orders"]
    subscribe: ["/orders"]
`;
  const { w, tcp } = await hubWithTcpData(t, policy);
  const env = { MYELIN_RUNTIME_DIR: w.dir, MYELIN_HUB: tcp, MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0" };
  const attacker = spawnFixture(
    "perm-proc",
    {
      role: "attacker",
      actions: [
        { kind: "serve", name: "/_store/append", type: "myelin_msgs/StoreAppend" },
        { kind: "bye", name: "_store" },
      ],
    },
    env,
  );
  t.after(() => attacker.kill("SIGKILL"));
  await attacker.waitFor((l) => l.event === "done", 30000, "the attacker's attempts");
  const [serve, bye] = attacker.lines.filter((l) => l.event === "result");
  assert.equal(serve!["code"], "ERR_NOT_AUTHORIZED", JSON.stringify(serve));
  assert.equal(bye!["code"], "ERR_NOT_AUTHORIZED", JSON.stringify(bye));
  assert.match(String(bye!["message"]), /refused bye for the hub's store/);
  // A guest (anonymous, granted /orders) publishes persistently over tcp, then reads it back.
  const guest = spawnFixture(
    "perm-proc",
    {
      role: "attacker",
      actions: [
        { kind: "persist", name: "/orders", count: 50 },
        { kind: "consume", name: "/orders", count: 50 },
        { kind: "persist", name: "/ledger", count: 1 },
        { kind: "store-append", name: "/ledger" },
      ],
    },
    env,
  );
  t.after(() => guest.kill("SIGKILL"));
  await guest.waitFor((l) => l.event === "done", 40000, "the guest's publishes");
  const r = guest.lines.filter((l) => l.event === "result");
  assert.equal(r[0]!["code"], "ok", JSON.stringify(r[0]));
  assert.equal(r[1]!["code"], "ok", JSON.stringify(r[1]));
  // Not granted: refused by the hub at registration (and the store would refuse the append too).
  assert.equal(r[2]!["code"], "ERR_NOT_AUTHORIZED", JSON.stringify(r[2]));
  // Straight to the store's append, past the hub: the store checks the topic's grant itself.
  assert.equal(r[3]!["code"], "ERR_NOT_AUTHORIZED", JSON.stringify(r[3]));
  assert.match(String(r[3]!["message"]), /identity 'anonymous' has no 'publish' grant matching \/ledger/);
});

test("myelin hub refuses to start on a bad policy file, naming the file and the entry", async (t) => {
  const w = await world(t, "myelin-perm-");
  const file = join(w.dir, "policy.yaml");
  writeFileSync(file, "admins: [operators]\n");
  const bad = await runCli(t, w, ["hub", "--policy", file], 20000);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /policy\.yaml: admins: 'operators' is neither a name under 'identities'/);
  const missing = await runCli(
    t,
    { ...w, env: { ...w.env, MYELIN_POLICY: join(w.dir, "nope.yaml") } },
    ["hub"],
    20000,
  );
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /cannot read the policy file .*nope\.yaml/);
  const help = await runCli(t, w, ["hub", "--help"]);
  assert.match(help.stdout, /--policy FILE/);
  assert.match(help.stdout, /myelin hub --listen tcp:\/\/0\.0\.0\.0:7447 --policy policy\.yaml/);
});
