/**
 * The uplink and the NATS bridge log in to a real nats-server the test starts with each way NATS
 * has: user and password, a token, an nkey, a `.creds` file in operator/JWT mode (a memory
 * resolver; the JWTs made with @nats-io/jwt), and TLS (certificates made with openssl). With the
 * right secret the uplink connects and forwards a durable topic into its JetStream stream, and the
 * bridge connects and forwards a topic; with a wrong one each says what was refused and which
 * setting to fix, keeps trying, and nothing crashes. A client that trusts another CA refuses the
 * server's certificate and says to fix `tls.caFile`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions } from "nats";
import { stringify } from "yaml";
import { Hub, startHubProcess, type HubProcess } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { storePlugin } from "../src/store/index.js";
import { uplinkPlugin, type RunningUplinkPlugin, type UplinkStatus } from "../src/gateway/index.js";
import type { NatsBridgeConfig } from "../src/gateway/bridge-config.js";
import { startBridge } from "../src/gateway/bridge-host.js";
import { tempDir } from "./bridge-peers.js";
import { makeCerts, makeNkeyUser, makeOperator, SecureNats } from "./nats-secure.js";

/** One way of logging in: the server's config, and the settings a client gives, right and wrong. */
interface LoginCase {
  name: string;
  /** The uplink's `nats:` settings (and a bridge's, the same keys) that log in. */
  good: Record<string, unknown>;
  bad: Record<string, unknown>;
  /** What the uplink's error says for `bad` (the setting named as `nats.<key>`). */
  badUplink: RegExp;
  /** What the bridge's error says for `bad` (the setting named as `<key> of bridge <name>`). */
  badBridge: RegExp;
  /** nats.js options of the test's own client. */
  client: ConnectionOptions;
}

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 20000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function siteHub(
  dir: string,
  site: string,
  url: string,
  login: Record<string, unknown>,
): Promise<HubProcess> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "uplink.yaml");
  writeFileSync(
    file,
    stringify({
      site,
      nats: { servers: [url], connectTimeoutMs: 2000, ...login },
      export: { durable: ["/robot/**"] },
    }),
  );
  return startHubProcess({
    hub: { runtimeDir: join(dir, "run") },
    plugins: [storePlugin({ dataDir: join(dir, "data"), fsync: "never" }), uplinkPlugin({ file })],
  });
}

function uplinkOf(p: HubProcess): UplinkStatus {
  return (p.plugins.get("uplink") as RunningUplinkPlugin).uplink.status();
}

