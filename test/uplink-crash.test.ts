/**
 * Crashes during catch-up, with real processes: kill -9 of a site's hub at seeded random moments
 * (12 times), and kill -9 of one server of the three-server JetStream cluster (R3 streams). The
 * cloud hub's copy must equal the site's log: nothing lost, nothing twice, in order.
 */
import { after, before, test } from "node:test";
import { StoreClient } from "../src/node/index.js";
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
  "kill -9 of the site hub at random moments during catch-up (12 times): nothing lost, nothing twice",
  { timeout: 120_000 },
  async () => {
    const px = await proxies(cluster);
    try {
      await using cloud = new UplinkHost("cloud3", cloudConfig(cluster, ["south"]));
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
    const px = await proxies(cluster);
    try {
      await using cloud = new UplinkHost("cloud4", cloudConfig(cluster, ["pole"]));
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
