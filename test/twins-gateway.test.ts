/**
 * Device twins on a gateway in this process. Bad input is refused clearly and loses nothing:
 * malformed JSON, oversized documents, unknown devices, bad device names, wrong types, stale
 * versions and forged gateway topics each get a `…/rejected` answer (code, error, message, the
 * client's token) or, for a forged gateway topic, a report on the gateway's error topic; the twin
 * is unchanged and later reports work. The same through the services and the CLI. Also: on a
 * gateway with users, a client may touch only its own twin; a persistent session gets the delta
 * from its restored subscription; lists come in pages; `myelin twin watch` follows changes; a will
 * on the reported topic is the device's last report.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { myelin_msgs } from "../src/msgs/index.js";
import { hashPassword } from "../src/gateway/mqtt-auth.js";
import { MqttGateway, type MqttGatewayOptions } from "../src/gateway/mqtt-gateway.js";
import { TwinClient } from "../src/gateway/twin-client.js";
import { tempRuntime } from "./helpers.js";
import { execCli } from "./mqtt-hub.js";
import { MqttInbox, type Received } from "./mqtt-inbox.js";

interface World {
  dir: string;
  gw: MqttGateway;
  twins: TwinClient;
  env: Record<string, string>;
  device(opts: IClientOptions): Promise<{ client: MqttClient; inbox: MqttInbox }>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A hub, a gateway with twins on disk, an operator node with a twin client. */
async function world(opts: Partial<MqttGatewayOptions> = {}): Promise<World> {
  const rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
  const gw = await MqttGateway.start({
    listeners: { tcp: { port: 0, host: "127.0.0.1" } },
    runtimeDir: rt.dir,
    dataDir: `${rt.dir}/mqtt`,
    ...opts,
  });
  const node = await createNode({ name: "operator", runtimeDir: rt.dir });
  const twins = new TwinClient(node);
  await twins.waitForService(10000);
  const clients: MqttClient[] = [];
  return {
    dir: rt.dir,
    gw,
    twins,
    env: { MYELIN_RUNTIME_DIR: rt.dir },
    async device(o) {
      const client = mqtt.connect({
        host: "127.0.0.1",
        port: gw.port("tcp")!,
        protocolVersion: 4,
        reconnectPeriod: 0,
        ...o,
      });
      clients.push(client);
      const inbox = new MqttInbox(client);
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        client.once("error", reject);
      });
      return { client, inbox };
    },
    async [Symbol.asyncDispose]() {
      twins.close();
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await node.close();
      await gw.close();
      hub.close();
      rt[Symbol.dispose]();
    },
  };
}

/** Asserts a rejected answer: its status code, Myelin error code, message and token. */
function assertRejected(m: Received, code: number, error: string, message: RegExp, token?: string): void {
  assert.equal(m.json["code"], code, m.text);
  assert.equal(m.json["error"], error, m.text);
  assert.match(String(m.json["message"]), message);
  assert.equal(typeof m.json["timestamp"], "number");
  if (token !== undefined) assert.equal(m.json["clientToken"], token);
}

