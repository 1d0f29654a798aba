/**
 * Edge to cloud across a real link: the site's hub runs in its own network namespace, joined to
 * the host (the cloud: a three-server JetStream cluster, R3 streams, and the cloud hub) by a veth
 * pair. Persistent messages are published at the edge while the link is down (`ip link set …
 * down`), then the link comes back; a second round drops 20 % of the packets each way (nftables
 * `numgen random`) during the catch-up. The cloud must hold exactly the site's messages, in order,
 * once. Delay cannot be emulated on this kernel (no sch_netem), so the runs are without delay.
 *
 * `MYELIN_UPLINK_N` sets the count (default 10000 to keep the file within its time; the bench and
 * docs/edge-to-cloud.md quote the 100,000 run). Needs root (network namespaces) and nftables.
 */
import { after, before, test } from "node:test";
import { StoreClient } from "../src/node/index.js";
import {
  assertSameLog,
  cloudConfig,
  EdgeNetns,
  NatsCluster,
  nodeOn,
  publish,
  siteConfig,
  UplinkHost,
  waitCount,
} from "./uplink-world.js";

const N = Number(process.env["MYELIN_UPLINK_N"] ?? 10000);
/** How long the catch-up may take: 20 % loss each way slows TCP down a lot (100,000 took over 120 s). */
const CATCH_UP_MS = Math.max(120_000, N * 4);
let edge: EdgeNetns;
let cluster: NatsCluster;
before(async () => {
  edge = await EdgeNetns.create();
  try {
    cluster = await NatsCluster.start(3, edge.hostAddr);
  } catch (err) {
    await edge[Symbol.asyncDispose]();
    throw err;
  }
});
after(async () => {
  await cluster[Symbol.asyncDispose]();
  await edge[Symbol.asyncDispose]();
});

for (const lossPercent of [0, 20]) {
  test(
    `${N} persistent messages published while the link is down reach the cloud exactly once, in order${lossPercent > 0 ? `, with ${lossPercent} % loss during catch-up` : ""}`,
    { timeout: CATCH_UP_MS + 60_000 },
    async () => {
      const site = `edge${lossPercent}`;
      await using cloud = new UplinkHost(`cloud${lossPercent}`, cloudConfig(cluster, [site]));
      await using host = new UplinkHost(
        site,
        siteConfig(site, cluster.urls, { catchUp: { messagesPerSecond: 0 } }),
      );
      await cloud.start();
      await host.start(edge.ns);
      await host.hub!.waitFor((l) => /streams ready/.test(String(l["line"])), 30000, "edge connected");
      const en = await nodeOn(host, "edge_pub");
      const cn = await nodeOn(cloud, "cloud_reader");
      try {
        const es = new StoreClient(en);
        const cs = new StoreClient(cn);
        await edge.cut();
        try {
          await publish(en, "/robot/odom", site, 0, N);
          await host.hub!.waitFor(
            (l) => /disconnected from NATS/.test(String(l["line"])),
            30000,
            "the cut noticed",
          );
        } finally {
          if (lossPercent > 0) await edge.loss(lossPercent);
          await edge.restore();
        }
        try {
          await waitCount(cs, `/sites/${site}/robot/odom`, N, CATCH_UP_MS);
        } finally {
          await edge.noLoss();
        }
        await assertSameLog(es, "/robot/odom", cs, `/sites/${site}/robot/odom`);
      } finally {
        await en.close();
        await cn.close();
      }
    },
  );
}
