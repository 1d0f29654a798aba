/**
 * Site-wide orchestration on loopback hubs over CURVE: a host frozen past its lease during a
 * site-wide `scale` and during a `down` is reported, and gets each when it is back; `down --host`
 * stops one host only.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { processRunning, type ProcessRow } from "../src/orchestrator/index.js";
import { eventually, PlWorld, spec, summary } from "./placement-world.js";

const LEASE_MS = 1500;

test(
  "a host that misses a site-wide scale or down gets it when it is back; --host restricts down to one host",
  { timeout: 180000 },
  async () => {
    await using w = new PlWorld(["plc", "pld"]);
    const common = [
      "--listen",
      "tcp://127.0.0.1:0",
      "--advertise-address",
      "127.0.0.1",
      "--peer-lease-ms",
      String(LEASE_MS),
    ];
    const [c, d] = await w.pair(common);
    const up = await w.cli(0, ["up", w.file("s.yaml", spec({ every: "" })), "--json"]);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    assert.deepEqual(summary(JSON.parse(up.stdout) as ProcessRow[]), [
      "plc:every#0:ready",
      "pld:every#0:ready",
    ]);

    // --host: only d stops; c keeps running.
    const one = await w.cli(0, ["down", "--host", "pld"]);
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(summary(await w.ps(0)), ["plc:every#0:ready"]);
    const bad = await w.cli(0, ["down", "--host", "nosuch"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /the site has no host 'nosuch'; hosts: plc, pld/);

    // Bring d back up, then freeze it through a site-wide scale from c: it is scaled when back.
    const up2 = await w.cli(0, ["up", w.file("s2.yaml", spec({ every: "", more: "" })), "--json"]);
    assert.equal(up2.code, 0, `${up2.stdout}\n${up2.stderr}`);
    let mark = c.mark();
    d.child.kill("SIGSTOP");
    await c.waitFor(/on host pld is unreachable/, LEASE_MS + 10000, "d unreachable on c", mark);
    const scale = await w.cli(0, ["scale", "every=2", "--json"]);
    assert.equal(scale.code, 1, scale.stderr);
    assert.match(
      scale.stderr,
      /host pld: not reached: .*it gets the scaled spec from the other hubs when it is back/,
    );
    assert.deepEqual(summary(JSON.parse(scale.stdout) as ProcessRow[]), [
      "plc:every#0:ready",
      "plc:every#1:ready",
      "plc:more#0:ready",
    ]);
    mark = c.mark();
    d.child.kill("SIGCONT");
    await c.waitFor(
      /host pld held version \d+: sent it the spec of version \d+/,
      30000,
      "c pushes the scaled spec",
      mark,
    );
    const scaled = await eventually(
      async () => {
        const rows = await w.ps(1, ["--host", "pld"]);
        return summary(rows).join() === "pld:every#0:ready,pld:every#1:ready,pld:more#0:ready"
          ? rows
          : undefined;
      },
      30000,
      "d scaled",
    );
    const dPids = scaled.map((r) => r.pid);
    // Freeze d through a site-wide down from c: it stops its processes when back.
    mark = c.mark();
    d.child.kill("SIGSTOP");
    await c.waitFor(/on host pld is unreachable/, LEASE_MS + 10000, "d unreachable on c", mark);
    const down = await w.cli(0, ["down", "--keep-hub"]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /host pld: not reached: .*it stops its processes when it is back/);
    mark = c.mark();
    d.child.kill("SIGCONT");
    await c.waitFor(
      /host pld held version \d+: sent it the down of version \d+/,
      30000,
      "c pushes the down",
      mark,
    );
    await eventually(
      async () => (dPids.every((p) => !processRunning(p)) ? true : undefined),
      30000,
      "d's processes stopped",
    );
    assert.deepEqual(await w.ps(1), []);
  },
);