test(
  "bad twin requests over MQTT are answered on …/rejected and change nothing",
  { timeout: 60000 },
  async () => {
    await using w = await world();
    const { client: dev, inbox } = await w.device({ clientId: "meter-1" });
    await dev.subscribeAsync("twins/#", { qos: 1 });
    const report = (payload: string | Buffer, topic = "twins/meter-1/reported"): Promise<unknown> =>
      dev.publishAsync(topic, payload, { qos: 1 });
    const REJ = "twins/meter-1/reported/rejected";

    await report(JSON.stringify({ state: { kwh: 10 } }));
    assert.equal((await inbox.next("twins/meter-1/reported/accepted")).json["version"], 1);

    // Malformed JSON, and bytes that are not UTF-8.
    await report('{"state": {"kwh": 1');
    assertRejected(await inbox.next(REJ), 400, "ERR_INVALID_ARGUMENT", /reported payload is not valid JSON/);
    await report(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    assertRejected(await inbox.next(REJ), 400, "ERR_INVALID_ARGUMENT", /not valid JSON/);

    // Wrong types and shapes, each naming what is wrong.
    await report(JSON.stringify({ state: 5, clientToken: "t-num" }));
    assertRejected(
      await inbox.next(REJ),
      400,
      "ERR_VALIDATION",
      /"state" must be a JSON object, got a number/,
      "t-num",
    );
    await report(JSON.stringify([1, 2]));
    assertRejected(await inbox.next(REJ), 400, "ERR_VALIDATION", /must be a JSON object .*got an array/);
    await report(JSON.stringify({ kwh: 11 }));
    assertRejected(await inbox.next(REJ), 400, "ERR_VALIDATION", /unknown field "kwh".*inside "state"/);
    await report(JSON.stringify({ state: { kwh: 11 }, version: "1", clientToken: "t-ver" }));
    assertRejected(await inbox.next(REJ), 400, "ERR_VALIDATION", /version must be a whole number/, "t-ver");
    await report(JSON.stringify({ state: { kwh: 11 }, clientToken: 7 }));
    assertRejected(await inbox.next(REJ), 400, "ERR_VALIDATION", /clientToken must be a string/);
    let deep: Record<string, unknown> = { x: 1 };
    for (let i = 0; i < 10; i++) deep = { d: deep };
    await report(JSON.stringify({ state: deep }));
    assertRejected(
      await inbox.next(REJ),
      400,
      "ERR_VALIDATION",
      /nested deeper than 8 levels \(twins\.maxDepth\)/,
    );

    // Oversized: one request over the limit, and a state that would grow over it.
    await report(JSON.stringify({ state: { blob: "x".repeat(20000) }, clientToken: "t-big" }));
    assertRejected(await inbox.next(REJ), 413, "ERR_PAYLOAD_TOO_LARGE", /over the limit of 9216/, undefined);
    await report(JSON.stringify({ state: { a: "x".repeat(5000) } }));
    assert.equal((await inbox.next("twins/meter-1/reported/accepted")).json["version"], 2);
    await report(JSON.stringify({ state: { b: "y".repeat(5000) }, clientToken: "t-grow" }));
    assertRejected(
      await inbox.next(REJ),
      413,
      "ERR_PAYLOAD_TOO_LARGE",
      /reported would be \d+ bytes of JSON, over twins\.maxStateBytes \(8192\)/,
      "t-grow",
    );

    // A stale version names both versions.
    await report(JSON.stringify({ state: { kwh: 12 }, version: 1, clientToken: "t-stale" }));
    assertRejected(
      await inbox.next(REJ),
      409,
      "ERR_VERSION_CONFLICT",
      /reported is at version 2, the update expected version 1/,
      "t-stale",
    );

    // Unknown devices, bad names, topics that are not the device's to publish.
    await dev.publishAsync("twins/ghost/get", JSON.stringify({ clientToken: "g" }), { qos: 1 });
    assertRejected(
      await inbox.next("twins/ghost/get/rejected"),
      404,
      "ERR_UNKNOWN_DEVICE",
      /no twin for device ghost/,
      "g",
    );
    await report(JSON.stringify({ state: { on: true } }), "twins/bad name!/reported");
    assertRejected(
      await inbox.next("twins/bad name!/reported/rejected"),
      400,
      "ERR_INVALID_ARGUMENT",
      /has a character/,
    );
    await dev.publishAsync("twins/meter-1/desired", JSON.stringify({ state: { kwh: 0 } }), { qos: 1 });
    assertRejected(
      await inbox.next("twins/meter-1/desired/rejected"),
      400,
      "ERR_INVALID_ARGUMENT",
      /not a twin topic/,
    );
    await dev.publishAsync("twins/meter-1/desired/delta", JSON.stringify({ state: { kwh: 0 } }), { qos: 1 });

    // Nothing was lost or changed: the twin holds what the two accepted reports said.
    await dev.publishAsync("twins/meter-1/get", "", { qos: 1 });
    const doc = (await inbox.next("twins/meter-1/get/accepted")).json as {
      state: { reported: Record<string, unknown>; desired: unknown };
      reportedVersion: number;
    };
    assert.deepEqual(Object.keys(doc.state.reported).sort(), ["a", "kwh"]);
    assert.equal(doc.state.reported["kwh"], 10);
    assert.equal(doc.reportedVersion, 2);
    assert.deepEqual(inbox.on("twins/meter-1/desired/delta"), [], "a forged delta is not forwarded");
    assert.deepEqual(
      inbox.on("twins/meter-1/reported").concat(inbox.on("twins/ghost/get")),
      [],
      "requests are answered, not routed to subscribers",
    );

    // Later reports work, and the gateway counted every refusal.
    await report(JSON.stringify({ state: { kwh: 13, a: null } }));
    const ok = await inbox.next("twins/meter-1/reported/accepted");
    assert.deepEqual(ok.json["state"], { kwh: 13 });
    assert.equal(ok.json["version"], 3);
    const st = w.gw.status();
    const i = st.reject_reasons.indexOf("twin request refused");
    assert.ok(i >= 0, JSON.stringify(st.reject_reasons));
    assert.equal(st.rejected, 15, "every refusal counted (bad JSON under its own reason)");
    assert.equal(st.reject_counts[i], 13);
    assert.match(
      st.last_reject,
      /meter-1 on twins\/meter-1\/desired\/delta: twin meter-1: .*published by the gateway only/,
    );
  },
);

test("bad twin requests through the services and the CLI get clear errors", { timeout: 60000 }, async () => {
  await using w = await world({ twins: { maxStateBytes: 256 } });
  const codeOf = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
      return "resolved";
    } catch (err) {
      return `${(err as { code?: string }).code}: ${(err as Error).message}`;
    }
  };
  assert.match(await codeOf(w.twins.get("ghost")), /^ERR_UNKNOWN_DEVICE: no twin for device ghost/);
  assert.match(await codeOf(w.twins.setDesired("ghost", { on: true })), /^ERR_UNKNOWN_DEVICE: .*--create/);
  assert.match(await codeOf(w.twins.get("a/b")), /^ERR_INVALID_ARGUMENT: .*has a character/);
  assert.match(
    await codeOf(w.twins.setDesired("lamp", { text: "z".repeat(300) }, { create: true })),
    /^ERR_PAYLOAD_TOO_LARGE: twin lamp: desired would be \d+ bytes/,
  );
  assert.match(await codeOf(w.twins.get("lamp")), /^ERR_UNKNOWN_DEVICE/, "a refused create makes no twin");
  assert.match(await codeOf(w.twins.list({ pattern: "a/*" })), /^ERR_INVALID_ARGUMENT: pattern/);
  const created = await w.twins.setDesired("lamp", { on: true }, { create: true });
  assert.equal(created.desiredVersion, 1);
  assert.deepEqual(created.delta, { on: true });

  // Raw service calls with text that is not an object.
  const node = await createNode({ name: "raw", runtimeDir: w.dir });
  try {
    const set = node.createClient("/_twins/set", myelin_msgs.TwinSet, { timeoutMs: 3000 });
    const call = (desired_json: string) =>
      set.call({ device: "lamp", desired_json, create: false, replace: false });
    const notJson = await call("{on: true");
    assert.equal(notJson.ok, false);
    assert.equal(notJson.error_code, "ERR_INVALID_ARGUMENT");
    assert.match(notJson.message, /desired state for twin lamp is not JSON/);
    const arr = await call("[1, 2]");
    assert.equal(arr.error_code, "ERR_VALIDATION");
    assert.match(arr.message, /must be a JSON object, got an array/);
    const frac = await set.call({
      device: "lamp",
      desired_json: "{}",
      expected_version: 1.5,
      create: false,
      replace: false,
    });
    assert.equal(frac.error_code, "ERR_INVALID_ARGUMENT");
    assert.match(frac.message, /expected_version must be a whole number >= 0/);
    // A caller that leaves expected_version out (as a generic JSON caller does) sets without a check.
    const free = await set.call({
      device: "lamp",
      desired_json: '{"level": 2}',
      create: false,
      replace: false,
    });
    assert.equal(free.ok, true, free.message);
    assert.equal(free.twin?.desired_version, 2);
    set.close();
  } finally {
    await node.close();
  }
  assert.deepEqual(
    (await w.twins.get("lamp")).desired,
    { on: true, level: 2 },
    "nothing but the valid set changed",
  );

  // The CLI says the same, with the code, and exits non-zero.
  const ghost = await execCli(["twin", "get", "ghost"], w.env);
  assert.equal(ghost.code, 1);
  assert.match(ghost.stderr, /no twin for device ghost.*\[ERR_UNKNOWN_DEVICE\]/s);
  const notObject = await execCli(["twin", "set", "lamp", "[1, 2]"], w.env);
  assert.notEqual(notObject.code, 0);
  assert.match(notObject.stderr, /STATE must be an object of desired values/);
  const badYaml = await execCli(["twin", "set", "lamp", "{on: [true"], w.env);
  assert.notEqual(badYaml.code, 0);
  assert.match(badYaml.stderr, /STATE is not valid JSON or YAML/);
  const conflict = await execCli(["twin", "set", "lamp", "{on: false}", "--expect-version", "7"], w.env);
  assert.notEqual(conflict.code, 0);
  assert.match(
    conflict.stderr,
    /desired is at version 2, the update expected version 7.*\[ERR_VERSION_CONFLICT\]/s,
  );
  const deleted = await execCli(["twin", "delete", "lamp"], w.env);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.match(await codeOf(w.twins.get("lamp")), /^ERR_UNKNOWN_DEVICE/);
});

