/**
 * CURVE between "hosts" on loopback: each host is a runtime directory and a key directory of its
 * own; a hub listens on tcp with its host's keys. Nodes on two hosts exchange data over CURVE; an
 * untrusted host is refused by the hub (counted, logged with its address and key); missing keys
 * and missing hub keys are clear errors naming the fix; a CURVE node refuses a plain-text peer.
 * (The capture on a real link is test/curve-netns.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fetchHubInfo, Hub, hubInfoPlugin, startHubProcess } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { KeyStore } from "../src/transport/key-store.js";
import { spawnFixture, tempRuntime, until } from "./helpers.js";

/** A host: its own runtime dir and key dir (with keys unless `noKeys`), removed on dispose. */
function host(noKeys = false): { dir: string; keys: KeyStore; publicKey: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-curve-host-"));
  const keys = new KeyStore(join(dir, "keys"), undefined);
  const publicKey = noKeys ? "" : keys.init().publicKey;
  return { dir, keys, publicKey, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

function envOf(h: { dir: string; keys: KeyStore }, hub: string, hubKey: string): Record<string, string> {
  return {
    MYELIN_RUNTIME_DIR: join(h.dir, "run"),
    MYELIN_KEYS_DIR: h.keys.dir,
    MYELIN_HUB: hub,
    MYELIN_HUB_KEY: hubKey,
    MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0",
    MYELIN_INSECURE: "",
  };
}

test(
  "nodes on two hosts exchange data over CURVE through a CURVE hub; the hub refuses nothing",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    using hubHost = host();
    using a = host();
    using b = host();
    hubHost.keys.trust("host-a", a.publicKey);
    hubHost.keys.trust("host-b", b.publicKey);
    b.keys.trust("host-a", a.publicKey); // a subscribes to b's publisher: b's data socket admits a
    // a names the hub's key by the name it trusts it under; b gives the key itself.
    a.keys.trust("hub", hubHost.publicKey);
    await using hub = await Hub.start({
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      keysDir: hubHost.keys.dir,
    });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    assert.equal(hub.security().publicKey, hubHost.publicKey);
    assert.equal(hub.security().insecure, false);
    await using sub = spawnFixture(
      "curve-node",
      { role: "sub", topic: "/secure", count: 20 },
      envOf(a, tcp, "hub"),
    );
    await sub.waitFor((l) => l.event === "ready" || l.event === "error", 20000, "the subscriber");
    await using pub = spawnFixture(
      "curve-node",
      { role: "pub", topic: "/secure", count: 20, marker: "secret", waitSubscribers: 1 },
      envOf(b, tcp, hubHost.publicKey),
    );
    await sub.waitFor((l) => l.event === "done" || l.event === "error", 30000, "20 messages over CURVE");
    assert.deepEqual(
      sub.lines.filter((l) => l.event === "msg").map((l) => l["data"]),
      Array.from({ length: 20 }, (_, i) => `secret ${i + 1}`),
    );
    // The publisher's record carries its host's key: what the subscriber connected with.
    const rec = hub.graph().nodes.find((n) => n.name === "curve_pub");
    assert.equal(rec?.key, b.publicKey);
    assert.equal(hub.security().refusedHandshakes, 0);
    assert.equal(pub.lines.filter((l) => l.event === "warning").length, 0);
  },
);

test(
  "a host the hub does not trust is refused, counted and logged with its address and key; its node fails naming the fix",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    using hubHost = host();
    using stranger = host();
    const log: string[] = [];
    await using hub = await Hub.start({
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      keysDir: hubHost.keys.dir,
      log: (l) => log.push(l),
    });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    await using node = spawnFixture(
      "curve-node",
      { role: "sub", topic: "/x", count: 1 },
      envOf(stranger, tcp, hubHost.publicKey),
    );
    const err = await node.waitFor(
      (l) => l.event === "error" || l.event === "ready",
      20000,
      "the node's refusal",
    );
    assert.equal(err.event, "error");
    assert.equal(err["code"], "ERR_NOT_AUTHORIZED");
    assert.match(String(err["message"]), /refused this host's CURVE key .*myelin keys trust NAME/);
    assert.ok(String(err["message"]).includes(stranger.publicKey), String(err["message"]));
    await until(() => hub.security().refusedHandshakes >= 1, 5000, "the hub's count");
    const line = log.find((l) => l.includes(stranger.publicKey));
    assert.ok(line !== undefined, `no log line names the key; log: ${log.join(" | ")}`);
    assert.match(
      line,
      /refused a connection from 127\.0\.0\.1 with key .*not trusted.*myelin keys trust NAME/,
    );
    assert.equal(hub.graph().nodes.filter((n) => n.name === "curve_sub").length, 0);
  },
);

test(
  "without keys a tcp hub refuses to start, naming the fix; --insecure starts in plain text with a warning",
  { timeout: 20000 },
  async () => {
    using rt = tempRuntime();
    using bare = host(true);
    await assert.rejects(
      Hub.start({ runtimeDir: rt.dir, listen: ["tcp://127.0.0.1:0"], keysDir: bare.keys.dir }),
      /tcp:\/\/127\.0\.0\.1:0 is a tcp link, which needs CURVE keys: this host has no CURVE keys .*myelin keys init.*--insecure/,
    );
    const log: string[] = [];
    await using hub = await Hub.start({
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      keysDir: bare.keys.dir,
      insecure: true,
      log: (l) => log.push(l),
    });
    assert.equal(hub.security().insecure, true);
    assert.ok(
      log.some((l) => /^WARNING: tcp:\/\/127\.0\.0\.1:\d+ is plain text \(--insecure\)/.test(l)),
      log.join("\n"),
    );
  },
);

test(
  "a node with a tcp hub needs keys and the hub's key, and says so; a CURVE node refuses a plain-text peer",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    using hubHost = host();
    using a = host();
    using bare = host(true);
    await using hub = await Hub.start({
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      keysDir: hubHost.keys.dir,
    });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    await assert.rejects(
      createNode({
        name: "n",
        hub: tcp,
        keysDir: a.keys.dir,
        insecure: false,
        dataEndpoint: "ipc",
        runtimeDir: join(a.dir, "run"),
      }),
      /needs CURVE and the listener's public key: set MYELIN_HUB_KEY/,
    );
    await assert.rejects(
      createNode({
        name: "n",
        hub: tcp,
        hubKey: "no-such-name",
        keysDir: a.keys.dir,
        insecure: false,
        runtimeDir: join(a.dir, "run"),
      }),
      /MYELIN_HUB_KEY: "no-such-name" is neither a trusted key's name/,
    );
    await assert.rejects(
      createNode({
        name: "n",
        hub: tcp,
        hubKey: hubHost.publicKey,
        keysDir: bare.keys.dir,
        insecure: false,
        runtimeDir: join(bare.dir, "run"),
      }),
      /needs CURVE keys: this host has no CURVE keys .*myelin keys init/,
    );
    // A plain-text publisher (MYELIN_INSECURE) registers through the ipc socket of the hub's host;
    // a CURVE subscriber elsewhere will not talk to it in clear, and says why.
    hubHost.keys.trust("host-a", a.publicKey);
    await using pub = spawnFixture(
      "curve-node",
      { role: "pub", topic: "/plain", count: 1, marker: "clear" },
      {
        MYELIN_RUNTIME_DIR: rt.dir,
        MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0",
        MYELIN_INSECURE: "1",
        MYELIN_HUB: "",
      },
    );
    await pub.waitFor((l) => l.event === "ready" || l.event === "error", 20000, "the plain-text publisher");
    await using sub = spawnFixture(
      "curve-node",
      { role: "sub", topic: "/plain", count: 1 },
      envOf(a, tcp, hubHost.publicKey),
    );
    await sub.waitFor(
      (l) => l.event === "warning" && /advertises no CURVE key/.test(String(l["message"])),
      20000,
      "the subscriber's refusal of the plain-text publisher",
    );
    assert.equal(sub.lines.filter((l) => l.event === "msg").length, 0);
  },
);

