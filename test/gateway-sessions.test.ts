/**
 * Persistent MQTT sessions across a hub restart: the hub (run by the CLI, `myelin hub
 * --mqtt-port`) is killed with SIGKILL while a persistent client is away; queued QoS 1 messages
 * are delivered when it comes back to the restarted hub. Also `myelin gateway status` and
 * `myelin gateway hash-password` through the CLI.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { verifyPassword } from "../src/gateway/mqtt-auth.js";
import { freePort } from "./bridge-peers.js";
import { tempRuntime, until, type Proc } from "./helpers.js";
import { connectMqtt as connect, startGatewayHub, execCli } from "./mqtt-hub.js";

test(
  "queued QoS 1 messages of a persistent session survive kill -9 of the hub; gateway status and hash-password",
  { timeout: 45000 },
  async () => {
    using rt = tempRuntime();
    const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_DATA_DIR: join(rt.dir, "data") };
    const port = await freePort();
    const startHub = (): Promise<Proc> => startGatewayHub(port, env);
    const clients: MqttClient[] = [];
    let hub = await startHub();
    try {
      const sub = await connect(port, { clientId: "field-unit", clean: false });
      clients.push(sub.client);
      assert.equal(sub.sessionPresent, false);
      await sub.client.subscribeAsync("jobs/#", { qos: 1 });

      // `myelin gateway status` shows the client and its subscription.
      const st = await execCli(["gateway", "status"], env);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /field-unit .*persistent.*jobs\/#/);
      const js = await execCli(["gateway", "status", "--json"], env);
      assert.equal((JSON.parse(js.stdout) as { clients: { id: string }[] }).clients[0]?.id, "field-unit");

      await sub.client.endAsync();
      // Published while the unit is away. A PUBACK (QoS 1) or PUBCOMP (QoS 2) means the message is
      // queued for the unit: the hub is killed the moment the last acknowledgement arrives.
      const pub = await connect(port, { clientId: "dispatcher" });
      clients.push(pub.client);
      await pub.client.publishAsync("jobs/1", "job 1", { qos: 2 });
      await pub.client.publishAsync("jobs/2", "job 2", { qos: 1 });
      await pub.client.publishAsync("jobs/3", "job 3", { qos: 1 });
      await pub.client.publishAsync("status/dispatcher", "online", { qos: 1, retain: true });
      hub.kill("SIGKILL");
      await pub.client.endAsync(true);
      await hub.exit(10000);
      hub = await startHub();

      const back = mqtt.connect({
        host: "127.0.0.1",
        port,
        protocolVersion: 4,
        reconnectPeriod: 0,
        clientId: "field-unit",
        clean: false,
      });
      clients.push(back);
      const got: string[] = [];
      const qosSeen: number[] = [];
      back.on("message", (t, p, packet) => {
        got.push(`${t} ${p.toString()}`);
        qosSeen.push(packet.qos);
      });
      const present = await new Promise<boolean>((resolve, reject) => {
        back.once("connect", (ack) => resolve(ack.sessionPresent));
        back.once("error", reject);
      });
      assert.equal(present, true, "the session survived the restart");
      await until(() => got.length >= 3, 10000, "the queued messages").catch((err: Error) => {
        const journal = join(rt.dir, "data", "mqtt", "mqtt-sessions.jsonl");
        const text = existsSync(journal) ? readFileSync(journal, "utf8").slice(0, 4000) : "(no journal)";
        throw new Error(
          `${err.message}; got ${JSON.stringify(got)}; journal: ${text}; hub: ${JSON.stringify(hub.lines.slice(-10))}`,
        );
      });
      assert.deepEqual(got.sort(), ["jobs/1 job 1", "jobs/2 job 2", "jobs/3 job 3"]);
      assert.deepEqual(qosSeen, [1, 1, 1], "queued and delivered at the subscription's QoS 1");

      // The retained message acknowledged just before the kill is there for a new subscriber.
      const late = await connect(port, { clientId: "dashboard" });
      clients.push(late.client);
      const retained = new Promise<string>((resolve) =>
        late.client.on("message", (t, p, packet) => {
          if (packet.retain) resolve(`${t} ${p.toString()}`);
        }),
      );
      await late.client.subscribeAsync("status/#", { qos: 1 });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<string>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no retained message within 10 s")), 10000);
      });
      try {
        assert.equal(await Promise.race([retained, timeout]), "status/dispatcher online");
      } finally {
        clearTimeout(timer);
      }

      const hp = await execCli(["gateway", "hash-password", "pw"], env);
      assert.equal(hp.code, 0, hp.stderr);
      assert.equal(await verifyPassword("pw", hp.stdout.trim()), true);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      hub.kill("SIGTERM");
      await hub.exit(10000).catch(() => hub.kill("SIGKILL"));
    }
  },
);
