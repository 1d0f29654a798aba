/**
 * Locality in load balancing, with real processes on two "hosts" on loopback (hubs peered in plain
 * text, each host its own runtime dir and host name): a client calls the replica on its own host
 * while it is healthy, falls back to the other host's when it dies, and spreads over both with
 * `MYELIN_LOCALITY=off`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture, Proc, tempRuntime, type Line } from "./helpers.js";

const graphHas = (want: string[]) => (l: Line) =>
  l.event === "graph" && want.every((n) => (l["nodes"] as string[]).includes(n));

test(
  "a call prefers the replica on the caller's host, falls back to the other host's, and spreads with locality off",
  { timeout: 90000 },
  async () => {
    using rtA = tempRuntime();
    using rtB = tempRuntime();
    const env = (dir: string, host: string, extra: Record<string, string> = {}): Record<string, string> => ({
      MYELIN_RUNTIME_DIR: dir,
      MYELIN_HOST: host,
      MYELIN_ADVERTISE_ADDRESS: "127.0.0.1",
      ...extra,
    });
    const spawn = (e: Record<string, string>, args: object): Proc =>
      new Proc(fixture("site-proc"), [JSON.stringify(args)], e);
    await using hubA = spawn(env(rtA.dir, "la"), {
      role: "hub",
      listen: ["tcp://127.0.0.1:0"],
      advertiseAddress: "127.0.0.1",
      leaseMs: 1500,
    });
    const ready = await hubA.waitFor((l) => l.event === "ready", 20000, "hub a");
    const aTcp = (ready["endpoints"] as string[]).find((e) => e.startsWith("tcp://"))!;
    await using hubB = spawn(env(rtB.dir, "lb"), {
      role: "hub",
      listen: ["tcp://127.0.0.1:0"],
      peers: [aTcp],
      advertiseAddress: "127.0.0.1",
      leaseMs: 1500,
    });
    await hubB.waitFor((l) => l.event === "ready", 20000, "hub b");
    await using srvA = spawn(env(rtA.dir, "la"), { role: "server", name: "srv_a" });
    await using _srvB = spawn(env(rtB.dir, "lb"), { role: "server", name: "srv_b" });
    await using near = spawn(env(rtA.dir, "la"), { role: "client", name: "near", calls: 40 });
    await using spread = spawn(env(rtA.dir, "la", { MYELIN_LOCALITY: "off" }), {
      role: "client",
      name: "spread",
      calls: 40,
    });
    for (const p of [near, spread])
      await p.waitFor(graphHas(["srv_a@la", "srv_b@lb"]), 30000, "both replicas");
    // With locality off, both hosts answer (round-robin over the two replicas).
    const markS = spread.lines.length;
    for (const host of ["la", "lb"]) {
      await spread.waitFor(
        (l) => spread.lines.indexOf(l) >= markS && l.event === "reply" && l["host"] === host,
        20000,
        `a reply from ${host} with locality off`,
      );
    }
    // With locality on (the default), 40 calls in a row go to the caller's host only.
    const mark = near.lines.length;
    await near.waitFor(
      () => near.lines.slice(mark).filter((l) => l.event === "reply").length >= 40,
      20000,
      "40 replies",
    );
    const hosts = near.lines
      .slice(mark)
      .filter((l) => l.event === "reply")
      .map((l) => l["host"]);
    assert.deepEqual([...new Set(hosts)], ["la"], `replies came from ${hosts.join(",")}`);
    // The local replica dies: calls go on to the other host's.
    srvA.kill("SIGKILL");
    const markK = near.lines.length;
    await near.waitFor(
      (l) => near.lines.indexOf(l) >= markK && l.event === "reply" && l["host"] === "lb",
      20000,
      "a reply from lb once srv_a is gone",
    );
  },
);
