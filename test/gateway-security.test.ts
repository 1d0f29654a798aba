/**
 * Security and limits of the embedded MQTT gateway against real clients: hashed passwords (bad
 * password → CONNACK 4, anonymous → 5), ACLs on publish and subscribe, message size and
 * subscription limits, client certificates over TLS mapped to users, and MQTT over WebSocket.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { Hub } from "../src/hub/index.js";
import { MqttGateway } from "../src/gateway/mqtt-gateway.js";
import { hashPassword, verifyPassword } from "../src/gateway/mqtt-auth.js";
import { tempRuntime, until } from "./helpers.js";

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate with CN device-42. */
function makeCerts(dir: string): {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
} {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(dir, [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=test-ca",
  ]);
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const [name, cn] of [
    ["server", "localhost"],
    ["client", "device-42"],
  ] as const) {
    openssl(dir, ["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`]);
    const ext = name === "server" ? ["-extfile", "san.ext"] : [];
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      ...ext,
    ]);
  }
  const r = (f: string): Buffer => readFileSync(join(dir, f));
  return {
    ca: r("ca.crt"),
    cert: r("server.crt"),
    key: r("server.key"),
    clientCert: r("client.crt"),
    clientKey: r("client.key"),
  };
}

function connectRaw(
  url: string,
  opts: IClientOptions,
): Promise<{ client: MqttClient; error?: Error & { code?: number } }> {
  const client = mqtt.connect(url, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    ...opts,
  });
  return new Promise((resolve) => {
    client.once("connect", () => resolve({ client }));
    client.once("error", (error) => resolve({ client, error }));
  });
}

/** SUBACK return codes of a subscription (0x80 = refused), whether or not MQTT.js calls it an error. */
async function granted(c: MqttClient, topics: string[], qos: 0 | 1): Promise<number[]> {
  try {
    return (await c.subscribeAsync(topics, { qos })).map((g) => g.qos);
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet;
    if (packet?.granted === undefined) throw err;
    return packet.granted;
  }
}

