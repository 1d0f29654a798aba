/**
 * Device twins through a real hub process (`myelin hub --mqtt-port`): a device (MQTT.js) reports,
 * an operator (`myelin twin set`) changes desired while the device is offline, the device gets
 * the delta when it reconnects; a stale expected version is refused naming both versions; twins
 * survive kill -9 of the hub, and a persistent session gets what changed while the hub was down.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { createNode } from "../src/node/index.js";
import { TwinClient, type TwinUpdateEvent } from "../src/gateway/twin-client.js";
import { freePort } from "./bridge-peers.js";
import { tempRuntime, until, type Proc } from "./helpers.js";
import { execCli, startGatewayHub } from "./mqtt-hub.js";
import { MqttInbox } from "./mqtt-inbox.js";

/** A device: an MQTT.js client whose inbox is attached before it connects (no message missed). */
async function device(
  port: number,
  opts: IClientOptions,
): Promise<{ client: MqttClient; inbox: MqttInbox; sessionPresent: boolean }> {
  const client = mqtt.connect({ host: "127.0.0.1", port, protocolVersion: 4, reconnectPeriod: 0, ...opts });
  const inbox = new MqttInbox(client);
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once("connect", (ack) => resolve(ack.sessionPresent));
    client.once("error", reject);
  });
  return { client, inbox, sessionPresent };
}