/** Runs the uplink and a bridge against `server`, with `c.good` and then `c.bad`. */
async function exercise(c: LoginCase, server: SecureNats, dir: string): Promise<void> {
  // The uplink, with the right secret: connects, and the stream gets the topic's messages.
  const site = `s-${c.name}`;
  const hub = await siteHub(join(dir, "good"), site, server.url, c.good);
  try {
    const uplink = (hub.plugins.get("uplink") as RunningUplinkPlugin).uplink;
    await uplink.waitConnected(20000).catch((err: Error) => {
      throw new Error(`${c.name}: ${err.message}`);
    });
    const node = await createNode({ name: "pub", runtimeDir: join(dir, "good", "run") });
    try {
      const pub = await node.createPublisher("/robot/log", std_msgs.String, {
        qos: { durability: "persistent" },
      });
      for (let i = 0; i < 5; i++) await pub.publish({ data: `m${i}` });
      await until(`${c.name}: 5 messages forwarded`, () => uplinkOf(hub).forwarders[0]?.forwarded === 5);
    } finally {
      await node.close();
    }
  } finally {
    await hub.close();
  }
  const nc = await connect({ servers: server.url, ...c.client });
  try {
    const info = await (await nc.jetstreamManager()).streams.info(`MYELIN_SITE_${site}`);
    assert.equal(info.state.messages, 5, `${c.name}: the site's stream holds the 5 messages`);

    // The uplink with a wrong secret: a clear error in its status and log, no crash, no connection.
    const bad = await siteHub(join(dir, "bad"), site, server.url, c.bad);
    try {
      await until(`${c.name}: the uplink's error`, () => c.badUplink.test(uplinkOf(bad).lastError ?? ""));
      assert.notEqual(uplinkOf(bad).state, "connected");
    } finally {
      await bad.close();
    }

    // The NATS bridge: the same logins; a topic goes out on core NATS.
    const rt = join(dir, "bridge");
    mkdirSync(rt, { recursive: true });
    const hubB = await Hub.start({ runtimeDir: rt });
    const app = await createNode({ name: "app", runtimeDir: rt });
    const bnode = await createNode({ name: "_bridge_login", runtimeDir: rt });
    try {
      const cfg = (name: string, login: Record<string, unknown>): NatsBridgeConfig => ({
        name,
        kind: "nats",
        url: server.url,
        mapping: [
          { myelin: "/fleet/status", external: "fleet.status", type: "std_msgs/String", direction: "out" },
        ],
        ...login,
      });
      const got: string[] = [];
      const sub = nc.subscribe("fleet.status");
      void (async () => {
        for await (const m of sub) got.push(new TextDecoder().decode(m.data));
      })();
      await nc.flush();
      const bridge = await startBridge(cfg("good", c.good), { node: bnode });
      try {
        await bridge.waitConnected(20000);
        const pub = await app.createPublisher("/fleet/status", std_msgs.String);
        await until(`${c.name}: a message through the bridge`, async () => {
          await pub.publish({ data: "ok" });
          return got.length > 0;
        });
      } finally {
        await bridge.close();
      }
      const wrong = await startBridge(cfg("wrong", c.bad), { node: bnode });
      try {
        await until(`${c.name}: the bridge's error`, () => c.badBridge.test(wrong.status().lastError ?? ""));
        assert.notEqual(wrong.status().state, "connected");
      } finally {
        await wrong.close();
      }
    } finally {
      await bnode.close();
      await app.close();
      hubB.close();
    }
  } finally {
    await nc.close();
  }
}

test("user and password", { timeout: 90_000 }, async () => {
  using tmp = tempDir("wt-metrics-login-");
  await using server = await SecureNats.start("authorization { user: site, password: right-pw }");
  await exercise(
    {
      name: "userpass",
      good: { user: "site", pass: "right-pw" },
      bad: { user: "site", pass: "wrong-pw" },
      badUplink: /refused user 'site' with the password of nats\.pass: fix nats\.user or nats\.pass/,
      badBridge:
        /refused user 'site' with the password of pass of bridge wrong: fix user of bridge wrong or pass of bridge wrong/,
      client: { user: "site", pass: "right-pw" },
    },
    server,
    tmp.dir,
  );
});

test("a token (from an environment variable too)", { timeout: 90_000 }, async () => {
  using tmp = tempDir("wt-metrics-login-");
  await using server = await SecureNats.start("authorization { token: the-right-token }");
  process.env["WT_METRICS_NATS_TOKEN"] = "a-wrong-token";
  try {
    await exercise(
      {
        name: "token",
        good: { token: "the-right-token" },
        bad: { tokenEnv: "WT_METRICS_NATS_TOKEN" },
        badUplink: /refused the token of nats\.tokenEnv \(variable WT_METRICS_NATS_TOKEN\)/,
        badBridge: /refused the token of tokenEnv of bridge wrong \(variable WT_METRICS_NATS_TOKEN\)/,
        client: { token: "the-right-token" },
      },
      server,
      tmp.dir,
    );
  } finally {
    delete process.env["WT_METRICS_NATS_TOKEN"];
  }
});

