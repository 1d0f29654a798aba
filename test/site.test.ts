/**
 * Hubs peered on loopback (each "host" its own runtime dir and host name): records shared both
 * ways, a stopped peer's nodes leave after the lease, a restarted peer (new hub id, same host)
 * replaces the old one and its nodes come back; bad peer settings are refused with the fix.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  decodeHubToNode,
  encodeControl,
  type HubToNode,
  type NodeRecord,
} from "../src/node/control-protocol.js";
import { Hub } from "../src/hub/hub.js";
import { DEFAULT_TRANSPORTS } from "../src/transport/default-transports.js";
import { transportFor } from "../src/transport/transport.js";
import { KeyStore } from "../src/transport/key-store.js";
import { tempRuntime, until } from "./helpers.js";
import { TcpProxy } from "./bridge-peers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

function record(id: string, host: string): NodeRecord {
  return {
    id,
    name: id,
    pid: 1,
    host,
    process: id,
    endpoint: `ipc:///x/${id}`,
    startedAt: 0,
    pubs: [],
    subs: [],
    services: [],
  };
}

/** Registers `rec` with the hub at `endpoint` over a real socket, and keeps it alive. */
function register(endpoint: string, rec: NodeRecord): { got: HubToNode[]; close(): Promise<void> } {
  const got: HubToNode[] = [];
  const conn = transportFor(DEFAULT_TRANSPORTS, endpoint).connect(endpoint, { maxMessageBytes: 1 << 20 });
  const send = (): void => void conn.send([encodeControl({ v: 1, t: "register", node: rec, req: 1 })]);
  conn.on("up", send);
  send();
  const beat = setInterval(() => conn.send([encodeControl({ v: 1, t: "heartbeat", id: rec.id })]), 200);
  void (async () => {
    for await (const f of conn) {
      const m = decodeHubToNode(f[0]!);
      got.push(m);
      // a new hub asks unknown nodes to register again
      if (m.t === "reregister") send();
    }
  })();
  return {
    got,
    close: async () => {
      clearInterval(beat);
      await conn.close(0);
    },
  };
}

const ids = (h: Hub): string[] =>
  h
    .graph()
    .nodes.map((n) => `${n.id}@${n.host}`)
    .sort();

test(
  "two hubs share their nodes; a stopped peer's nodes leave after the lease; a restarted one's come back",
  { timeout: 60000 },
  async () => {
    using rtA = tempRuntime();
    using rtB = tempRuntime();
    const logA: string[] = [];
    await using a = await Hub.start({
      runtimeDir: rtA.dir,
      host: "ha",
      listen: ["tcp://127.0.0.1:0"],
      insecure: true,
      peerLeaseMs: 600,
      log: (l) => void logA.push(l),
    });
    const aTcp = a.endpoints.find((e) => e.startsWith("tcp://"))!;
    let b = await Hub.start({
      runtimeDir: rtB.dir,
      host: "hb",
      peers: [aTcp],
      peerLeaseMs: 600,
      insecure: true,
    });
    const na = register(a.endpoints[0]!, record("na", "ha"));
    let nb = register(b.endpoints[0]!, record("nb", "hb"));
    try {
      // Both ways, though only b lists a as its peer.
      await until(
        () => ids(a).join() === "na@ha,nb@hb" && ids(b).join() === "na@ha,nb@hb",
        10000,
        "both graphs whole",
      );
      const st = a.siteStatus();
      assert.equal(st.peers.length, 1);
      assert.equal(st.peers[0]!.host, "hb");
      assert.equal(st.peers[0]!.state, "up");
      assert.equal(st.peers[0]!.nodes, 1);
      const oldB = b.id;
      // b stops: after the lease its node leaves a's graph.
      const t0 = Date.now();
      b.close();
      await until(() => ids(a).join() === "na@ha", 5000, "nb gone from a");
      assert.ok(Date.now() - t0 >= 500, "not before the lease");
      assert.ok(
        logA.some((l) => /on host hb is unreachable .*1 node\(s\) left the graph/.test(l)),
        logA.join("\n"),
      );
      assert.equal(a.siteStatus().peers[0]!.state, "unreachable");
      // A new hub on host hb: it replaces the old one, and nb (re-registering with it) comes back.
      await nb.close();
      b = await Hub.start({
        runtimeDir: rtB.dir,
        host: "hb",
        peers: [aTcp],
        peerLeaseMs: 600,
        insecure: true,
      });
      nb = register(b.endpoints[0]!, record("nb", "hb"));
      await until(() => ids(a).join() === "na@ha,nb@hb", 10000, "nb back in a's graph");
      assert.ok(
        logA.some((l) => l.includes(`peer hub ${oldB} on host hb was replaced by hub ${b.id}`)),
        logA.join("\n"),
      );
      assert.deepEqual(
        a.siteStatus().peers.map((p) => [p.hub, p.state]),
        [[b.id, "up"]],
      );
      // A local node cannot take over a remote node's id.
      const evil = register(a.endpoints[0]!, { ...record("nb", "ha"), pubs: [] });
      await until(() => evil.got.some((m) => m.t === "error"), 5000, "the refusal");
      assert.match(
        (evil.got.find((m) => m.t === "error") as { message: string }).message,
        /node id nb belongs to a node of another host's hub/,
      );
      assert.equal(a.graph().nodes.find((n) => n.id === "nb")!.host, "hb");
      await evil.close();
    } finally {
      await na.close();
      await nb.close();
      b.close();
    }
  },
);

