/**
 * A site of three hosts (network namespaces on a bridge, each with its own runtime dir and host
 * name), a hub on each peered with the others: the site graph everywhere, pub/sub and a service
 * with replicas across hosts, a data port blocked (the subscriber says so: its log, its record,
 * the hub's log), a link cut (the cut host's nodes leave the graph within the lease) and restored
 * (they come back and data flows again, no node restarted).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { fixture, Proc, tempRuntime, type Line } from "./helpers.js";
import { netnsAvailable, NsSite } from "./netns.js";

const LEASE_MS = 2000;
const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

const graphHas = (want: string[]) => (l: Line) =>
  l.event === "graph" && want.every((n) => (l["nodes"] as string[]).includes(n));
const graphLacks = (gone: string[]) => (l: Line) =>
  l.event === "graph" && gone.every((n) => !(l["nodes"] as string[]).includes(n));

test(
  "three hosts: site graph, pub/sub and replicas across hosts, a blocked data port reported, a cut link and its return",
  { timeout: 120000, skip: netnsAvailable() ? false : "needs root and ip netns" },
  async () => {
    using site = new NsSite(3);
    using rt1 = tempRuntime();
    using rt2 = tempRuntime();
    using rt3 = tempRuntime();
    const rts = [rt1.dir, rt2.dir, rt3.dir];
    const env = (i: number): Record<string, string> => ({
      MYELIN_RUNTIME_DIR: rts[i]!,
      MYELIN_HOST: `h${i + 1}`,
    });
    const spawn = (i: number, args: object): Proc =>
      new Proc(fixture("site-proc"), [JSON.stringify(args)], env(i), site.exec(i));
    const hubEp = (i: number): string => `tcp://${site.hosts[i]!.addr}:7447`;
    // Hub 1's nodes bind data ports in 7500-7599 (blocked below, then opened).
    site.nft(
      0,
      "table inet mst {\n chain input {\n type filter hook input priority 0;\n tcp dport 7500-7599 drop\n }\n}\n",
    );
    await using hub1 = spawn(0, {
      role: "hub",
      listen: [hubEp(0)],
      leaseMs: LEASE_MS,
      dataPorts: [7500, 7599],
    });
    await using hub2 = spawn(1, { role: "hub", listen: [hubEp(1)], peers: [hubEp(0)], leaseMs: LEASE_MS });
    await using hub3 = spawn(2, {
      role: "hub",
      listen: [hubEp(2)],
      peers: [hubEp(0), hubEp(1)],
      leaseMs: LEASE_MS,
    });
    for (const h of [hub1, hub2, hub3]) await h.waitFor((l) => l.event === "ready", 20000, "hub ready");

    await using pub = spawn(0, { role: "pub", name: "pub1", rate: 50 });
    await using sub2 = spawn(1, { role: "sub", name: "sub2" });
    await using sub3 = spawn(2, { role: "sub", name: "sub3" });
    await using srv2 = spawn(1, { role: "server", name: "srv2" });
    await using srv3 = spawn(2, { role: "server", name: "srv3" });
    await using client = spawn(0, { role: "client", name: "client1", calls: 20 });
    const all = ["pub1@h1", "client1@h1", "sub2@h2", "srv2@h2", "sub3@h3", "srv3@h3"];
    // The site graph, with every node's host, on every hub and in every node.
    for (const p of [hub1, hub2, hub3, sub2, sub3, client])
      await p.waitFor(graphHas(all), 30000, "the whole site graph");

    // Hub 1's data ports are blocked: subscribers on other hosts say so.
    await sub2.waitFor(
      (l) =>
        l.event === "warning" &&
        /cannot reach node pub1 on host h1 at tcp:\/\/10\.213\.77\.1:75\d\d/.test(String(l["message"])),
      20000,
      "sub2's warning",
    );
    await hub2.waitFor(
      (l) =>
        l.event === "log" &&
        /node sub2 cannot reach node pub1 on host h1 at tcp:\/\/10\.213\.77\.1:75\d\d/.test(
          String(l["line"]),
        ),
      10000,
      "hub 2's log line",
    );
    const info = execFileSync(...cli(1, ["topic", "info", "/site/data"]));
    assert.match(
      info,
      /! subscriber sub2 \(on h2\) cannot reach publisher pub1 \(on h1\) at tcp:\/\/10\.213\.77\.1:75\d\d/,
    );
    site.nft(0, "delete table inet mst");

    // Data across hosts once open; the service's replicas on two hosts both answer.
    await sub2.waitFor((l) => l.event === "msg" && String(l["data"]).startsWith("h1 "), 20000, "data on h2");
    await sub3.waitFor((l) => l.event === "msg" && String(l["data"]).startsWith("h1 "), 20000, "data on h3");
    await client.waitFor((l) => l.event === "reply" && l["host"] === "h2", 20000, "a reply from h2");
    await client.waitFor((l) => l.event === "reply" && l["host"] === "h3", 20000, "a reply from h3");
    // `myelin site status` on host 1: two peers, up.
    const status = JSON.parse(execFileSync(...cli(0, ["site", "status", "--json"]))) as {
      host: string;
      peers: { host: string; state: string }[];
    };
    assert.equal(status.host, "h1");
    assert.deepEqual(status.peers.map((p) => `${p.host}:${p.state}`).sort(), ["h2:up", "h3:up"]);

    // Cut host 3 off: its nodes leave the graph of hosts 1 and 2 within the lease.
    const cutAt = Date.now();
    const mark1 = hub1.lines.length;
    site.cut(2);
    await hub1.waitFor(
      (l) => hub1.lines.indexOf(l) >= mark1 && graphLacks(["sub3@h3", "srv3@h3"])(l),
      LEASE_MS + 4000,
      "h3's nodes gone from hub 1",
    );
    const goneAfter = Date.now() - cutAt;
    assert.ok(goneAfter < LEASE_MS + 3000, `h3's nodes left after ${goneAfter} ms (lease ${LEASE_MS} ms)`);
    await hub1.waitFor(
      (l) => l.event === "log" && /on host h3 is unreachable/.test(String(l["line"])),
      5000,
      "hub 1 logs h3 unreachable",
    );
    await hub2.waitFor(graphLacks(["sub3@h3", "srv3@h3"]), LEASE_MS + 4000, "h3's nodes gone from hub 2");
    // Calls keep being answered (by h2) while h3 is away.
    const markC = client.lines.length;
    await client.waitFor(
      (l) => client.lines.indexOf(l) >= markC && l.event === "reply" && l["host"] === "h2",
      10000,
      "replies from h2 while h3 is cut",
    );

    // Restore: h3's nodes come back everywhere and data flows to h3 again, no node restarted.
    const mark3 = sub3.lines.length;
    site.restore(2);
    for (const p of [hub1, hub2, hub3]) await p.waitFor(graphHas(all), 30000, "the whole site graph again");
    await hub1.waitFor(
      (l) => l.event === "log" && /on host h3 is back/.test(String(l["line"])),
      10000,
      "hub 1 logs h3 back",
    );
    await sub3.waitFor(
      (l) => sub3.lines.indexOf(l) >= mark3 && l.event === "msg",
      30000,
      "data on h3 after the restore",
    );
    const markR = client.lines.length;
    await client.waitFor(
      (l) => client.lines.indexOf(l) >= markR && l.event === "reply" && l["host"] === "h3",
      30000,
      "a reply from h3 after the restore",
    );
    for (const p of [pub, sub2, sub3, srv2, srv3, client])
      assert.equal(p.exitCode, null, "no node restarted");

    function cli(
      i: number,
      args: string[],
    ): [string, string[], { env: NodeJS.ProcessEnv; encoding: "utf8" }] {
      return [
        "ip",
        [...site.exec(i).slice(1), process.execPath, CLI, ...args],
        { env: { ...process.env, ...env(i) }, encoding: "utf8" },
      ];
    }
  },
);
