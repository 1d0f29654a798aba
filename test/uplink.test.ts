/**
 * Edge to cloud over NATS/JetStream, with real processes: a three-server nats-server cluster
 * with JetStream (R3 streams), site hubs and a cloud hub, each a process with its own runtime and
 * data directory. The site's link is cut with TCP proxies in front of the cloud servers (the
 * network-namespace variant with `ip link set … down` and nftables loss is test/uplink-netns.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createNode, StoreClient, type Node } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { TcpProxy } from "./bridge-peers.js";
import { NatsCluster, UplinkHost } from "./uplink-world.js";

let cluster: NatsCluster;
before(async () => {
  cluster = await NatsCluster.start();
});
after(async () => {
  await cluster[Symbol.asyncDispose]();
});

function siteConfig(
  site: string,
  servers: string[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    site,
    nats: { servers, connectTimeoutMs: 2000 },
    stream: { replicas: 3, duplicateWindowMs: 120000 },
    export: { durable: ["/robot/**"] },
    import: ["/commands/**"],
    ...extra,
  };
}

function cloudConfig(sites: string[]): Record<string, unknown> {
  return { role: "cloud", site: "cloud", nats: { servers: cluster.urls }, stream: { replicas: 3 }, sites };
}

async function nodeOn(host: UplinkHost, name: string): Promise<Node> {
  return createNode({ name, runtimeDir: host.runtimeDir });
}

/** Publishes `count` persistent messages `<tag>-<i>` on `topic`, 32 at a time, each confirmed. */
async function publish(node: Node, topic: string, tag: string, from: number, count: number): Promise<void> {
  const pub = await node.createPublisher(topic, std_msgs.String, { qos: { durability: "persistent" } });
  let next = from;
  const end = from + count;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < end) await pub.publish({ data: `${tag}-${next++}` });
    }),
  );
}

/** Resolves once the durable topic holds `count` messages; rejects after `timeoutMs` naming what it saw. */
async function waitCount(store: StoreClient, topic: string, count: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let seen = -1;
  for (;;) {
    const info = await store.info({ topic });
    seen = info.exists ? info.count : 0;
    if (seen >= count) return;
    if (Date.now() > end)
      throw new Error(`${topic} has ${seen} messages after ${timeoutMs} ms, expected ${count}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every payload of a durable topic, in order. */
async function readAll(store: StoreClient, topic: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let from = 1; ;) {
    const r = await store.read({ topic, from_seq: from, from_time_ms: 0, max: 5000 });
    if (r.seqs.length === 0) return out;
    out.push(...r.payloads);
    from = r.seqs[r.seqs.length - 1]! + 1;
  }
}

/** Asserts the cloud's copy holds exactly the site's messages, in the same order. */
async function assertSameLog(
  site: StoreClient,
  siteTopic: string,
  cloud: StoreClient,
  cloudTopic: string,
): Promise<void> {
  const a = await readAll(site, siteTopic);
  const b = await readAll(cloud, cloudTopic);
  assert.equal(b.length, a.length, `${cloudTopic}: ${b.length} messages, the site has ${a.length}`);
  for (let i = 0; i < a.length; i++) {
    if (Buffer.compare(a[i]!, b[i]!) !== 0)
      assert.fail(
        `${cloudTopic}: message ${i + 1} differs from the site's: ${Buffer.from(b[i]!).toString("hex")} vs ${Buffer.from(a[i]!).toString("hex")}`,
      );
  }
}

async function proxies(): Promise<TcpProxy[]> {
  return Promise.all(cluster.servers.map((s) => TcpProxy.start(s.port)));
}

test(
  "a site stores while its link is cut and catches up in order, once; two sites stay apart",
  { timeout: 90_000 },
  async () => {
    const px = await proxies();
    try {
      await using cloud = new UplinkHost("cloud", cloudConfig(["east", "west"]));
      await using east = new UplinkHost(
        "east",
        siteConfig(
          "east",
          px.map((p) => `nats://127.0.0.1:${p.port}`),
        ),
      );
      await using west = new UplinkHost("west", siteConfig("west", cluster.urls));
      await cloud.start();
      await east.start();
      await west.start();
      const cn = await nodeOn(cloud, "cloud_reader");
      const en = await nodeOn(east, "east_pub");
      const wn = await nodeOn(west, "west_pub");
      try {
        const cs = new StoreClient(cn);
        const es = new StoreClient(en);
        const ws = new StoreClient(wn);
        await east.hub!.waitFor((l) => /connected to/.test(String(l["line"])), 20000, "east connected");
        for (const p of px) p.cut();
        const N = 5000;
        await publish(en, "/robot/pose", "east", 0, N);
        await publish(wn, "/robot/pose", "west", 0, 700);
        // Same topic name on both sites: the cloud keeps them apart.
        await waitCount(cs, "/sites/west/robot/pose", 700, 30000);
        const during = await cs.info({ topic: "/sites/east/robot/pose" });
        assert.ok(!during.exists || during.count === 0, "nothing of east reached the cloud during the cut");
        for (const p of px) p.restore();
        await waitCount(cs, "/sites/east/robot/pose", N, 60000);
        await assertSameLog(es, "/robot/pose", cs, "/sites/east/robot/pose");
        await assertSameLog(ws, "/robot/pose", cs, "/sites/west/robot/pose");
        const [firstEast] = (
          await cs.read({ topic: "/sites/east/robot/pose", from_seq: 1, from_time_ms: 0, max: 1 })
        ).payloads;
        assert.ok(firstEast !== undefined && Buffer.from(firstEast).includes(Buffer.from("east-")));
      } finally {
        await cn.close();
        await en.close();
        await wn.close();
      }
    } finally {
      for (const p of px) await p[Symbol.asyncDispose]();
    }
  },
);