test("bad peer settings are refused with what to do", async () => {
  using rt = tempRuntime();
  await assert.rejects(Hub.start({ runtimeDir: rt.dir, peers: ["http://10.0.0.2:7447"] }), {
    code: "ERR_INVALID_ARGUMENT",
    message: /peer 'http:\/\/10\.0\.0\.2:7447' is not a hub address: use tcp:\/\/HOST:PORT/,
  });
  await assert.rejects(Hub.start({ runtimeDir: rt.dir, dataPorts: [7600, 7500] }), {
    code: "ERR_INVALID_ARGUMENT",
    message: /data port range \[7600,7500\] is not valid/,
  });
  await assert.rejects(Hub.start({ runtimeDir: rt.dir, peerLeaseMs: 5 }), {
    code: "ERR_INVALID_ARGUMENT",
    message: /peerLeaseMs must be a whole number of ms >= 100/,
  });
  const r = spawnSync(process.execPath, [CLI, "hub", "--data-ports", "lots"], {
    env: { ...process.env, MYELIN_RUNTIME_DIR: rt.dir },
    encoding: "utf8",
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--data-ports: data port range .* is not valid: give LOW-HIGH/);
  const s = spawnSync(process.execPath, [CLI, "site", "status", "--help"], { encoding: "utf8" });
  assert.equal(s.status, 0);
  assert.match(s.stdout, /myelin site status --json/);
});

test(
  "hubs federate over CURVE with each other's trusted keys; an untrusted peer hub is refused and its nodes never appear",
  { timeout: 60000 },
  async () => {
    using rtA = tempRuntime();
    using rtB = tempRuntime();
    using rtC = tempRuntime();
    const keysA = new KeyStore(`${rtA.dir}/keys`);
    const keysB = new KeyStore(`${rtB.dir}/keys`);
    const keysC = new KeyStore(`${rtC.dir}/keys`);
    const a = keysA.init();
    const b = keysB.init();
    keysC.init();
    keysA.trust("hb", b.publicKey);
    keysB.trust("ha", a.publicKey);
    keysC.trust("ha", a.publicKey); // C trusts A, but A does not trust C
    const logA: string[] = [];
    await using hubA = await Hub.start({
      runtimeDir: rtA.dir,
      keysDir: `${rtA.dir}/keys`,
      host: "ha",
      listen: ["tcp://127.0.0.1:0"],
      peerLeaseMs: 600,
      log: (l) => void logA.push(l),
    });
    const aTcp = hubA.endpoints.find((e) => e.startsWith("tcp://"))!;
    assert.equal(hubA.security().insecure, false);
    await using hubB = await Hub.start({
      runtimeDir: rtB.dir,
      keysDir: `${rtB.dir}/keys`,
      host: "hb",
      peers: [`${aTcp}#ha`],
      peerLeaseMs: 600,
    });
    await using hubC = await Hub.start({
      runtimeDir: rtC.dir,
      keysDir: `${rtC.dir}/keys`,
      host: "hc",
      peers: [`${aTcp}#ha`],
      peerLeaseMs: 600,
    });
    const na = register(hubA.endpoints[0]!, record("na", "ha"));
    const nb = register(hubB.endpoints[0]!, record("nb", "hb"));
    const nc = register(hubC.endpoints[0]!, record("nc", "hc"));
    try {
      await until(
        () => ids(hubA).join() === "na@ha,nb@hb" && ids(hubB).join() === "na@ha,nb@hb",
        20000,
        "A and B share their nodes over CURVE",
      );
      assert.equal(hubB.siteStatus().security, "curve");
      await until(() => hubA.refusedHandshakes > 0, 10000, "A refuses C's untrusted key");
      assert.ok(
        logA.some((l) => /refused a connection.*myelin keys trust/.test(l)),
        logA.join("\n"),
      );
      assert.ok(!ids(hubA).includes("nc@hc"), "C's node reached A");
      assert.deepEqual(ids(hubC), ["nc@hc"]);
    } finally {
      await na.close();
      await nb.close();
      await nc.close();
    }
  },
);

test("a peer given without its key is refused with the fix when the hub is not --insecure", async () => {
  using rt = tempRuntime();
  new KeyStore(`${rt.dir}/keys`).init();
  await assert.rejects(
    Hub.start({ runtimeDir: rt.dir, keysDir: `${rt.dir}/keys`, peers: ["tcp://127.0.0.1:7447"] }),
    (e: Error) => /--peer tcp:\/\/127\.0\.0\.1:7447#KEY/.test(e.message),
  );
});

test(
  "peers 300 ms of round trip apart stay up within a 1 s lease, see each other's changes after the delay, and part when the link is cut",
  { timeout: 60000 },
  async () => {
    using rtA = tempRuntime();
    using rtB = tempRuntime();
    const logA: string[] = [];
    await using a = await Hub.start({
      runtimeDir: rtA.dir,
      host: "ha",
      listen: ["tcp://127.0.0.1:0"],
      insecure: true,
      peerLeaseMs: 1000,
      log: (l) => void logA.push(l),
    });
    const aPort = Number(
      a.endpoints
        .find((e) => e.startsWith("tcp://"))!
        .split(":")
        .pop(),
    );
    // Every chunk between the hubs is held 150 ms each way (no sch_netem on this kernel).
    await using proxy = await TcpProxy.start(aPort, "127.0.0.1", { delayMs: 150 });
    const b = await Hub.start({
      runtimeDir: rtB.dir,
      host: "hb",
      peers: [`tcp://127.0.0.1:${proxy.port}`],
      peerLeaseMs: 1000,
      insecure: true,
    });
    const na = register(a.endpoints[0]!, record("na", "ha"));
    const nb = register(b.endpoints[0]!, record("nb", "hb"));
    let nc: ReturnType<typeof register> | undefined;
    try {
      await until(
        () => ids(a).join() === "na@ha,nb@hb" && ids(b).join() === "na@ha,nb@hb",
        15000,
        "both graphs whole across the slow link",
      );
      const t0 = performance.now();
      nc = register(b.endpoints[0]!, record("nc", "hb"));
      await until(() => ids(a).includes("nc@hb"), 10000, "nc in a's graph");
      const tookMs = performance.now() - t0;
      assert.ok(tookMs >= 140, `the change crossed the link in ${tookMs.toFixed(0)} ms, under its delay`);
      assert.equal(a.siteStatus().peers[0]!.state, "up");
      assert.ok(!logA.some((l) => /unreachable/.test(l)), logA.join("\n"));
      proxy.cut();
      await until(() => ids(a).join() === "na@ha", 10000, "hb's nodes gone from a after the cut");
      assert.equal(a.siteStatus().peers[0]!.state, "unreachable");
      proxy.restore();
      await until(
        () => ids(a).join() === "na@ha,nb@hb,nc@hb",
        20000,
        "hb's nodes back after the link returns",
      );
    } finally {
      await na.close();
      await nb.close();
      await nc?.close();
      b.close();
    }
  },
);