test(
  "a publisher's host that does not trust the subscriber's host refuses its link; both nodes say so",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    using hubHost = host();
    using a = host();
    using b = host();
    hubHost.keys.trust("host-a", a.publicKey);
    hubHost.keys.trust("host-b", b.publicKey);
    // b does not trust a: a's subscription to b's publisher is refused at the handshake.
    await using hub = await Hub.start({
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      keysDir: hubHost.keys.dir,
    });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    await using pub = spawnFixture(
      "curve-node",
      { role: "pub", topic: "/guarded", count: 1, marker: "guarded" },
      envOf(b, tcp, hubHost.publicKey),
    );
    await pub.waitFor((l) => l.event === "ready" || l.event === "error", 20000, "the publisher");
    await using sub = spawnFixture(
      "curve-node",
      { role: "sub", topic: "/guarded", count: 1 },
      envOf(a, tcp, hubHost.publicKey),
    );
    const subWarning = await sub.waitFor(
      (l) => l.event === "warning" && l["code"] === "ERR_NOT_AUTHORIZED",
      20000,
      "the subscriber's warning",
    );
    assert.match(
      String(subWarning["message"]),
      /^node at tcp:\/\/127\.0\.0\.1:\d+ refused this host's CURVE key/,
    );
    assert.ok(String(subWarning["message"]).includes(a.publicKey));
    const pubWarning = await pub.waitFor(
      (l) => l.event === "warning" && l["code"] === "ERR_NOT_AUTHORIZED",
      20000,
      "the publisher's warning",
    );
    assert.match(
      String(pubWarning["message"]),
      /refused a connection to this node's data socket from 127\.0\.0\.1 with key .*not trusted/,
    );
    assert.ok(String(pubWarning["message"]).includes(a.publicKey));
    assert.equal(sub.lines.filter((l) => l.event === "msg").length, 0);
  },
);

test(
  "/_hub/info says how the tcp endpoints are secured: CURVE under the host key, or insecure",
  { timeout: 30000 },
  async () => {
    for (const insecure of [false, true]) {
      using rt = tempRuntime();
      using h = host();
      const proc = await startHubProcess({
        hub: { runtimeDir: rt.dir, listen: ["tcp://127.0.0.1:0"], keysDir: h.keys.dir, insecure },
        plugins: [hubInfoPlugin({ version: "test" })],
      });
      try {
        const node = await createNode({ name: "_info_reader", runtimeDir: rt.dir });
        try {
          const info = await fetchHubInfo(node, 5000);
          assert.equal(info.insecure, insecure);
          assert.equal(info.public_key, insecure ? "" : h.publicKey);
          assert.equal(info.refused_handshakes, 0);
        } finally {
          await node.close();
        }
      } finally {
        await proc.close();
      }
    }
  },
);