test("an nkey seed file; a file that holds no seed is named", { timeout: 90_000 }, async () => {
  using tmp = tempDir("wt-metrics-login-");
  const user = makeNkeyUser();
  const stranger = makeNkeyUser();
  const seedFile = join(tmp.dir, "user.nk");
  const strangerFile = join(tmp.dir, "stranger.nk");
  writeFileSync(seedFile, user.seed + "\n", { mode: 0o600 });
  writeFileSync(strangerFile, stranger.seed + "\n", { mode: 0o600 });
  await using server = await SecureNats.start(`authorization { users: [ { nkey: ${user.publicKey} } ] }`);
  await exercise(
    {
      name: "nkey",
      good: { nkeySeedFile: seedFile },
      bad: { nkeySeedFile: strangerFile },
      badUplink:
        /refused the nkey of nats\.nkeySeedFile \(.*stranger\.nk\): the server lists no user with its public key/,
      badBridge: /refused the nkey of nkeySeedFile of bridge wrong \(.*stranger\.nk\)/,
      client: { authenticator: nkeyAuthenticator(new TextEncoder().encode(user.seed)) },
    },
    server,
    tmp.dir,
  );
  // Not a seed at all: refused before connecting, naming the file and the setting.
  const junk = join(tmp.dir, "junk.nk");
  writeFileSync(junk, "hello\n");
  const hub = await siteHub(join(tmp.dir, "junk"), "s-junk", server.url, { nkeySeedFile: junk });
  try {
    await until("the junk seed's error", () =>
      /nats\.nkeySeedFile .*junk\.nk does not hold a user nkey seed/.test(uplinkOf(hub).lastError ?? ""),
    );
  } finally {
    await hub.close();
  }
});

test("a .creds file in operator/JWT mode (memory resolver)", { timeout: 90_000 }, async () => {
  using tmp = tempDir("wt-metrics-login-");
  const op = await makeOperator();
  const creds = join(tmp.dir, "site.creds");
  const strangerCreds = join(tmp.dir, "stranger.creds");
  writeFileSync(creds, op.creds, { mode: 0o600 });
  writeFileSync(strangerCreds, op.strangerCreds, { mode: 0o600 });
  await using server = await SecureNats.start(op.serverConfig);
  await exercise(
    {
      name: "creds",
      good: { credsFile: creds },
      bad: { credsFile: strangerCreds },
      badUplink:
        /refused the user of nats\.credsFile \(.*stranger\.creds\): the server does not trust the account that signed its JWT/,
      badBridge: /refused the user of credsFile of bridge wrong \(.*stranger\.creds\)/,
      client: { authenticator: credsAuthenticator(new TextEncoder().encode(op.creds)) },
    },
    server,
    tmp.dir,
  );
});

test(
  "TLS with the server's CA; another CA is refused and tls.caFile is named",
  { timeout: 90_000 },
  async () => {
    using tmp = tempDir("wt-metrics-login-");
    const certs = makeCerts(tmp.dir);
    await using server = await SecureNats.start(
      `tls { cert_file: "${certs.certFile}", key_file: "${certs.keyFile}" }\nauthorization { user: site, password: pw }`,
    );
    await exercise(
      {
        name: "tls",
        good: { user: "site", pass: "pw", tls: { caFile: certs.caFile } },
        bad: { user: "site", pass: "pw", tls: { caFile: certs.otherCaFile } },
        badUplink:
          /the TLS certificate of nats:\/\/127\.0\.0\.1:\d+ is not signed by the CA of nats\.tls\.caFile \(.*other-ca\.pem\).*set nats\.tls\.caFile to the CA that signed the server's certificate/,
        badBridge: /is not signed by the CA of tls\.caFile of bridge wrong/,
        client: { user: "site", pass: "pw", tls: { caFile: certs.caFile } },
      },
      server,
      tmp.dir,
    );
  },
);

test(
  "mutual TLS: a client certificate the server's CA signed; without one, tls.certFile is named",
  { timeout: 90_000 },
  async () => {
    using tmp = tempDir("wt-metrics-login-");
    const certs = makeCerts(tmp.dir);
    await using server = await SecureNats.start(
      `tls { cert_file: "${certs.certFile}", key_file: "${certs.keyFile}", ca_file: "${certs.caFile}", verify: true }`,
    );
    const mine = { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile };
    await exercise(
      {
        name: "mtls",
        good: { tls: mine },
        bad: { tls: { caFile: certs.caFile } },
        badUplink:
          /the NATS server nats:\/\/127\.0\.0\.1:\d+ wants a TLS client certificate .*: set nats\.tls\.certFile and nats\.tls\.keyFile/,
        badBridge:
          /wants a TLS client certificate .*: set tls\.certFile of bridge wrong and tls\.keyFile of bridge wrong/,
        client: { tls: mine },
      },
      server,
      tmp.dir,
    );
  },
);