test("with users, a device may touch only its own twin", { timeout: 60000 }, async () => {
  const hash = await hashPassword("pw");
  const acl = { publish: ["twins/#"], subscribe: ["twins/#"] };
  await using w = await world({
    auth: {
      users: [
        { username: "pump-7", password: hash, acl },
        { username: "fleet", password: hash, acl },
      ],
    },
  });
  const { client: pump, inbox } = await w.device({ clientId: "any-id", username: "pump-7", password: "pw" });
  await pump.subscribeAsync("twins/#", { qos: 1 });
  await pump.publishAsync("twins/pump-7/reported", JSON.stringify({ state: { rpm: 5 } }), { qos: 1 });
  await inbox.next("twins/pump-7/reported/accepted");
  await pump.publishAsync("twins/pump-9/reported", JSON.stringify({ state: { rpm: 9 }, clientToken: "x" }), {
    qos: 1,
  });
  assertRejected(
    await inbox.next("twins/pump-9/reported/rejected"),
    403,
    "ERR_NOT_AUTHORIZED",
    /client any-id is device pump-7 \(by user "pump-7"\) and may touch only its own twin/,
    "x",
  );
  await pump.publishAsync("twins/pump-9/get", "", { qos: 1 });
  assertRejected(
    await inbox.next("twins/pump-9/get/rejected"),
    403,
    "ERR_NOT_AUTHORIZED",
    /only its own twin/,
  );
  const t = await w.twins.get("pump-7");
  assert.equal(t.connected, true);
  assert.equal(t.clientId, "any-id");
  await assert.rejects(w.twins.get("pump-9"), /no twin for device pump-9/, "the refused report made no twin");
});

