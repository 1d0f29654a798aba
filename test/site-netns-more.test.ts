/**
 * More of a site across three real hosts: network namespaces (named `mysm…`) on a bridge, each
 * with its own runtime, data and key directories and host name, a `myelin hub` (store and
 * supervisor included) on each, peered over CURVE (each host trusts the others' keys). One
 * `myelin up` places a node on each of the three hosts; parameters of a node on host 3 are read and
 * set from host 1; calls from host 1 to a service with replicas on hosts 2 and 3 all succeed while
 * host 2's replica is killed with SIGKILL; persistent publishes are stored by the store of the
 * publisher's host, and a durable consumer reads the store of its own host, or of the host it
 * names (docs/site.md, "Durable topics in a site"); a reliable topic across a cut link repeats
 * nothing and counts every message the cut cost. Needs root and iproute2; skipped otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ProcessRow } from "../src/orchestrator/index.js";
import { fixture, Proc, type Line } from "./helpers.js";
import { netnsAvailable, NsSite } from "./netns.js";
import { ORCH_NODE, PlWorld, summary } from "./placement-world.js";

const LEASE_MS = 2000;
const HOSTS = ["mysm1", "mysm2", "mysm3"];

const graphHas = (want: string[]) => (l: Line) =>
  l.event === "graph" && want.every((n) => (l["nodes"] as string[]).includes(n));

test(
  "three hosts: up places a node on each, parameters across hosts, no failed idempotent call while a remote replica is killed, durable topics per host, a reliable topic across a cut link",
  { timeout: 180000, skip: netnsAvailable() ? false : "needs root and ip netns" },
  async (t) => {
    using site = new NsSite(3, { prefix: "mysm" });
    await using w = new PlWorld(HOSTS, { prefixes: [0, 1, 2].map((i) => site.exec(i)) });
    const ep = (i: number): string => `tcp://${site.hosts[i]!.addr}:7447`;
    const common = ["--peer-lease-ms", String(LEASE_MS)];
    const labels = ["alpha", "beta", "gamma"];
    const hubs = [0, 1, 2].map((i) =>
      w.hub(i, [
        ...common,
        "--listen",
        ep(i),
        "--label",
        labels[i]!,
        ...[0, 1, 2].filter((j) => j < i).flatMap((j) => ["--peer", `${ep(j)}#${HOSTS[j]!}`]),
      ]),
    );
    for (const h of hubs) await h.tcp();
    for (const i of [0, 1, 2])
      for (const j of [0, 1, 2]) if (i !== j) await w.waitForPeer(i, HOSTS[j]!, 40000);

    // Processes started by the test on host i (killed on dispose, before the hubs stop).
    const procs: Proc[] = [];
    const env = (i: number): Record<string, string> => {
      const e = w.hosts[i]!.env;
      return {
        MYELIN_RUNTIME_DIR: e["MYELIN_RUNTIME_DIR"]!,
        MYELIN_DATA_DIR: e["MYELIN_DATA_DIR"]!,
        MYELIN_KEYS_DIR: e["MYELIN_KEYS_DIR"]!,
        MYELIN_HOST: HOSTS[i]!,
      };
    };
    const spawn = (i: number, name: string, args: object): Proc => {
      const p = new Proc(fixture(name), [JSON.stringify(args)], env(i), site.exec(i));
      procs.push(p);
      return p;
    };
    try {
      // One spec, one `up` on host 1: a node on each of the three hosts.
      const file = w.file(
        "site.yaml",
        `version: 1\nnodes:\n  a: { module: ${ORCH_NODE}, placement: [alpha] }\n  b: { module: ${ORCH_NODE}, placement: [beta] }\n  c: { module: ${ORCH_NODE}, placement: [gamma], replicas: 2 }\n`,
      );
      const up = await w.cli(0, ["up", file, "--json", "--wait-ms", "60000"]);
      assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
      const want = ["mysm1:a#0:ready", "mysm2:b#0:ready", "mysm3:c#0:ready", "mysm3:c#1:ready"];
      assert.deepEqual(summary(JSON.parse(up.stdout) as ProcessRow[]), want);
      // The same from host 3, and a call from host 2 answered by host 3's node.
      assert.deepEqual(summary(await w.ps(2)), want);
      const who = await w.cli(1, ["service", "call", "/c/who", "std_srvs/Trigger", "{}"]);
      assert.equal(who.code, 0, who.stderr);
      assert.match(who.stdout, /c(\.1)?#[01] \d+/);

      // Parameters of a node on host 3, from host 1.
      const knob = spawn(2, "site-more-proc", { role: "param", name: "knob" });
      await knob.waitFor((l) => l.event === "ready", 20000, "knob ready");
      const get0 = await w.cli(0, ["param", "get", "knob", "gain"]);
      assert.equal(get0.code, 0, get0.stderr);
      assert.match(get0.stdout, /^1\b/m);
      const set = await w.cli(0, ["param", "set", "knob", "gain", "2.5"]);
      assert.equal(set.code, 0, set.stderr);
      await knob.waitFor((l) => l.event === "param" && l["value"] === 2.5, 10000, "the change on host 3");
      const get1 = await w.cli(0, ["param", "get", "knob", "gain"]);
      assert.match(get1.stdout, /^2\.5\b/m);
      const bad = await w.cli(0, ["param", "set", "knob", "gain", "11"]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /node knob refused: .*gain.*\[ERR_PARAMETER\]/);

      // Idempotent calls from host 1 to replicas on hosts 2 and 3; host 2's is killed with SIGKILL.
      const srv2 = spawn(1, "site-more-proc", { role: "server", name: "srv2" });
      spawn(2, "site-more-proc", { role: "server", name: "srv3" });
      const client = spawn(0, "site-more-proc", { role: "client", name: "caller", calls: 20 });
      await client.waitFor(graphHas(["srv2@mysm2", "srv3@mysm3"]), 30000, "both replicas");
      for (const host of ["mysm2", "mysm3"])
        await client.waitFor((l) => l.event === "reply" && l["host"] === host, 20000, `a reply from ${host}`);
      srv2.kill("SIGKILL");
      const mark = client.lines.length;
      // Until well past the lease (the dead replica leaves the graph), every call is answered.
      await client.waitFor(
        (l) => client.lines.indexOf(l) >= mark && graphHas(["srv3@mysm3"])(l) && !graphHas(["srv2@mysm2"])(l),
        LEASE_MS + 15000,
        "srv2 gone from the caller's graph",
      );
      const markGone = client.lines.length;
      await client.waitFor(
        () => client.lines.slice(markGone).filter((l) => l.event === "reply").length >= 20,
        20000,
        "20 replies after srv2 left",
      );
      // (Calls made before any replica was in the caller's graph fail with ERR_NO_SERVER: not counted.)
      const failed = client.lines.slice(mark).filter((l) => l.event === "call-failed");
      assert.deepEqual(failed, [], "no idempotent call failed");
      const after = client.lines.slice(mark).filter((l) => l.event === "reply");
      assert.ok(after.length >= 20);
      assert.ok(
        after.slice(-20).every((l) => l["host"] === "mysm3"),
        "the calls after the kill go to host 3",
      );

      // Durable topics: a persistent publish is stored by the store of the publisher's host; a
      // durable consumer reads the store of its own host.
      const dpub2 = spawn(1, "site-more-proc", { role: "dpub", name: "dpub2", count: 20 });
      await dpub2.waitFor((l) => l.event === "done", 30000, "20 publishes on host 2");
      assert.equal(dpub2.lines.filter((l) => l.event === "confirmed").length, 20);
      const cons2 = spawn(1, "site-more-proc", { role: "dcons", name: "cons2", consumer: "reader" });
      await cons2.waitFor(
        () => cons2.lines.filter((l) => l.event === "msg").length >= 20,
        30000,
        "host 2's consumer reads the 20",
      );
      assert.deepEqual(
        cons2.lines.filter((l) => l.event === "msg").map((l) => l["data"]),
        Array.from({ length: 20 }, (_, i) => `mysm2 ${i}`),
      );
      // Host 3's store holds only what was published on host 3: its consumer's first message is
      // host 3's, at seq 1.
      const cons3 = spawn(2, "site-more-proc", { role: "dcons", name: "cons3", consumer: "reader" });
      await cons3.waitFor((l) => l.event === "ready", 20000, "host 3's consumer");
      const dpub3 = spawn(2, "site-more-proc", { role: "dpub", name: "dpub3", count: 1 });
      await dpub3.waitFor((l) => l.event === "done", 30000, "a publish on host 3");
      const first = await cons3.waitFor((l) => l.event === "msg", 30000, "host 3's consumer reads");
      assert.deepEqual([first["data"], first["seq"]], ["mysm3 0", 1]);
      // A consumer naming a host the site does not have warns (and retries).
      const consX = spawn(2, "site-more-proc", { role: "dcons", name: "consx", host: "nohost" });
      const warn = await consX.waitFor(
        (l) => l.event === "warning",
        20000,
        "the warning of a consumer of nohost",
      );
      assert.match(String(warn["message"]), /nohost/);
      // A consumer on host 3 that names host 2 reads host 2's store: the 20 of host 2.
      const consR = spawn(2, "site-more-proc", {
        role: "dcons",
        name: "cons3r",
        consumer: "remote-reader",
        host: "mysm2",
      });
      await consR.waitFor(
        () => consR.lines.filter((l) => l.event === "msg").length >= 20,
        30000,
        "host 3's consumer of host 2's store reads the 20",
      );
      assert.deepEqual(
        consR.lines.filter((l) => l.event === "msg").map((l) => l["data"]),
        Array.from({ length: 20 }, (_, i) => `mysm2 ${i}`),
      );

      // A reliable topic from host 1 to host 3 across a cut of host 3's link (longer than the
      // lease): what host 3 received is never received again nor out of order, and every message
      // of the publisher's sequence it did not receive is counted in its `dropped`.
      const rpub = spawn(0, "site-more-proc", { role: "rpub", name: "rpub1", rate: 50 });
      const rsub = spawn(2, "site-more-proc", { role: "rsub", name: "rsub3" });
      const msgs = (from = 0): Line[] => rsub.lines.slice(from).filter((l) => l.event === "msg");
      await rsub.waitFor(() => msgs().length >= 25, 30000, "25 messages on host 3 before the cut");
      const hub1 = hubs[0]!;
      const markHub = hub1.mark();
      const cutAt = Date.now();
      site.cut(2);
      await hub1.waitFor(/on host mysm3 is unreachable/, LEASE_MS + 10000, "host 3 unreachable", markHub);
      await rpub.waitFor(
        (l) => l.event === "stats" && l["remoteSubscribers"] === 0,
        LEASE_MS + 10000,
        "the publisher drops host 3's subscriber",
      );
      const beforeRestore = rsub.lines.length;
      const cutMs = Date.now() - cutAt;
      site.restore(2);
      await hub1.waitFor(/on host mysm3 is back/, 20000, "host 3 back", markHub);
      await rsub.waitFor(
        () => msgs(beforeRestore).length >= 25,
        30000,
        "25 messages on host 3 after the restore",
      );
      const markS = rsub.lines.length;
      const st = await rsub.waitFor(
        (l) => rsub.lines.indexOf(l) >= markS && l.event === "stats",
        5000,
        "the subscriber's stats",
      );
      const upTo = rsub.lines.indexOf(st);
      const seqs = rsub.lines
        .slice(0, upTo)
        .filter((l) => l.event === "msg")
        .map((l) => l["seq"] as number);
      for (let i = 1; i < seqs.length; i++)
        assert.ok(seqs[i]! > seqs[i - 1]!, `seq ${seqs[i]} after ${seqs[i - 1]}: a repeat or out of order`);
      const span = seqs.at(-1)! - seqs[0]! + 1;
      const missing = span - seqs.length;
      assert.equal(st["received"], seqs.length);
      assert.equal(
        st["dropped"],
        missing,
        `the cut cost ${missing} of ${span} messages; counted ${st["dropped"]}`,
      );
      t.diagnostic(
        `reliable across a cut of ${cutMs} ms: ${seqs.length} of ${span} received, ${missing} lost and counted`,
      );
    } finally {
      await Promise.all(procs.map((p) => p[Symbol.asyncDispose]()));
    }
  },
);
