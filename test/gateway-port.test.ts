/**
 * The Myelin side shared by the MQTT gateway and the bridges: external messages mapped, validated
 * and published typed; rejects counted and published on the error topic; Myelin publications
 * handed out encoded; no loop on a `both` rule.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { myelin_msgs, sensor_msgs, std_msgs } from "../src/msgs/index.js";
import { TopicMap } from "../src/gateway/mapping.js";
import { MyelinPort } from "../src/gateway/myelin-port.js";
import { tempRuntime } from "./helpers.js";

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test(
  "MyelinPort: inbound typed, rejects to the error topic, outbound encoded, no loop",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const hub = await Hub.start({ runtimeDir: rt.dir });
    const portNode = await createNode({ name: "_bridge_test", runtimeDir: rt.dir });
    const app = await createNode({ name: "app", runtimeDir: rt.dir });
    const map = new TopicMap(
      [
        {
          myelin: "/sensors/+/temperature",
          external: "sensors/+/temp",
          type: "sensor_msgs/Temperature",
          direction: "in",
        },
        { myelin: "/chat", external: "chat", type: "std_msgs/String", direction: "both" },
        { myelin: "/cmd/+", external: "cmd/+", type: "std_msgs/String", direction: "out" },
      ],
      { syntax: "mqtt", sitePrefix: "site-a" },
    );
    const outbound: { topic: string; text: string }[] = [];
    const outWaiters: (() => void)[] = [];
    const port = await MyelinPort.start({
      node: portNode,
      map,
      errorTopic: "/_bridge_test/errors",
      onOutbound(topic, payload) {
        outbound.push({ topic, text: new TextDecoder().decode(payload) });
        for (const w of outWaiters.splice(0)) w();
      },
    });
    try {
      const temps = deferred<{ temperature: number; topic: string }>();
      await app.createSubscription("/sensors/k1/temperature", sensor_msgs.Temperature, (m) =>
        temps.resolve({ temperature: m.temperature, topic: "/sensors/k1/temperature" }),
      );
      const rejects: { reason: string; external_topic: string; rule: number; source: string }[] = [];
      const gotReject = deferred<void>();
      await app.createSubscription("/_bridge_test/errors", myelin_msgs.GatewayReject, (m) => {
        rejects.push(m);
        gotReject.resolve();
      });
      const enc = new TextEncoder();
      const ok = await port.inbound("site-a/sensors/k1/temp", enc.encode('{"temperature": 21.5}'));
      assert.deepEqual(ok, { ok: true, myelinTopic: "/sensors/k1/temperature" });
      assert.equal((await temps.promise).temperature, 21.5);

      const badPayload = await port.inbound(
        "site-a/sensors/k1/temp",
        enc.encode('{"temperature": "warm"}'),
        "dev-7",
      );
      assert.equal(badPayload.ok, false);
      assert.match(!badPayload.ok ? badPayload.reason : "", /temperature/);
      const unmapped = await port.inbound("site-a/nothing", enc.encode("{}"));
      assert.equal(unmapped.ok, false);
      await gotReject.promise;
      assert.equal(port.stats().rejected, 2);
      assert.equal(port.stats().in, 1);
      assert.match(port.stats().lastReject ?? "", /no mapping rule/);
      // The error topic is best-effort: the first reject may race the subscription's connection.
      assert.ok(rejects.length >= 1);
      assert.ok(rejects.some((r) => r.source === "dev-7" || r.rule === -1));

      // Outbound: another node publishes on mapped topics; the port hands them out encoded.
      const cmd = await app.createPublisher("/cmd/arm", std_msgs.String);
      const chat = await app.createPublisher("/chat", std_msgs.String);
      await portNode
        .waitForGraph((g) => g.nodes.some((n) => n.subs.some((s) => s.topic === "/cmd/arm")), 5000)
        .catch(() => undefined);
      const waitOut = (n: number): Promise<void> =>
        outbound.length >= n
          ? Promise.resolve()
          : new Promise<void>((r) => {
              const check = (): void => (outbound.length >= n ? r() : void outWaiters.push(check));
              outWaiters.push(check);
            });
      await cmd.waitForSubscribers(1, 5000);
      await chat.waitForSubscribers(1, 5000);
      await cmd.publish({ data: "home" });
      await waitOut(1);
      assert.deepEqual(outbound[0], { topic: "site-a/cmd/arm", text: '{"data":"home"}' });

      // Both-direction rule: what the port publishes itself is not sent back out.
      const fromApp = deferred<void>();
      await app.createSubscription("/chat", std_msgs.String, (m) => {
        if (m.data === "from device") fromApp.resolve();
      });
      assert.deepEqual(await port.inbound("site-a/chat", enc.encode('{"data":"from device"}')), {
        ok: true,
        myelinTopic: "/chat",
      });
      await fromApp.promise;
      await chat.publish({ data: "from app" });
      await waitOut(2);
      assert.deepEqual(outbound[1], { topic: "site-a/chat", text: '{"data":"from app"}' });
      assert.equal(outbound.filter((o) => o.text.includes("from device")).length, 0);
      assert.deepEqual(port.stats().outTopics, ["/chat", "/cmd/arm"]);
    } finally {
      await port.close();
      await app.close();
      await portNode.close();
      hub.close();
    }
  },
);