test(
  "twins.identity client-id: devices sharing a user are told apart by client id",
  { timeout: 60000 },
  async () => {
    const hash = await hashPassword("pw");
    await using w = await world({
      auth: {
        users: [
          { username: "fleet", password: hash, acl: { publish: ["twins/%c/#"], subscribe: ["twins/%c/#"] } },
        ],
      },
      twins: { identity: "client-id" },
    });
    const { client, inbox } = await w.device({ clientId: "valve-3", username: "fleet", password: "pw" });
    await client.subscribeAsync("twins/valve-3/#", { qos: 1 });
    await client.publishAsync("twins/valve-3/reported", JSON.stringify({ state: { open: true } }), {
      qos: 1,
    });
    assert.equal((await inbox.next("twins/valve-3/reported/accepted")).json["version"], 1);
    // The ACL (%c) keeps it off other twins' topics: dropped and counted before the twins see it.
    await client.publishAsync("twins/valve-4/reported", JSON.stringify({ state: { open: true } }), {
      qos: 1,
    });
    await client.publishAsync("twins/valve-3/get", "", { qos: 1 });
    await inbox.next("twins/valve-3/get/accepted");
    assert.equal(w.gw.status().reject_reasons.includes("publish not allowed (ACL)"), true);
    assert.deepEqual(
      (await w.twins.list()).twins.map((x) => x.device),
      ["valve-3"],
    );
  },
);

test(
  "a persistent session gets the delta when it reconnects, from its restored subscription",
  { timeout: 60000 },
  async () => {
    await using w = await world();
    // Subscribed at QoS 0, so nothing is queued while it is away: the delta comes from the twin.
    const first = await w.device({ clientId: "lamp-9", clean: false });
    await first.client.subscribeAsync("twins/lamp-9/desired/delta", { qos: 0 });
    await first.client.publishAsync("twins/lamp-9/reported", JSON.stringify({ state: { on: false } }), {
      qos: 1,
    });
    await first.client.endAsync();
    await w.twins.setDesired("lamp-9", { on: true, level: 3 });
    const back = await w.device({ clientId: "lamp-9", clean: false });
    const d = await back.inbox.next("twins/lamp-9/desired/delta");
    assert.deepEqual(d.json["state"], { on: true, level: 3 });
    assert.equal(d.json["version"], 1);
  },
);