test(
  "a command published in the cloud reaches a site's node after the site was offline",
  { timeout: 60_000 },
  async () => {
    await using cloud = new UplinkHost("cloud2", cloudConfig(["north"]));
    await using north = new UplinkHost("north", siteConfig("north", cluster.urls));
    await cloud.start();
    // The site was up once (its stream and consumer exist), then goes offline.
    await north.start();
    await north.hub!.waitFor((l) => /connected to/.test(String(l["line"])), 20000, "north connected");
    await north.kill9();
    const cn = await nodeOn(cloud, "cloud_cmd");
    try {
      await publish(cn, "/to_site/north/commands/go", "cmd", 0, 3);
      await north.start();
      const sn = await nodeOn(north, "north_worker");
      try {
        const c = sn.createDurableConsumer("/commands/go", std_msgs.String, { name: "worker" });
        const got: string[] = [];
        for await (const m of c) {
          got.push(m.msg.data);
          await m.ack();
          if (got.length === 3) break;
        }
        assert.deepEqual(got, ["cmd-0", "cmd-1", "cmd-2"]);
      } finally {
        await sn.close();
      }
    } finally {
      await cn.close();
    }
  },
);

test(
  "kill -9 of the site hub at random moments during catch-up (12 times): nothing lost, nothing twice",
  { timeout: 120_000 },
  async () => {
    const px = await proxies();
    try {
      await using cloud = new UplinkHost("cloud3", cloudConfig(["south"]));
      await using south = new UplinkHost(
        "south",
        siteConfig(
          "south",
          px.map((p) => `nats://127.0.0.1:${p.port}`),
          { catchUp: { messagesPerSecond: 4000 } },
        ),
      );
      await cloud.start();
      await south.start();
      const N = 4000;
      {
        const sn = await nodeOn(south, "south_pub");
        try {
          for (const p of px) p.cut();
          await publish(sn, "/robot/log", "south", 0, N);
        } finally {
          await sn.close();
        }
      }
      for (const p of px) p.restore();
      const cn = await nodeOn(cloud, "cloud_reader3");
      try {
        const cs = new StoreClient(cn);
        // A seeded walk of kill moments: 100 to 700 ms after the hub is ready.
        let seed = 12345;
        const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
        for (let k = 0; k < 12; k++) {
          const started = south.hub!.waitFor(
            (l) => /forwarding \/robot\/log/.test(String(l["line"])),
            20000,
            "forwarding",
          );
          await started;
          await new Promise((r) => setTimeout(r, 100 + Math.floor(rnd() * 600)));
          await south.kill9();
          await south.start();
        }
        await waitCount(cs, "/sites/south/robot/log", N, 60000);
        const sn = await nodeOn(south, "south_reader");
        try {
          await assertSameLog(new StoreClient(sn), "/robot/log", cs, "/sites/south/robot/log");
        } finally {
          await sn.close();
        }
      } finally {
        await cn.close();
      }
    } finally {
      for (const p of px) await p[Symbol.asyncDispose]();
    }
  },
);

test(
  "kill -9 of one cloud nats-server during catch-up: catch-up continues",
  { timeout: 90_000 },
  async () => {
    const px = await proxies();
    try {
      await using cloud = new UplinkHost("cloud4", cloudConfig(["pole"]));
      await using pole = new UplinkHost(
        "pole",
        siteConfig(
          "pole",
          px.map((p) => `nats://127.0.0.1:${p.port}`),
          { catchUp: { messagesPerSecond: 3000 } },
        ),
      );
      await cloud.start();
      await pole.start();
      const N = 6000;
      const sn = await nodeOn(pole, "pole_pub");
      const cn = await nodeOn(cloud, "cloud_reader4");
      try {
        const cs = new StoreClient(cn);
        for (const p of px) p.cut();
        await publish(sn, "/robot/scan", "pole", 0, N);
        for (const p of px) p.restore();
        await waitCount(cs, "/sites/pole/robot/scan", 500, 30000);
        // The server the site is most likely on, and a stream replica: either way the R3 stream keeps a quorum.
        const victim = cluster.servers[2]!;
        await victim.kill("SIGKILL");
        try {
          await waitCount(cs, "/sites/pole/robot/scan", N, 60000);
          await assertSameLog(new StoreClient(sn), "/robot/scan", cs, "/sites/pole/robot/scan");
        } finally {
          await victim.start();
        }
      } finally {
        await sn.close();
        await cn.close();
      }
    } finally {
      for (const p of px) await p[Symbol.asyncDispose]();
    }
  },
);
