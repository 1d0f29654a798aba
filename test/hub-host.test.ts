/**
 * The host's name comes from its hub: `myelin hub --host edge1` (no MYELIN_HOST anywhere) names
 * the host of every node that reaches the hub over ipc — the hub's own, and the CLI's — so `myelin
 * ps` finds the supervisor and `node list` shows edge1; MYELIN_HOST set for a process still wins.
 * A library hub with host "h1" gives h1 to an in-process node, to `/_hub/info`, the metrics and
 * the dashboard feed; a node that registers again with a hub of another name takes the new one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fetchHubInfo, Hub, hubInfoPlugin, startHubProcess } from "../src/hub/index.js";
import { createNode, type NodeRecord } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { LiveFeed, type FeedClient } from "../src/web/index.js";
import { metricsPlugin, type RunningMetricsPlugin } from "../src/web/metrics-plugin.js";
import { tempRuntime, until } from "./helpers.js";
import { runCli, startCliHub, world } from "./cli-world.js";

/** Runs `fn` with MYELIN_HOST unset in this process, as a user who never set it. */
async function withoutHostEnv<R>(fn: () => Promise<R>): Promise<R> {
  const saved = process.env["MYELIN_HOST"];
  delete process.env["MYELIN_HOST"];
  try {
    return await fn();
  } finally {
    if (saved !== undefined) process.env["MYELIN_HOST"] = saved;
  }
}

test(
  "myelin hub --host edge1 without MYELIN_HOST: ps finds the supervisor, node list shows edge1 for every node",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t, "myelin-hubhost-");
    delete w.env["MYELIN_HOST"];
    const hub = await startCliHub(t, w, ["--host", "edge1"]);
    await hub.waitFor(/supervisor ready \(labels: edge1\)/);

    const ps = await runCli(t, w, ["ps"], 30000);
    assert.equal(ps.code, 0, ps.stderr);
    assert.doesNotMatch(ps.stderr, /without a supervisor/);

    const list = await runCli(t, w, ["node", "list", "--all", "--json"], 30000);
    assert.equal(list.code, 0, list.stderr);
    const nodes = JSON.parse(list.stdout) as { name: string; host: string }[];
    const names = nodes.map((n) => n.name);
    for (const name of ["_hub", "_supervisor"])
      assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
    assert.ok(
      names.some((n) => n.startsWith("_myelin_node_list")),
      `the CLI's own node in ${names.join(", ")}`,
    );
    for (const n of nodes) assert.equal(n.host, "edge1", `host of ${n.name}`);

    const table = await runCli(t, w, ["node", "list", "--all"], 30000);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /_supervisor\s+\d+\s+edge1\s/);

    // MYELIN_HOST set for a process is the user's word: it keeps it.
    const own = await runCli(
      t,
      { ...w, env: { ...w.env, MYELIN_HOST: "mine" } },
      ["node", "list", "--all", "--json"],
      30000,
    );
    assert.equal(own.code, 0, own.stderr);
    const tool = (JSON.parse(own.stdout) as { name: string; host: string }[]).find((n) =>
      n.name.startsWith("_myelin_node_list"),
    );
    assert.equal(tool?.host, "mine");
  },
);

test(
  "a library hub with host h1: an in-process node, /_hub/info, the metrics and the dashboard feed say h1; a new hub's name is taken on re-registration",
  { timeout: 60000 },
  async () => {
    await withoutHostEnv(async () => {
      using rt = tempRuntime();
      const proc = await startHubProcess({
        hub: { runtimeDir: rt.dir, host: "h1", nodeTimeoutMs: 1500 },
        plugins: [
          hubInfoPlugin({ version: "test" }),
          metricsPlugin({ address: { host: "127.0.0.1", port: 0 }, version: "test", processMetrics: false }),
        ],
      });
      let procClosed = false;
      try {
        await using node = await createNode({ name: "wthf_inproc", runtimeDir: rt.dir, heartbeatMs: 200 });
        assert.equal(node.host, "h1");
        await node.createPublisher("/wthf/a", std_msgs.String);
        const mine = (g: { nodes: NodeRecord[] } | undefined): NodeRecord | undefined =>
          g?.nodes.find((n) => n.id === node.id);
        await node.waitForGraph((g) => mine(g)?.pubs.length === 1, 10000);
        assert.equal(mine(node.graph())?.host, "h1");
        for (const n of node.graph()!.nodes) assert.equal(n.host, "h1", `host of ${n.name}`);

        const info = await fetchHubInfo(node, 10000);
        assert.equal(info.host, "h1");

        const url = (proc.plugins.get("metrics") as RunningMetricsPlugin).url;
        const body = await (await fetch(url)).text();
        assert.match(body, /^myelin_hub_info\{version="test",host="h1"\} 1$/m);

        const feed = await LiveFeed.start({ runtimeDir: rt.dir });
        try {
          const got: Record<string, unknown>[] = [];
          const page: FeedClient = { send: (m) => got.push(m), watch: new Set(), sample: undefined };
          feed.addClient(page);
          feed.removeClient(page);
          assert.equal(got.find((m) => m["t"] === "hello")?.["host"], "h1");
        } finally {
          await feed.close();
        }

        // The hub goes; another starts in the same runtime directory under another name: the node
        // registers again and goes by it, in its record too.
        await proc.close();
        procClosed = true;
        await using hub2 = await Hub.start({ runtimeDir: rt.dir, host: "h2", nodeTimeoutMs: 1500 });
        await until(() => node.host === "h2", 20000, "the node taking the new hub's host name");
        await node.waitForGraph((g) => g.hub === hub2.id && mine(g)?.host === "h2", 20000);
      } finally {
        if (!procClosed) await proc.close();
      }
    });
  },
);
