/**
 * Edge to cloud over a slow link: the site reaches its three nats-servers only through TCP proxies
 * that hold every chunk 75 ms each way (this kernel has no `sch_netem`, so the latency is added in
 * user space, on TCP, where the uplink sees it). Live export, a cut, catch-up and a command back all
 * cross the delayed link; the cloud's copy must be exact.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { StoreClient } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { connect } from "nats";
import { TcpProxy } from "./bridge-peers.js";
import {
  assertSameLog,
  cloudConfig,
  NatsCluster,
  nodeOn,
  publish,
  siteConfig,
  UplinkHost,
  waitCount,
} from "./uplink-world.js";

const ONE_WAY_MS = 75;

let cluster: NatsCluster;
before(async () => {
  cluster = await NatsCluster.start();
});
after(async () => {
  await cluster[Symbol.asyncDispose]();
});

test(
  "over a link with 150 ms of round trip, a site exports live, stores through a cut, catches up exactly, and gets a command back",
  { timeout: 120_000 },
  async (t) => {
    const px = await Promise.all(
      cluster.servers.map((s) => TcpProxy.start(s.port, "127.0.0.1", { delayMs: ONE_WAY_MS })),
    );
    try {
      // The delay is real: a NATS ping through a proxy takes at least the added round trip.
      const probe = await connect({ servers: `nats://127.0.0.1:${px[0]!.port}`, timeout: 10000 });
      const rttMs = await probe.rtt();
      await probe.close();
      assert.ok(rttMs >= ONE_WAY_MS * 2 - 5, `a ping through the proxy took ${rttMs} ms`);
      await using cloud = new UplinkHost("dcloud", cloudConfig(cluster, ["slow"]));
      await using site = new UplinkHost(
        "slow",
        siteConfig(
          "slow",
          px.map((p) => `nats://127.0.0.1:${p.port}`),
          // The default connect timeout is ample; the handshake takes several delayed round trips.
          { nats: { servers: px.map((p) => `nats://127.0.0.1:${p.port}`), connectTimeoutMs: 10000 } },
        ),
      );
      await cloud.start();
      await site.start();
      const cn = await nodeOn(cloud, "dcloud_reader");
      const sn = await nodeOn(site, "slow_pub");
      try {
        const cs = new StoreClient(cn);
        const ss = new StoreClient(sn);
        await site.hub!.waitFor((l) => /streams ready/.test(String(l["line"])), 30000, "the site connected");
        const live = 2000;
        let start = performance.now();
        await publish(sn, "/robot/odom", "live", 0, live);
        await waitCount(cs, "/sites/slow/robot/odom", live, 60000);
        const liveMs = performance.now() - start;
        for (const p of px) p.cut();
        const stored = 3000;
        await publish(sn, "/robot/odom", "cut", 0, stored);
        start = performance.now();
        for (const p of px) p.restore();
        await waitCount(cs, "/sites/slow/robot/odom", live + stored, 90000);
        const catchUpMs = performance.now() - start;
        await assertSameLog(ss, "/robot/odom", cs, "/sites/slow/robot/odom");
        t.diagnostic(
          `${ONE_WAY_MS * 2} ms round trip added: ${live} live in ${liveMs.toFixed(0)} ms, ` +
            `${stored} caught up in ${catchUpMs.toFixed(0)} ms (reconnect included)`,
        );

        await publish(cn, "/to_site/slow/commands/stop", "cmd", 0, 1);
        const c = sn.createDurableConsumer("/commands/stop", std_msgs.String, { name: "worker" });
        for await (const m of c) {
          assert.equal(m.msg.data, "cmd-0");
          await m.ack();
          break;
        }
      } finally {
        await cn.close();
        await sn.close();
      }
    } finally {
      for (const p of px) await p[Symbol.asyncDispose]();
    }
  },
);
