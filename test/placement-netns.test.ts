/**
 * Placement across two real hosts: network namespaces (named `mypl…`) on a bridge, each with its
 * own runtime, data and key directories and a `myelin hub` peered over CURVE. `myelin up` on one
 * host starts each node on the host its label names; `ps` and `logs` from the other host show
 * them; with one host's link cut, a site-wide `down` stops the reachable host and reports the
 * other, which stops its processes once the link is back. Needs root and iproute2; skipped
 * otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { processRunning, type ProcessRow } from "../src/orchestrator/index.js";
import { netnsAvailable, NsSite } from "./netns.js";
import { eventually, ORCH_NODE, PlWorld, summary } from "./placement-world.js";

const LEASE_MS = 2000;

test(
  "two hosts: up places nodes by label, ps and logs from the other host, a down during a cut link converges when it is back",
  { timeout: 180000, skip: netnsAvailable() ? false : "needs root and ip netns" },
  async () => {
    using site = new NsSite(2, { prefix: "mypl" });
    await using w = new PlWorld(["mypl1", "mypl2"], { prefixes: [site.exec(0), site.exec(1)] });
    const ep = (i: number): string => `tcp://${site.hosts[i]!.addr}:7447`;
    const common = ["--peer-lease-ms", String(LEASE_MS)];
    const h1 = w.hub(0, [...common, "--listen", ep(0), "--label", "alpha"]);
    await h1.tcp();
    const h2 = w.hub(1, [...common, "--listen", ep(1), "--label", "beta", "--peer", `${ep(0)}#mypl1`]);
    await h2.tcp();
    await w.waitForPeer(1, "mypl1", 40000);
    await w.waitForPeer(0, "mypl2", 40000);

    const file = w.file(
      "site.yaml",
      `version: 1\nnodes:\n  a: { module: ${ORCH_NODE}, placement: [alpha] }\n  b: { module: ${ORCH_NODE}, placement: [beta], replicas: 2 }\n`,
    );
    // up on host 2: a starts on host 1, b on host 2.
    const up = await w.cli(1, ["up", file, "--json", "--wait-ms", "60000"]);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    const want = ["mypl1:a#0:ready", "mypl2:b#0:ready", "mypl2:b#1:ready"];
    assert.deepEqual(summary(JSON.parse(up.stdout) as ProcessRow[]), want);
    // ps and logs from host 1.
    const rows = await w.ps(0);
    assert.deepEqual(summary(rows), want);
    const logs = await w.cli(0, ["logs", "b", "--replica", "1"]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /\[b#1@mypl2\] hello from b\.1#1/);

    // Cut host 2 off; a site-wide down from host 1 stops a and reports host 2.
    site.cut(1);
    await h1.waitFor(/on host mypl2 is unreachable/, LEASE_MS + 10000, "host 2 unreachable on host 1");
    const down = await w.cli(0, ["down", "--keep-hub"]);
    assert.equal(down.code, 1, down.stderr);
    assert.match(down.stderr, /host mypl1: stopped 1 process/);
    assert.match(down.stderr, /host mypl2: not reached: .*it stops its processes when it is back/);
    const a = rows.find((r) => r.process === "a")!;
    assert.equal(processRunning(a.pid), false);
    const bPids = rows.filter((r) => r.process === "b").map((r) => r.pid);
    assert.ok(bPids.every(processRunning), "b runs on, cut off");
    // The link is back: host 1's supervisor sends host 2 the down.
    site.restore(1);
    await h1.waitFor(
      /host mypl2 held version \d+: sent it the down of version \d+/,
      40000,
      "the down pushed",
    );
    await eventually(
      async () => (bPids.every((p) => !processRunning(p)) ? true : undefined),
      30000,
      "b stopped on host 2",
    );
    assert.deepEqual(await w.ps(1), []);
  },
);
