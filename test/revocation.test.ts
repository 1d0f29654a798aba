/**
 * Revocation of live connections, between "hosts" on loopback (each a runtime dir and a key dir):
 * a remote host's node publishes through a CURVE hub to a subscriber on the hub's host; `myelin
 * keys revoke` on the hub's host cuts it within a bound, with no restart — the hub refuses its
 * messages, its node leaves the graph, the subscriber stops receiving — and `myelin keys trust`
 * restores it, again with no restart of anything. The same for a remote subscriber of a local
 * publisher (the publisher's process cuts it), and for a peer hub (the link closes at once).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { KeyStore } from "../src/transport/key-store.js";
import { spawnFixture, tempRuntime, until } from "./helpers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

function host(): { dir: string; keys: KeyStore; publicKey: string } & Disposable {
  const dir = mkdtempSync(join(tmpdir(), "myelin-revoke-host-"));
  const keys = new KeyStore(join(dir, "keys"), undefined);
  const publicKey = keys.init().publicKey;
  return { dir, keys, publicKey, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 20000 });
  assert.equal(r.status, 0, `myelin ${args.join(" ")}: ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

test(
  "myelin keys revoke cuts a publishing remote node within a bound without restarts; keys trust restores it",
  { timeout: 90000 },
  async () => {
    using rt = tempRuntime();
    using hubHost = host();
    using remote = host();
    hubHost.keys.trust("remote", remote.publicKey);
    remote.keys.trust("hub", hubHost.publicKey); // the remote publisher's data socket admits the subscriber
    const log: string[] = [];
    await using hub = await Hub.start({
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      keysDir: hubHost.keys.dir,
      log: (l) => log.push(l),
    });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    await using sub = await createNode({
      name: "local_sub",
      runtimeDir: rt.dir,
      keysDir: hubHost.keys.dir,
      insecure: false,
    });
    let received = 0;
    await sub.createSubscription("/revoke/data", std_msgs.String, () => void received++, {
      qos: { reliability: "reliable" },
    });
    await using pub = spawnFixture(
      "curve-node",
      {
        role: "pub",
        topic: "/revoke/data",
        count: 1_000_000,
        marker: "m",
        waitSubscribers: 1,
        intervalMs: 20,
      },
      {
        MYELIN_RUNTIME_DIR: join(remote.dir, "run"),
        MYELIN_KEYS_DIR: remote.keys.dir,
        MYELIN_HUB: tcp,
        MYELIN_HUB_KEY: hubHost.publicKey,
        MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0",
        MYELIN_INSECURE: "",
      },
    );
    await pub.waitFor((l) => l.event === "ready" || l.event === "error", 20000, "the remote publisher");
    await until(() => received >= 5, 20000, "data from the remote publisher");
    const isPub = (): boolean => hub.graph().nodes.some((n) => n.name === "curve_pub");
    assert.ok(isPub());

    // Revoke: within a bound the hub drops the node and refuses its connection; data stops.
    const refusedBefore = hub.security().refusedHandshakes;
    const t0 = Date.now();
    cli(["keys", "revoke", "remote", "--keys-dir", hubHost.keys.dir]);
    await until(() => !isPub(), 15000, "the revoked node leaving the graph");
    const cutMs = Date.now() - t0;
    assert.ok(
      log.some(
        (l) => l.includes(`key ${remote.publicKey} revoked`) && /1 node\(s\) registered with it left/.test(l),
      ),
      log.join("\n"),
    );
    assert.ok(hub.security().refusedHandshakes > refusedBefore, "the revoked connection is counted");
    // The subscriber learns the node left and drops its link: nothing more arrives.
    await until(
      () => !(sub.graph()?.nodes ?? []).some((n) => n.name === "curve_pub"),
      15000,
      "the subscriber's graph",
    );
    const atCut = received;
    const windowEnd = Date.now() + 1500;
    await until(() => Date.now() > windowEnd || received > atCut + 1, 3000, "a window after the cut");
    assert.ok(received <= atCut + 1, `${received - atCut} message(s) arrived after the cut`);
    // The node's heartbeats are dropped: it stays out for longer than the node timeout.
    const outUntil = Date.now() + hub.nodeTimeoutMs + 500;
    await until(() => Date.now() > outUntil || isPub(), hub.nodeTimeoutMs + 2000, "a node timeout");
    assert.ok(!isPub(), "the revoked node came back");

    // Trust again: it comes back and data flows, with no restart.
    cli(["keys", "trust", "remote", remote.publicKey, "--keys-dir", hubHost.keys.dir]);
    await until(isPub, 15000, "the node back in the graph");
    const back = received;
    await until(() => received >= back + 5, 15000, "data flowing again");
    process.stdout.write(`# revocation cut the node in ${cutMs} ms\n`);
  },
);

test(
  "revoking a peer hub's key closes the link to it and its nodes leave the graph at once; trusting it again restores the link",
  { timeout: 60000 },
  async () => {
    using h1 = host();
    using h2 = host();
    h1.keys.trust("h2", h2.publicKey);
    h2.keys.trust("h1", h1.publicKey);
    const log1: string[] = [];
    await using hub2 = await Hub.start({
      runtimeDir: join(h2.dir, "run"),
      keysDir: h2.keys.dir,
      host: "h2",
      listen: ["tcp://127.0.0.1:0"],
      peerLeaseMs: 20000, // long: the cut must come from the revocation, not the lease
    });
    const ep2 = hub2.endpoints.find((e) => e.startsWith("tcp://"))!;
    await using hub1 = await Hub.start({
      runtimeDir: join(h1.dir, "run"),
      keysDir: h1.keys.dir,
      host: "h1",
      listen: ["tcp://127.0.0.1:0"],
      peers: [`${ep2}#h2`],
      peerLeaseMs: 20000,
      log: (l) => log1.push(l),
    });
    await using cam = await createNode({ name: "cam", runtimeDir: join(h2.dir, "run"), dataEndpoint: "ipc" });
    const has = (): boolean => hub1.graph().nodes.some((n) => n.id === cam.id);
    await until(has, 20000, "h2's node in h1's graph");

    const t0 = Date.now();
    h1.keys.revoke("h2");
    await until(() => !has(), 5000, "h2's node leaving h1's graph");
    const cutMs = Date.now() - t0;
    assert.ok(cutMs < 5000);
    const peer = hub1.siteStatus().peers.find((p) => p.endpoint === ep2);
    assert.equal(peer?.revoked, true, JSON.stringify(hub1.siteStatus().peers));
    assert.ok(
      log1.some((l) => /link to peer hub at .* closed: its key .* was revoked/.test(l)),
      log1.join("\n"),
    );

    h1.keys.trust("h2", h2.publicKey);
    await until(has, 20000, "h2's node back in h1's graph");
    assert.notEqual(hub1.siteStatus().peers.find((p) => p.endpoint === ep2)?.revoked, true);
    process.stdout.write(`# peer hub revocation cut its nodes in ${cutMs} ms\n`);
  },
);

test(
  "a publisher's node process cuts a subscriber of a revoked host: nothing more reaches it; trusted again, data flows",
  { timeout: 90000 },
  async () => {
    using rt = tempRuntime();
    using hubHost = host();
    using remote = host();
    hubHost.keys.trust("remote", remote.publicKey);
    remote.keys.trust("hub", hubHost.publicKey);
    await using hub = await Hub.start({
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      keysDir: hubHost.keys.dir,
    });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    // The publisher: a node process on the hub's host, its data socket on tcp with CURVE.
    await using pub = spawnFixture(
      "curve-node",
      {
        role: "pub",
        topic: "/revoke/sub",
        count: 1_000_000,
        marker: "p",
        waitSubscribers: 1,
        intervalMs: 20,
      },
      {
        MYELIN_RUNTIME_DIR: rt.dir,
        MYELIN_KEYS_DIR: hubHost.keys.dir,
        MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0",
        MYELIN_INSECURE: "",
      },
    );
    await pub.waitFor((l) => l.event === "ready" || l.event === "error", 20000, "the publisher");
    // The subscriber: a node process of the remote host.
    await using sub = spawnFixture(
      "curve-node",
      { role: "sub", topic: "/revoke/sub", count: 1_000_000 },
      {
        MYELIN_RUNTIME_DIR: join(remote.dir, "run"),
        MYELIN_KEYS_DIR: remote.keys.dir,
        MYELIN_HUB: tcp,
        MYELIN_HUB_KEY: hubHost.publicKey,
        MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0",
        MYELIN_INSECURE: "",
      },
    );
    const got = (): number => sub.lines.filter((l) => l.event === "msg").length;
    await until(() => got() >= 5, 30000, "data at the remote subscriber");

    cli(["keys", "revoke", "remote", "--keys-dir", hubHost.keys.dir]);
    await until(() => !hub.graph().nodes.some((n) => n.name === "curve_sub"), 5000, "the subscriber cut");
    // The publisher's process watches the same key directory: its data socket drops the link.
    const atCut = got();
    const windowEnd = Date.now() + 2500;
    await until(() => Date.now() > windowEnd || got() > atCut + 60, 4000, "a window after the cut");
    // At most what was in flight within the trust watch's bound (about 1 s at 50 messages/s).
    assert.ok(got() <= atCut + 60, `${got() - atCut} message(s) reached the revoked host after the cut`);
    const settled = got();
    const window2 = Date.now() + 1500;
    await until(() => Date.now() > window2 || got() > settled, 3000, "a second window");
    assert.equal(got(), settled, "data still reaches the revoked host");

    cli(["keys", "trust", "remote", remote.publicKey, "--keys-dir", hubHost.keys.dir]);
    await until(() => got() >= settled + 5, 20000, "data at the subscriber again");
  },
);