test("passwords, ACLs, limits, client certificates over TLS, WebSocket", { timeout: 45000 }, async () => {
  using rt = tempRuntime();
  const certs = makeCerts(rt.dir);
  const hub = await Hub.start({ runtimeDir: rt.dir });
  const gw = await MqttGateway.start({
    runtimeDir: rt.dir,
    listeners: {
      tcp: { port: 0, host: "127.0.0.1" },
      tls: { port: 0, host: "127.0.0.1", cert: certs.cert, key: certs.key, ca: certs.ca, requestCert: true },
      ws: { port: 0, host: "127.0.0.1" },
    },
    auth: {
      users: [
        {
          username: "dev1",
          password: await hashPassword("pw1"),
          acl: { publish: ["sensors/%c/#"], subscribe: ["cmd/%u/#"] },
        },
        {
          username: "admin",
          password: await hashPassword("admin-pw"),
          acl: { publish: ["#"], subscribe: ["#"] },
        },
      ],
      certificates: [{ cn: "device-42", user: "dev1" }],
    },
    limits: { maxMessageBytes: 1024, maxSubscriptions: 3 },
  });
  const clients: MqttClient[] = [];
  const tcp = `mqtt://127.0.0.1:${gw.port("tcp")}`;
  try {
    // The hash helper round-trips; a wrong password does not verify.
    const h = await hashPassword("s3cret");
    assert.match(h, /^scrypt\$16384\$8\$1\$/);
    assert.equal(await verifyPassword("s3cret", h), true);
    assert.equal(await verifyPassword("nope", h), false);

    // Bad password: CONNACK 4, from mosquitto_pub and MQTT.js; no credentials: 5.
    const mp = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        "/usr/bin/mosquitto_pub",
        [
          "-h",
          "127.0.0.1",
          "-p",
          String(gw.port("tcp")),
          "-u",
          "dev1",
          "-P",
          "wrong",
          "-t",
          "sensors/dev1/x",
          "-m",
          "{}",
        ],
        { timeout: 10000 },
        (err, _o, stderr) => resolve({ code: (err as { code?: number } | null)?.code ?? 0, stderr }),
      ),
    );
    assert.notEqual(mp.code, 0);
    assert.match(mp.stderr, /bad user name or password/i);
    const bad = await connectRaw(tcp, { clientId: "x1", username: "dev1", password: "wrong" });
    clients.push(bad.client);
    assert.equal(bad.error?.code, 4);
    const anon = await connectRaw(tcp, { clientId: "x2" });
    clients.push(anon.client);
    assert.equal(anon.error?.code, 5);

    // ACLs: dev1 may publish under sensors/dev1/ and subscribe under cmd/dev1/.
    const admin = await connectRaw(tcp, { clientId: "admin", username: "admin", password: "admin-pw" });
    clients.push(admin.client);
    assert.equal(admin.error, undefined);
    const seen: string[] = [];
    admin.client.on("message", (t, p) => seen.push(`${t} ${p.toString()}`));
    await admin.client.subscribeAsync("sensors/#", { qos: 1 });
    const dev = await connectRaw(tcp, { clientId: "dev1", username: "dev1", password: "pw1" });
    clients.push(dev.client);
    assert.equal(dev.error, undefined);
    assert.deepEqual(await granted(dev.client, ["cmd/dev1/#", "cmd/other/#", "sensors/#"], 1), [1, 128, 128]);
    await dev.client.publishAsync("sensors/dev2/t", "denied", { qos: 1 });
    await dev.client.publishAsync("sensors/dev1/t", "allowed", { qos: 1 });
    await until(() => seen.length >= 1, 10000, "the allowed message");
    assert.deepEqual(seen, ["sensors/dev1/t allowed"]);
    // Subscription limit: 3 (the refused ones do not count).
    assert.deepEqual(await granted(dev.client, ["cmd/dev1/a", "cmd/dev1/b", "cmd/dev1/c"], 0), [0, 0, 128]);
    let st = gw.status();
    assert.ok(st.rejected >= 4, JSON.stringify(st));
    assert.ok(st.reject_reasons.some((r) => /not allowed/.test(r)));
    assert.ok(st.refused_connections >= 3);

    // Oversize: the client is disconnected and the reject counted.
    const closed = new Promise<void>((resolve) => dev.client.once("close", () => resolve()));
    dev.client.publish("sensors/dev1/big", Buffer.alloc(2000, 65), { qos: 0 });
    await closed;
    await until(() => gw.status().last_reject.includes("maxMessageBytes"), 10000, "the oversize reject");

    // TLS with a client certificate: CN device-42 logs in as dev1, no password.
    const tls = await connectRaw(`mqtts://127.0.0.1:${gw.port("tls")}`, {
      clientId: "dev1",
      ca: certs.ca,
      cert: certs.clientCert,
      key: certs.clientKey,
    });
    clients.push(tls.client);
    assert.equal(tls.error, undefined, tls.error?.message);
    await tls.client.publishAsync("sensors/dev1/tls", "over tls", { qos: 1 });
    await until(() => seen.includes("sensors/dev1/tls over tls"), 10000, "the TLS message");
    st = gw.status();
    const tlsClient = st.clients.find((c) => c.transport === "tls");
    assert.equal(tlsClient?.user, "dev1");

    // WebSocket: MQTT.js over ws://…/mqtt.
    const ws = await connectRaw(`ws://127.0.0.1:${gw.port("ws")}/mqtt`, {
      clientId: "web",
      username: "admin",
      password: "admin-pw",
    });
    clients.push(ws.client);
    assert.equal(ws.error, undefined, ws.error?.message);
    const wsSeen: string[] = [];
    ws.client.on("message", (t, p) => wsSeen.push(`${t} ${p.toString()}`));
    await ws.client.subscribeAsync("web/#", { qos: 1 });
    await admin.client.publishAsync("web/hello", "from tcp", { qos: 1 });
    await until(() => wsSeen.length >= 1, 10000, "the WebSocket client's message");
    assert.deepEqual(wsSeen, ["web/hello from tcp"]);
    assert.ok(gw.status().clients.some((c) => c.transport === "ws" && c.id === "web"));
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await gw.close();
    hub.close();
  }
});
