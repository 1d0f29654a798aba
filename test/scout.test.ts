/**
 * LAN scouting on loopback (multicast through 127.0.0.1; each "host" its own runtime dir, key dir
 * and host name, all hubs in this process): three hubs that trust each other find each other with
 * no --peer and share their nodes; a hub whose key is not trusted is heard but never peered (and
 * logged once with the fix); hostile datagrams are counted and dropped; an announcement with a
 * trusted key but a false endpoint gets no further than a link that never comes up, and is dropped
 * when it stops; a hub that stops sends `leave`. The same across network namespaces is test/scout-netns.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeHubToNode, encodeControl, type NodeRecord } from "../src/node/control-protocol.js";
import { Hub } from "../src/hub/hub.js";
import { decodeAnnouncement, encodeAnnouncement } from "../src/hub/scout-protocol.js";
import { DEFAULT_TRANSPORTS } from "../src/transport/default-transports.js";
import { transportFor } from "../src/transport/transport.js";
import { KeyStore } from "../src/transport/key-store.js";
import { until } from "./helpers.js";

/** A host: runtime dir and key dir (with keys), removed on dispose. */
function host(name: string): { name: string; dir: string; keys: KeyStore; publicKey: string } & Disposable {
  const dir = mkdtempSync(join(tmpdir(), `mysc-${name}-`));
  const keys = new KeyStore(join(dir, "keys"), undefined);
  const publicKey = keys.init().publicKey;
  return {
    name,
    dir,
    keys,
    publicKey,
    [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Registers a record with a hub over its ipc socket and keeps it alive until closed. */
function register(endpoint: string, rec: NodeRecord): { close(): Promise<void> } {
  const conn = transportFor(DEFAULT_TRANSPORTS, endpoint).connect(endpoint, { maxMessageBytes: 1 << 20 });
  const send = (): void => void conn.send([encodeControl({ v: 1, t: "register", node: rec, req: 1 })]);
  conn.on("up", send);
  const beat = setInterval(() => conn.send([encodeControl({ v: 1, t: "heartbeat", id: rec.id })]), 200);
  void (async () => {
    for await (const f of conn) if (decodeHubToNode(f[0]!).t === "reregister") send();
  })();
  return {
    close: async () => {
      clearInterval(beat);
      await conn.close(0);
    },
  };
}

/** A multicast group and port of this run, so parallel runs do not hear each other. */
function scoutAddress(): { group: string; port: number } {
  const r = randomBytes(3);
  return { group: `239.255.${r[0]}.${r[1]! | 1}`, port: 40000 + ((r[2]! << 4) % 9000) };
}

test(
  "three hubs that trust each other find each other by scouting and share their nodes; an untrusted one is never peered",
  { timeout: 60000 },
  async () => {
    const names = ["h1", "h2", "h3", "stranger"];
    const hosts = names.map((n) => host(n));
    try {
      const [h1, h2, h3, stranger] = hosts as [
        ReturnType<typeof host>,
        ReturnType<typeof host>,
        ReturnType<typeof host>,
        ReturnType<typeof host>,
      ];
      for (const a of [h1, h2, h3])
        for (const b of [h1, h2, h3]) if (a !== b) a.keys.trust(b.name, b.publicKey);
      stranger.keys.trust("h1", h1.publicKey); // the stranger trusts h1; h1 does not trust it
      const address = scoutAddress();
      const site = `mysc-${randomBytes(3).toString("hex")}`;
      const logs = new Map<string, string[]>(names.map((n) => [n, []]));
      const hubs: Hub[] = [];
      let started = 0;
      for (const h of hosts) {
        started = Date.now();
        hubs.push(
          await Hub.start({
            runtimeDir: join(h.dir, "run"),
            keysDir: h.keys.dir,
            host: h.name,
            site,
            listen: ["tcp://127.0.0.1:0"],
            peerLeaseMs: 1500,
            scout: { ...address, interfaceAddress: "127.0.0.1", intervalMs: 200 },
            log: (l) => logs.get(h.name)!.push(l),
          }),
        );
      }
      const [hub1, hub2, hub3] = hubs as [Hub, Hub, Hub];
      try {
        const node = register(hub2.endpoints[0]!, {
          id: "n-h2",
          name: "cam",
          pid: 1,
          host: "h2",
          process: "cam",
          endpoint: "ipc:///x/cam",
          startedAt: 0,
          pubs: [],
          subs: [],
          services: [],
        });
        const upPeers = (h: Hub): string[] =>
          h
            .siteStatus()
            .peers.filter((p) => p.state === "up")
            .map((p) => p.host)
            .sort();
        for (const h of [hub1, hub2, hub3]) {
          const others = ["h1", "h2", "h3"].filter((n) => n !== h.host);
          await until(
            () => JSON.stringify([...new Set(upPeers(h))].sort()) === JSON.stringify(others),
            30000,
            `${h.host} peered with ${others.join(", ")} by scouting (has ${upPeers(h).join(", ")})`,
          );
        }
        const peeredMs = Date.now() - started;
        await until(() => hub1.graph().nodes.some((n) => n.id === "n-h2"), 10000, "h2's node in h1's graph");
        process.stdout.write(
          `# three hubs peered by scouting ${peeredMs} ms after the last one started (interval 200 ms)\n`,
        );
        // How each peer was found: scouted (its own link) and/or incoming (the other's link).
        const s1 = hub1.siteStatus();
        assert.ok(
          s1.peers.some((p) => p.host === "h2" && p.found === "scouted"),
          JSON.stringify(s1.peers),
        );
        assert.equal(s1.scout?.site, site);
        assert.ok((s1.scout?.heard ?? 0) > 0);
        // The stranger was heard, never peered; the fix was logged once per hub.
        for (const [h, n] of [
          [hub1, "h1"],
          [hub2, "h2"],
          [hub3, "h3"],
        ] as const) {
          assert.ok(!h.siteStatus().peers.some((p) => p.host === "stranger" && p.state === "up"));
          const lines = logs.get(n)!.filter((l) => l.includes(stranger.publicKey) && /announces key/.test(l));
          assert.equal(lines.length, 1, logs.get(n)!.join("\n"));
          assert.match(lines[0]!, /does not trust: not peered .*myelin keys trust stranger /);
          assert.ok((h.siteStatus().scout?.untrusted ?? 0) >= 1);
        }
        // The stranger trusts h1 and connects to it: h1's listener refuses and counts its key.
        await until(
          () => hub1.security().refusedHandshakes > 0,
          10000,
          "h1 refusing the stranger's handshake",
        );

        // Hostile datagrams on the group: counted and dropped, nothing breaks.
        const before = hub1.siteStatus().scout!.malformed;
        const sock = createSocket({ type: "udp4" });
        await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
        sock.setMulticastInterface("127.0.0.1");
        const send = (b: Buffer): Promise<void> =>
          new Promise((r) => sock.send(b, address.port, address.group, () => r()));
        await send(Buffer.from("garbage"));
        await send(Buffer.alloc(2000, 0x41));
        await send(Buffer.concat([Buffer.from("MYSC\x01A", "latin1"), Buffer.from('{"site":')]));
        // A trusted key with a false endpoint: a hint only; the link never comes up and goes.
        const fake = {
          kind: "announce" as const,
          site,
          host: "h2",
          hub: randomUUID(),
          endpoint: "tcp://127.0.0.1:9",
          key: h2.publicKey,
          intervalMs: 200,
        };
        await send(encodeAnnouncement(fake));
        await until(
          () => hub1.siteStatus().scout!.malformed >= before + 3,
          5000,
          "the malformed datagrams counted",
        );
        await until(
          () => hub1.siteStatus().peers.some((p) => p.endpoint === fake.endpoint),
          5000,
          "the fake link",
        );
        assert.ok(
          hub1.siteStatus().peers.some((p) => p.endpoint === fake.endpoint && p.state === "connecting"),
        );
        await until(
          () => !hub1.siteStatus().peers.some((p) => p.endpoint === fake.endpoint),
          5000,
          "the fake link dropped after its TTL",
        );
        sock.close();
        assert.ok(upPeers(hub1).includes("h2"), "h2 is still up");

        // A hub that stops says so: one `leave` datagram on the group, then silence.
        const ear = createSocket({ type: "udp4", reuseAddr: true });
        await new Promise<void>((r) => ear.bind(address.port, () => r()));
        ear.addMembership(address.group, "127.0.0.1");
        const left = new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no leave datagram from h3 within 5 s")), 5000);
          ear.on("message", (m) => {
            try {
              const a = decodeAnnouncement(m);
              if (a.hub === hub3.id && a.kind === "leave") {
                clearTimeout(timer);
                resolve(a.host);
              }
            } catch {
              // another datagram
            }
          });
        });
        hub3.close();
        assert.equal(await left, "h3");
        ear.close();
        await node.close();
      } finally {
        for (const h of hubs) h.close();
      }
    } finally {
      for (const h of hosts) h[Symbol.dispose]();
    }
  },
);

test("scouting needs a tcp endpoint and a valid site and address, and says so", async () => {
  using h = host("alone");
  await assert.rejects(
    Hub.start({
      runtimeDir: join(h.dir, "run"),
      keysDir: h.keys.dir,
      scout: { group: "239.255.1.1", port: 47446, interfaceAddress: "127.0.0.1" },
    }),
    /scouting announces the hub's tcp endpoint .*--listen tcp:\/\/0\.0\.0\.0:7447/,
  );
  await assert.rejects(
    Hub.start({
      runtimeDir: join(h.dir, "run"),
      keysDir: h.keys.dir,
      site: "no spaces",
      listen: ["tcp://127.0.0.1:0"],
      scout: { group: "239.255.1.1", port: 47446, interfaceAddress: "127.0.0.1" },
    }),
    /site name 'no spaces' is not valid/,
  );
});
