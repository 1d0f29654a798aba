/**
 * MQTT 3.1.1 conformance of the embedded gateway where aedes alone falls short, with real clients
 * and raw bytes: an empty client id with clean session false gets CONNACK 2; a topic, filter or
 * client id that is not well-formed UTF-8 or holds U+0000 closes the connection and reaches no
 * one; a PUBLISH to a `$` topic is acknowledged and dropped; ACL deny rules; many devices behind
 * one address are not refused by the connection rate.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect as netConnect, type Socket } from "node:net";
import type { MqttClient } from "mqtt";
import { Hub } from "../src/hub/index.js";
import { MqttGateway, type MqttGatewayOptions } from "../src/gateway/mqtt-gateway.js";
import { hashPassword } from "../src/gateway/mqtt-auth.js";
import { tempRuntime, until } from "./helpers.js";
import { tryConnectMqtt } from "./mqtt-hub.js";

const connectClient = tryConnectMqtt;

/** A raw TCP client: sends a CONNECT, waits for its CONNACK, then lets the test write bytes. */
async function rawSession(port: number, clientId: string): Promise<{ sock: Socket; closed: Promise<void> }> {
  const sock = netConnect(port, "127.0.0.1");
  const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  sock.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  const connack = new Promise<void>((resolve) => sock.once("data", () => resolve()));
  sock.write(connectBytes(Buffer.from(clientId), true));
  await connack;
  return { sock, closed };
}

/** An MQTT 3.1.1 CONNECT (keep-alive 30 s) with the client id given as raw bytes. */
function connectBytes(clientId: Buffer, clean: boolean): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, 4]),
    Buffer.from("MQTT"),
    Buffer.from([4, clean ? 0x02 : 0x00, 0, 30, clientId.length >> 8, clientId.length & 0xff]),
    clientId,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** Sends a raw CONNECT; resolves with the CONNACK return code, or -1 if the connection closed first. */
async function rawConnack(port: number, clientId: Buffer, clean: boolean): Promise<number> {
  const sock = netConnect(port, "127.0.0.1");
  sock.on("error", () => undefined);
  try {
    return await new Promise<number>((resolve) => {
      sock.once("data", (d) => resolve(d[0] === 0x20 ? d[3]! : -1));
      sock.once("close", () => resolve(-1));
      sock.write(connectBytes(clientId, clean));
    });
  } finally {
    sock.destroy();
  }
}

/** A QoS 0 PUBLISH whose topic is the given raw bytes. */
function publishBytes(topic: Buffer, payload = "x"): Buffer {
  const body = Buffer.concat([
    Buffer.from([topic.length >> 8, topic.length & 0xff]),
    topic,
    Buffer.from(payload),
  ]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** A SUBSCRIBE (message id 1, QoS 0) of one filter given as raw bytes. */
function subscribeBytes(filter: Buffer): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, 1, filter.length >> 8, filter.length & 0xff]),
    filter,
    Buffer.from([0]),
  ]);
  return Buffer.concat([Buffer.from([0x82, body.length]), body]);
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function withGateway(
  rtDir: string,
  opts: Partial<MqttGatewayOptions>,
  body: (gw: MqttGateway, port: number, clients: MqttClient[]) => Promise<void>,
): Promise<void> {
  const hub = await Hub.start({ runtimeDir: rtDir });
  const gw = await MqttGateway.start({
    runtimeDir: rtDir,
    listeners: { tcp: { port: 0, host: "127.0.0.1" } },
    ...opts,
  });
  const clients: MqttClient[] = [];
  try {
    await body(gw, gw.port("tcp")!, clients);
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await gw.close();
    hub.close();
  }
}

test(
  "empty client id: CONNACK 2 with clean session false, accepted with clean session true",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await withGateway(rt.dir, {}, async (_gw, port, clients) => {
      // MQTT.js refuses to send this itself; the bytes are what other clients send.
      assert.equal(await rawConnack(port, Buffer.alloc(0), false), 2, "identifier rejected");
      assert.equal(await rawConnack(port, Buffer.alloc(0), true), 0);
      void clients;
    });
  },
);

