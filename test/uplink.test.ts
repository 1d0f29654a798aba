/**
 * Edge to cloud over NATS/JetStream, with real processes: a three-server nats-server cluster
 * with JetStream (R3 streams), site hubs and a cloud hub, each a process with its own runtime and
 * data directory. The site's link is cut with TCP proxies in front of the cloud servers (the
 * network-namespace variant with `ip link set … down` and nftables loss is test/uplink-netns.test.ts;
 * kill -9 of hubs and servers is test/uplink-crash.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { StoreClient } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import {
  assertSameLog,
  cloudConfig,
  NatsCluster,
  nodeOn,
  proxies,
  publish,
  siteConfig,
  UplinkHost,
  waitCount,
} from "./uplink-world.js";

let cluster: NatsCluster;
before(async () => {
  cluster = await NatsCluster.start();
});
after(async () => {
  await cluster[Symbol.asyncDispose]();
});

test(
  "a site stores while its link is cut and catches up in order, once; two sites stay apart",
  { timeout: 90_000 },
  async () => {
    const px = await proxies(cluster);
    try {
      await using cloud = new UplinkHost("cloud", cloudConfig(cluster, ["east", "west"]));
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
        await east.hub!.waitFor((l) => /streams ready/.test(String(l["line"])), 20000, "east connected");
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
    await using cloud = new UplinkHost("cloud2", cloudConfig(cluster, ["north"]));
    await using north = new UplinkHost("north", siteConfig("north", cluster.urls));
    await cloud.start();
    // The site was up once (its stream and consumer exist), then goes offline.
    await north.start();
    await north.hub!.waitFor((l) => /streams ready/.test(String(l["line"])), 20000, "north connected");
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