test(
  "a device reports, gets desired changed while offline when it reconnects; versions conflict; twins survive kill -9 of the hub",
  { timeout: 90000 },
  async () => {
    using rt = tempRuntime();
    const dataDir = join(rt.dir, "data");
    const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_DATA_DIR: dataDir };
    const port = await freePort();
    const clients: MqttClient[] = [];
    let hub: Proc = await startGatewayHub(port, env);
    let node = await createNode({ name: "operator", runtimeDir: rt.dir });
    let twins = new TwinClient(node);
    const events: TwinUpdateEvent[] = [];
    try {
      assert.equal(await twins.waitForService(10000), true, "the twin services are up");
      await twins.onUpdate((e) => events.push(e));

      // The device reports its state; the report is acknowledged on reported/accepted.
      const dev = await device(port, { clientId: "pump-7" });
      clients.push(dev.client);
      const inbox = dev.inbox;
      await dev.client.subscribeAsync("twins/pump-7/#", { qos: 1 });
      await dev.client.publishAsync(
        "twins/pump-7/reported",
        JSON.stringify({
          state: { speed: 0, mode: "idle", firmware: { version: "1.2.0" } },
          clientToken: "r1",
        }),
        { qos: 1 },
      );
      const acc = await inbox.next("twins/pump-7/reported/accepted");
      assert.equal(acc.json["clientToken"], "r1");
      assert.equal(acc.json["version"], 1);
      assert.deepEqual(acc.json["state"], { speed: 0, mode: "idle", firmware: { version: "1.2.0" } });

      // The device asks for its twin.
      await dev.client.publishAsync("twins/pump-7/get", JSON.stringify({ clientToken: "g1" }), { qos: 1 });
      const doc = (await inbox.next("twins/pump-7/get/accepted")).json as {
        state: { reported: unknown; desired: unknown; delta: unknown };
        metadata: { connected: boolean; clientId: string };
        clientToken: string;
      };
      assert.equal(doc.clientToken, "g1");
      assert.deepEqual(doc.state.desired, {});
      assert.deepEqual(doc.state.delta, {});
      assert.equal(doc.metadata.connected, true);
      assert.equal(doc.metadata.clientId, "pump-7");

      // The operator sees it with the CLI.
      const got = await execCli(["twin", "get", "pump-7", "--json"], env);
      assert.equal(got.code, 0, got.stderr);
      const t1 = JSON.parse(got.stdout) as {
        reported: { speed: number };
        connected: boolean;
        reportedVersion: number;
      };
      assert.equal(t1.reported.speed, 0);
      assert.equal(t1.connected, true);
      assert.equal(t1.reportedVersion, 1);
      const list = await execCli(["twin", "list"], env);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /pump-7\s+connected/);

      // The device goes away; its twin says so.
      await dev.client.endAsync();
      await until(
        () => events.some((e) => e.kind === "connection" && !e.twin.connected && e.twin.device === "pump-7"),
        10000,
        "the twin to record the disconnection",
      );

      // Desired changes while it is offline (with the CLI, expecting desired version 0).
      const set = await execCli(
        ["twin", "set", "pump-7", '{"speed": 1200, "mode": "run"}', "--expect-version", "0"],
        env,
      );
      assert.equal(set.code, 0, set.stderr);
      assert.match(
        set.stdout,
        /desired is at version 1; delta of 2 keys waiting for the device to reconnect/,
      );

      // A second operator still holding version 0 is refused, naming both versions; nothing changes.
      const stale = await execCli(["twin", "set", "pump-7", '{"speed": 300}', "--expect-version", "0"], env);
      assert.notEqual(stale.code, 0);
      assert.match(stale.stderr, /ERR_VERSION_CONFLICT/);
      assert.match(stale.stderr, /desired is at version 1, the update expected version 0/);
      await assert.rejects(
        twins.setDesired("pump-7", { speed: 300 }, { expectedVersion: 0 }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, "ERR_VERSION_CONFLICT");
          assert.match(err.message, /version 1.*version 0/);
          return true;
        },
      );
      assert.deepEqual((await twins.get("pump-7")).desired, { speed: 1200, mode: "run" });

      // The device reconnects (clean session) and gets the delta when it subscribes.
      const back = await device(port, { clientId: "pump-7" });
      clients.push(back.client);
      const inbox2 = back.inbox;
      await back.client.subscribeAsync("twins/pump-7/desired/delta", { qos: 1 });
      const delta = await inbox2.next("twins/pump-7/desired/delta");
      assert.deepEqual(delta.json["state"], { speed: 1200, mode: "run" });
      assert.equal(delta.json["version"], 1);

      // It applies the change and reports; the delta is empty.
      await back.client.subscribeAsync("twins/pump-7/reported/+", { qos: 1 });
      await back.client.publishAsync(
        "twins/pump-7/reported",
        JSON.stringify({ state: { speed: 1200, mode: "run" } }),
        {
          qos: 1,
        },
      );
      await inbox2.next("twins/pump-7/reported/accepted");
      const applied = await twins.get("pump-7");
      assert.deepEqual(applied.delta, {});
      assert.equal(applied.connected, true);
      await back.client.endAsync();

      // A persistent session: subscribed once, it will get what changes while the hub is down.
      const field = await device(port, { clientId: "valve-2", clean: false });
      clients.push(field.client);
      await field.client.subscribeAsync("twins/valve-2/desired/delta", { qos: 1 });
      await field.client.publishAsync("twins/valve-2/reported", JSON.stringify({ state: { open: false } }), {
        qos: 1,
      });
      await until(
        () => events.some((e) => e.twin.device === "valve-2" && e.kind === "created"),
        10000,
        "valve-2's twin",
      );
      await field.client.endAsync();
      const before = await twins.get("pump-7");

      // kill -9 the hub and start it again on the same data directory.
      twins.close();
      await node.close();
      hub.kill("SIGKILL");
      await hub.exit(10000);
      assert.ok(existsSync(join(dataDir, "mqtt", "twins", "pump-7.json")), "pump-7's twin file");
      hub = await startGatewayHub(port, env);
      node = await createNode({ name: "operator", runtimeDir: rt.dir });
      twins = new TwinClient(node);
      assert.equal(await twins.waitForService(10000), true);
      const after = await twins.get("pump-7");
      assert.deepEqual(after.desired, before.desired);
      assert.deepEqual(after.reported, before.reported);
      assert.equal(after.version, before.version);
      assert.equal(after.desiredVersion, before.desiredVersion);
      assert.equal(after.reportedVersion, before.reportedVersion);
      assert.equal(after.connected, false, "nobody is connected to a hub that just started");
      const all = await twins.list();
      assert.deepEqual(
        all.twins.map((t) => t.device),
        ["pump-7", "valve-2"],
      );

      // Desired changes for the persistent session's device while it is away; it reconnects
      // without subscribing again and gets the delta through its restored subscription.
      await twins.setDesired("valve-2", { open: true });
      const resumed = await device(port, { clientId: "valve-2", clean: false });
      clients.push(resumed.client);
      assert.equal(resumed.sessionPresent, true);
      const inbox3 = resumed.inbox;
      const d2 = await inbox3.next("twins/valve-2/desired/delta");
      assert.deepEqual(d2.json["state"], { open: true });
      assert.equal(d2.json["version"], 1);
    } finally {
      twins.close();
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await node.close();
      hub.kill("SIGTERM");
      await hub.exit(10000).catch(() => hub.kill("SIGKILL"));
    }
  },
);