test(
  "ill-formed UTF-8, encoded surrogates and U+0000 in topics, filters and ids close the connection and reach no one",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await withGateway(rt.dir, {}, async (gw, port, clients) => {
      const watcher = await connectClient(port, { clientId: "watcher" });
      clients.push(watcher.client);
      const seen: string[] = [];
      watcher.client.on("message", (t) => seen.push(t));
      await watcher.client.subscribeAsync("#", { qos: 0 });

      const bad: [string, Buffer][] = [
        ["invalid byte", Buffer.from([0x61, 0x2f, 0xff, 0x62])],
        ["encoded surrogate", Buffer.concat([Buffer.from("a/"), Buffer.from([0xed, 0xa0, 0x80])])],
        ["overlong slash", Buffer.from([0x61, 0xc0, 0xaf, 0x62])],
        ["U+0000", Buffer.from("a/\u0000/b")],
      ];
      for (const [what, topic] of bad) {
        const s = await rawSession(port, `bad-pub-${seen.length}-${what.length}`);
        s.sock.write(publishBytes(topic));
        await within(s.closed, 5000, `closing the connection after a PUBLISH with ${what}`);
        const f = await rawSession(port, `bad-sub-${what.length}`);
        f.sock.write(subscribeBytes(topic));
        await within(f.closed, 5000, `closing the connection after a SUBSCRIBE with ${what}`);
      }
      // A client id with U+0000 in CONNECT: closed without a CONNACK.
      assert.equal(await rawConnack(port, Buffer.from("a\u0000b"), true), -1);

      // A well-formed topic with a real U+FFFD and non-ASCII letters passes.
      const ok = await rawSession(port, "good");
      ok.sock.write(publishBytes(Buffer.from("café/\uFFFD/ok")));
      await until(() => seen.length >= 1, 5000, "the well-formed message");
      assert.deepEqual(seen, ["café/\uFFFD/ok"]);
      ok.sock.destroy();
      assert.ok(
        gw.status().reject_reasons.includes("malformed string (UTF-8, U+0000)"),
        JSON.stringify(gw.status().reject_reasons),
      );
    });
  },
);

test(
  "a PUBLISH to a $ topic is acknowledged, dropped and counted; the client stays connected",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await withGateway(rt.dir, {}, async (gw, port, clients) => {
      const c = await connectClient(port, { clientId: "dollar" });
      clients.push(c.client);
      const seen: string[] = [];
      c.client.on("message", (t) => seen.push(t));
      await c.client.subscribeAsync("ok/#", { qos: 1 });
      await c.client.publishAsync("$foo/bar", "x", { qos: 1 }); // resolves on PUBACK
      await c.client.publishAsync("ok/1", "y", { qos: 1 });
      await until(() => seen.includes("ok/1"), 5000, "the next message");
      assert.deepEqual(seen, ["ok/1"]);
      assert.equal(c.client.connected, true);
      assert.ok(gw.status().reject_reasons.includes("publish to a $ topic"));
    });
  },
);

test(
  "ACL deny rules: everything under plant/ except plant/secret/#, live and for a persistent session",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const auth = {
      users: [
        {
          username: "op",
          password: await hashPassword("pw"),
          acl: {
            publish: ["plant/#"],
            subscribe: ["plant/#"],
            deny: { publish: ["plant/secret/#"], subscribe: ["plant/secret/#"] },
          },
        },
        {
          username: "admin",
          password: await hashPassword("admin"),
          acl: { publish: ["#"], subscribe: ["#"] },
        },
      ],
    };
    await withGateway(rt.dir, { auth, dataDir: `${rt.dir}/mqtt` }, async (_gw, port, clients) => {
      const admin = await connectClient(port, { clientId: "admin", username: "admin", password: "admin" });
      clients.push(admin.client);
      const adminSeen: string[] = [];
      admin.client.on("message", (t) => adminSeen.push(t));
      await admin.client.subscribeAsync("plant/#", { qos: 1 });

      const op = await connectClient(port, { clientId: "op", username: "op", password: "pw", clean: false });
      clients.push(op.client);
      const opSeen: string[] = [];
      op.client.on("message", (t) => opSeen.push(t));
      const g = await op.client
        .subscribeAsync(["plant/secret/x", "plant/#"], { qos: 1 })
        .catch((e: { packet?: { granted?: number[] } }) => e.packet?.granted?.map((q) => ({ qos: q })) ?? []);
      assert.deepEqual(g.map((x) => x.qos).sort(), [1, 128], "a filter within a denied pattern: SUBACK 0x80");

      await op.client.publishAsync("plant/secret/leak", "no", { qos: 1 });
      await op.client.publishAsync("plant/line1/temp", "yes", { qos: 1 });
      await admin.client.publishAsync("plant/secret/key", "k", { qos: 1 });
      await admin.client.publishAsync("plant/line1/cmd", "go", { qos: 1 });
      await until(
        () => opSeen.includes("plant/line1/cmd") && adminSeen.includes("plant/line1/temp"),
        5000,
        "the allowed messages",
      );
      assert.ok(!adminSeen.includes("plant/secret/leak"), "a denied publish is dropped");
      assert.ok(!opSeen.includes("plant/secret/key"), "a denied topic is not delivered through plant/#");

      // Offline: only what the ACL lets through is queued and delivered.
      await op.client.endAsync();
      await admin.client.publishAsync("plant/secret/key2", "k", { qos: 1 });
      await admin.client.publishAsync("plant/line2/cmd", "go", { qos: 1 });
      const back = await connectClient(port, {
        clientId: "op",
        username: "op",
        password: "pw",
        clean: false,
      });
      clients.push(back.client);
      const backSeen: string[] = [];
      back.client.on("message", (t) => backSeen.push(t));
      await until(() => backSeen.includes("plant/line2/cmd"), 5000, "the queued allowed message");
      assert.deepEqual(backSeen, ["plant/line2/cmd"]);
    });
  },
);