test("twins are listed in pages, by pattern; myelin twin list and watch", { timeout: 60000 }, async () => {
  await using w = await world();
  for (const d of ["pump-1", "pump-2", "pump-3", "valve-1", "valve-2"])
    await w.twins.setDesired(d, { on: true }, { create: true });
  const p1 = await w.twins.list({ pattern: "pump-*", max: 2 });
  assert.deepEqual(
    p1.twins.map((t) => t.device),
    ["pump-1", "pump-2"],
  );
  assert.equal(p1.more, true);
  assert.equal(p1.total, 3);
  assert.equal(p1.twins[0]!.deltaKeys, 1);
  assert.deepEqual(p1.twins[0]!.delta, { on: true });
  const p2 = await w.twins.list({ pattern: "pump-*", max: 2, after: "pump-2" });
  assert.deepEqual(
    p2.twins.map((t) => t.device),
    ["pump-3"],
  );
  assert.equal(p2.more, false);

  const list = await execCli(["twin", "list", "--max", "2"], w.env);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^DEVICE\s+STATE\s+LAST SEEN\s+VERSION\s+DESIRED\s+REPORTED\s+DELTA\n/);
  assert.match(list.stdout, /pump-1\s+offline\s+never\s+1\s+1\s+0\s+1/);
  assert.match(list.stderr, /5 twins match; more after pump-2: myelin twin list --after pump-2/);
  const get = await execCli(["twin", "get", "valve-2"], w.env);
  assert.equal(get.code, 0, get.stderr);
  assert.match(get.stdout, /valve-2: offline, last seen never/);
  assert.match(get.stdout, /delta \(desired, not yet reported\):/);

  // `twin watch` prints the next change of valve-1 (it is subscribed once the graph shows it).
  const watch = execCli(["twin", "watch", "valve-1", "--count", "1", "--json"], w.env);
  const watcher = await createNode({ name: "graph_watch", runtimeDir: w.dir });
  try {
    await watcher.waitForGraph(
      (g) =>
        g.nodes.some(
          (n) => n.name.startsWith("_myelin_twin_watch") && n.subs.some((s) => s.topic === "/_twins/updates"),
        ),
      10000,
    );
  } finally {
    await watcher.close();
  }
  // Its link to the gateway's publisher is made just after: change valve-1 until one arrives.
  let done = false;
  void watch.finally(() => (done = true));
  await w.twins.setDesired("valve-2", { on: false });
  for (let i = 0; !done && i < 1000; i++) await w.twins.setDesired("valve-1", { level: i });
  const out = await watch;
  assert.equal(out.code, 0, out.stderr);
  const e = JSON.parse(out.stdout) as {
    kind: string;
    twin: { device: string; desired: Record<string, unknown> };
  };
  assert.equal(e.kind, "desired");
  assert.equal(e.twin.device, "valve-1");
  assert.equal(e.twin.desired["on"], true);
  assert.equal(typeof e.twin.desired["level"], "number");
});

test("a will on the twin's reported topic is a last report of its device", { timeout: 60000 }, async () => {
  await using w = await world();
  const observer = await w.device({ clientId: "observer" });
  await observer.client.subscribeAsync("twins/w-1/reported/accepted", { qos: 1 });
  const { client } = await w.device({
    clientId: "w-1",
    will: {
      topic: "twins/w-1/reported",
      payload: Buffer.from('{"state": {"online": false}}'),
      qos: 1,
      retain: false,
    },
  });
  await client.publishAsync("twins/w-1/reported", JSON.stringify({ state: { online: true } }), { qos: 1 });
  assert.deepEqual((await observer.inbox.next("twins/w-1/reported/accepted")).json["state"], {
    online: true,
  });
  client.stream.destroy(); // the link is cut: the broker publishes the will
  assert.deepEqual((await observer.inbox.next("twins/w-1/reported/accepted")).json["state"], {
    online: false,
  });
  const t = await w.twins.get("w-1");
  assert.deepEqual(t.reported, { online: false });
  assert.equal(t.reportedVersion, 2);
});

test(
  "with twins: { enabled: false } twin topics are plain MQTT and no twin service runs",
  { timeout: 60000 },
  async () => {
    const rt = tempRuntime();
    const hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
    const gw = await MqttGateway.start({
      listeners: { tcp: { port: 0, host: "127.0.0.1" } },
      runtimeDir: rt.dir,
      twins: { enabled: false },
    });
    const client = mqtt.connect({
      host: "127.0.0.1",
      port: gw.port("tcp")!,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    try {
      const inbox = new MqttInbox(client);
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        client.once("error", reject);
      });
      await client.subscribeAsync("twins/#", { qos: 1 });
      await client.publishAsync("twins/x/reported", "not even JSON", { qos: 1 });
      assert.equal((await inbox.next("twins/x/reported")).text, "not even JSON");
      const cli = await execCli(["twin", "list"], { MYELIN_RUNTIME_DIR: rt.dir });
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /no MQTT gateway with device twins runs.*\[ERR_NO_SERVER\]/s);
    } finally {
      await client.endAsync(true);
      await gw.close();
      hub.close();
      rt[Symbol.dispose]();
    }
  },
);
