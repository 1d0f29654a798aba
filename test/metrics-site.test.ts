/**
 * The registry's and the federation's metrics, on two hub processes peered on loopback (plain
 * text: each "host" its own runtime directory and host name): nodes of this host and of the peer,
 * the peer's state, nodes and last-heard age, a declaration refused for its type; the peer's
 * state turns `unreachable` once it stops.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startHubProcess } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { metricsPlugin, type RunningMetricsPlugin } from "../src/web/index.js";
import { tempDir } from "./bridge-peers.js";
import { spawnFixture } from "./helpers.js";
import { parseExposition, sample, type Exposition } from "./prom-text.js";

// The hubs of this test are plain text on tcp; so are their nodes.
process.env["MYELIN_INSECURE"] = "1";

async function scrapeUntil(url: string, what: string, pred: (e: Exposition) => boolean): Promise<Exposition> {
  const end = Date.now() + 20000;
  for (;;) {
    const res = await fetch(url);
    const e = parseExposition(await res.text());
    if (pred(e)) return e;
    if (Date.now() > end) {
      const seen = [...e.samples].filter(([k]) => /^myelin_(site|hub)_/.test(k));
      throw new Error(`timed out waiting for ${what}:\n${seen.map(([k, v]) => `${k} ${v}`).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

test(
  "peer hubs, nodes and refusals in the metrics; a stopped peer becomes unreachable",
  { timeout: 60_000 },
  async () => {
    using tmp = tempDir("wt-metrics-site-");
    const a = await startHubProcess({
      hub: {
        runtimeDir: join(tmp.dir, "a"),
        host: "wtm-ha",
        listen: ["tcp://127.0.0.1:0"],
        insecure: true,
        peerLeaseMs: 800,
      },
      plugins: [
        metricsPlugin({ address: { host: "127.0.0.1", port: 0 }, version: "test", processMetrics: false }),
      ],
    });
    const url = (a.plugins.get("metrics") as RunningMetricsPlugin).url;
    const aTcp = a.hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    const b = await startHubProcess({
      hub: {
        runtimeDir: join(tmp.dir, "b"),
        host: "wtm-hb",
        peers: [aTcp],
        insecure: true,
        peerLeaseMs: 800,
      },
    });
    const na = await createNode({ name: "na", runtimeDir: join(tmp.dir, "a") });
    const na2 = await createNode({ name: "na2", runtimeDir: join(tmp.dir, "a") });
    const nb = await createNode({ name: "nb", runtimeDir: join(tmp.dir, "b") });
    try {
      await na.createPublisher("/wtm/chatter", std_msgs.String);
      await nb.createSubscription("/wtm/chatter", std_msgs.String);
      // Another process publishes /wtm/typed; this one declares it with another type: the hub refuses.
      await using other = spawnFixture(
        "node-proc",
        { role: "pub", topic: "/wtm/typed", rate: 1 },
        { MYELIN_RUNTIME_DIR: join(tmp.dir, "a") },
      );
      await other.waitFor((l) => l.event === "ready");
      await na2.waitForGraph((g) => g.nodes.some((n) => n.pubs.some((p) => p.topic === "/wtm/typed")), 10000);
      await assert.rejects(na2.createPublisher("/wtm/typed", std_msgs.Bool), /has type std_msgs\/String/);
      const P = { peer: "wtm-hb" };
      const e = await scrapeUntil(
        url,
        "the peer up with its node, and the refusal",
        (x) =>
          sample(x, "myelin_site_peer_state", { ...P, state: "up" }) === 1 &&
          (sample(x, "myelin_site_peer_nodes", P) ?? 0) >= 1 &&
          (sample(x, "myelin_hub_declarations_refused_total", { reason: "type_conflict" }) ?? 0) >= 1,
      );
      assert.equal(sample(e, "myelin_site_peer_state", { ...P, state: "unreachable" }), 0);
      assert.ok((sample(e, "myelin_site_peer_last_heard_seconds", P) ?? -1) >= 0);
      assert.ok((sample(e, "myelin_site_peer_last_heard_seconds", P) ?? 99) < 5);
      assert.ok((sample(e, "myelin_hub_nodes", { origin: "peer" }) ?? 0) >= 1, "the peer's node");
      assert.ok((sample(e, "myelin_hub_nodes", { origin: "local" }) ?? 0) >= 2, "na, na2");
      assert.ok((sample(e, "myelin_hub_topics") ?? 0) >= 1);
      assert.equal(sample(e, "myelin_site_peer_lag_versions", P), 0);

      // The peer stops: after its lease it is unreachable, and its node leaves.
      await nb.close();
      await b.close();
      await scrapeUntil(
        url,
        "the peer unreachable",
        (x) =>
          sample(x, "myelin_site_peer_state", { ...P, state: "unreachable" }) === 1 &&
          sample(x, "myelin_hub_nodes", { origin: "peer" }) === 0 &&
          (sample(x, "myelin_site_peer_last_heard_seconds", P) ?? 0) >= 0.8,
      );
    } finally {
      await na.close();
      await na2.close();
      await nb.close();
      await b.close();
      await a.close();
    }
  },
);