test(
  "connection rate: 80 devices behind one address connect; a per-address limit, when set, refuses with CONNACK 3 naming it",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await withGateway(rt.dir, {}, async (_gw, port, clients) => {
      for (let i = 0; i < 80; i++) {
        const c = await connectClient(port, { clientId: `device-${i}` });
        clients.push(c.client);
        assert.equal(c.code, 0, `device ${i}`);
      }
    });
    const lines: string[] = [];
    await withGateway(
      rt.dir,
      { limits: { maxConnectionsPerMinutePerAddress: 3 }, log: (l) => lines.push(l) },
      async (_gw, port, clients) => {
        for (let i = 0; i < 3; i++) {
          const c = await connectClient(port, { clientId: `d-${i}` });
          clients.push(c.client);
          assert.equal(c.code, 0);
        }
        const fourth = await connectClient(port, { clientId: "d-3" });
        clients.push(fourth.client);
        assert.equal(fourth.code, 3);
        assert.match(
          lines.join("\n"),
          /more than 3 connections per minute from 127\.0\.0\.1 \(maxConnectionsPerMinutePerAddress\)/,
        );
      },
    );
  },
);

test(
  "a burst of 500 QoS 2 publishes from MQTT.js is all acknowledged; a client holding too many bytes without PUBREL is disconnected",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await withGateway(rt.dir, { limits: { maxInflightBytes: 20000 } }, async (gw, port, clients) => {
      const sub = await connectClient(port, { clientId: "q2-sub" });
      clients.push(sub.client);
      const got = new Set<string>();
      sub.client.on("message", (_t, p) => got.add(p.toString()));
      await sub.client.subscribeAsync("burst/#", { qos: 2 });
      const pub = await connectClient(port, { clientId: "q2-pub" });
      clients.push(pub.client);
      // MQTT.js sends all 500 at once and answers every PUBREC with a PUBREL.
      await Promise.all(
        Array.from({ length: 500 }, (_, i) => pub.client.publishAsync("burst/x", `m${i}`, { qos: 2 })),
      );
      await until(() => got.size === 500, 20000, "all 500 QoS 2 messages");

      // A raw client that never sends PUBREL: 1 KiB messages, disconnected once 20,000 bytes wait.
      const s = await rawSession(port, "withholder");
      const topic = Buffer.from("burst/held");
      for (let id = 1; id <= 40 && !s.sock.destroyed; id++) {
        const body = Buffer.concat([
          Buffer.from([topic.length >> 8, topic.length & 0xff]),
          topic,
          Buffer.from([id >> 8, id & 0xff]),
          Buffer.alloc(1024, 0x61),
        ]);
        const len = body.length; // < 16384: two bytes of remaining length
        s.sock.write(Buffer.concat([Buffer.from([0x34, (len & 0x7f) | 0x80, len >> 7]), body]));
      }
      await within(s.closed, 10000, "disconnecting the client over maxInflightBytes");
      assert.equal(
        gw.status().clients.some((c) => c.id === "withholder"),
        false,
      );
    });
  },
);
