/**
 * Placement across hosts and site-wide orchestration, on loopback: hubs with hosts of their own
 * (runtime, data and key directories, `--host`, labels), peered over CURVE. `myelin up` on one
 * host places each node on the hubs its placement matches and reports a node no hub matches;
 * `ps`, `logs` (and `logs -f`), `scale`, `restart`, `down` work from any host; a host that is
 * away during `up` is reported and converges to the new spec when it is back. (A host away during
 * `scale` and `down`: placement-converge.test.ts; who may: placement-auth.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { processRunning, type ProcessRow } from "../src/orchestrator/index.js";
import { eventually, PlWorld, spec, summary } from "./placement-world.js";

const LEASE_MS = 1500;

test(
  "a site-wide up places nodes by label across hosts; ps, logs, scale, restart and down from any host; a host away during up converges when back",
  { timeout: 240000 },
  async () => {
    await using w = new PlWorld(["pla", "plb"]);
    const common = [
      "--listen",
      "tcp://127.0.0.1:0",
      "--advertise-address",
      "127.0.0.1",
      "--peer-lease-ms",
      String(LEASE_MS),
    ];
    const a = w.hub(0, [...common, "--label", "front"]);
    const aTcp = await a.tcp();
    const b = w.hub(1, [...common, "--label", "back", "--peer", `${aTcp}#pla`]);
    await b.tcp();
    await a.waitFor(/peer hub \S+ on host plb connected/, 20000, "a sees b");
    await a.waitFor(/supervisor ready/, 20000, "a's supervisor");
    await b.waitFor(/supervisor ready/, 20000, "b's supervisor");

    const file = w.file(
      "site.yaml",
      spec({
        front: "placement: [front]",
        back: "placement: [back], replicas: 2",
        every: "",
        nowhere: "placement: [gpu]",
      }),
    );
    // Until b's supervisor is on a's graph, `up` would count b as a host without one: wait for it.
    await w.waitForPeer(0, "plb");
    const up = await w.cli(0, ["up", file, "--wait-ms", "60000", "--json"]);
    assert.equal(up.code, 1, `up: ${up.stdout}\n${up.stderr}`);
    assert.match(
      up.stderr,
      /unplaceable: nowhere \(placement: gpu\) matches the labels of no hub of the site/,
    );
    assert.match(up.stderr, /pla \[pla, front\]/);
    assert.match(up.stderr, /plb \[plb, back\]/);
    assert.deepEqual(summary(JSON.parse(up.stdout) as ProcessRow[]), [
      "pla:every#0:ready",
      "pla:front#0:ready",
      "plb:back#0:ready",
      "plb:back#1:ready",
      "plb:every#0:ready",
    ]);

    // ps from the other host: the same table, a HOST column in text.
    const rowsB = await w.ps(1);
    assert.deepEqual(summary(rowsB), summary(JSON.parse(up.stdout) as ProcessRow[]));
    const text = await w.cli(1, ["ps"]);
    assert.match(text.stdout, /^HOST\s+NODE\s+REPLICA\s+STATE/);
    assert.match(text.stderr, /unplaceable: nowhere/);
    assert.equal(text.code, 1);
    assert.deepEqual(summary(await w.ps(1, ["--host", "pla"])), ["pla:every#0:ready", "pla:front#0:ready"]);

    // logs of a node that runs on the other host, from this one.
    const logs = await w.cli(0, ["logs", "back"]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /\[back#1@plb\] hello from back\.1#1/);
    assert.doesNotMatch(logs.stdout, /@pla\]/);

    // scale from a: b runs one replica of back.
    const scale = await w.cli(0, ["scale", "back=1", "--json"]);
    assert.equal(scale.code, 0, scale.stderr);
    assert.deepEqual(
      summary((JSON.parse(scale.stdout) as ProcessRow[]).filter((r) => r.process === "back")),
      ["plb:back#0:ready"],
    );

    // restart from b: front (on a) gets a new process; `logs -f` on b follows it there.
    const follow = w.spawn(1, ["logs", "front", "-f", "-n", "0"]);
    await eventually(
      async () =>
        (await w.cli(1, ["topic", "info", "/myelin/logs"])).stdout.match(
          /_myelin_logs_\d+ \(pid \d+ on plb\)/,
        ) !== null
          ? true
          : undefined,
      20000,
      "logs -f subscribed",
    );
    const frontPid = rowsB.find((r) => r.process === "front")!.pid;
    const restart = await w.cli(1, ["restart", "front", "--json"]);
    assert.equal(restart.code, 0, restart.stderr);
    const front = (JSON.parse(restart.stdout) as ProcessRow[]).find((r) => r.process === "front")!;
    assert.equal(front.host, "pla");
    assert.notEqual(front.pid, frontPid);
    assert.equal(front.state, "ready");
    await follow.waitFor(
      /\[front#0@pla\] hello from front#0 \(pid (\d+)\)/,
      20000,
      "the new front's line, followed from b",
    );
    await follow.stop();

    // b away (its hub frozen past the lease) during an up: reported; when back, it converges.
    let mark = a.mark();
    b.child.kill("SIGSTOP");
    await a.waitFor(/on host plb is unreachable/, LEASE_MS + 10000, "b unreachable on a", mark);
    const file2 = w.file(
      "site2.yaml",
      spec({ front: "placement: [front]", back: "placement: [back]", extra: "placement: [back]" }),
    );
    const up2 = await w.cli(0, ["up", file2, "--wait-ms", "30000", "--json"]);
    assert.equal(up2.code, 1, `up2: ${up2.stdout}\n${up2.stderr}`);
    assert.match(
      up2.stderr,
      /host plb: not reached: its hub is unreachable.*it gets version \d+ of the spec from the other hubs when it is back/,
    );
    // back's label is plb's: plb did not answer, so back is not called unplaceable.
    assert.doesNotMatch(up2.stderr, /unplaceable/);
    assert.match(
      up2.stderr,
      /placed on no hub that answered: back \(placement: back\); extra \(placement: back\); labels: pla \[pla, front\]; not answering \(their labels are unknown\): plb/,
    );
    assert.deepEqual(summary(JSON.parse(up2.stdout) as ProcessRow[]), ["pla:front#0:ready"]);
    mark = a.mark();
    b.child.kill("SIGCONT");
    await a.waitFor(
      /host plb held version \d+: sent it the spec of version \d+/,
      30000,
      "a pushes the spec to b",
      mark,
    );
    const converged = await eventually(
      async () => {
        const rows = (await w.ps(1)).filter((r) => r.host === "plb");
        const s = summary(rows);
        return s.join() === "plb:back#0:ready,plb:extra#0:ready" ? s : undefined;
      },
      60000,
      "b runs the new spec",
    );
    assert.deepEqual(converged, ["plb:back#0:ready", "plb:extra#0:ready"]);

    // down from b: every host stops.
    const pids = (await w.ps(0)).map((r) => r.pid).filter((p) => p > 0);
    assert.equal(pids.length, 3);
    const down = await w.cli(1, ["down", "--keep-hub"]);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stderr, /host pla: stopped 1 process/);
    assert.match(down.stderr, /host plb: stopped 2 processes/);
    assert.deepEqual(await w.ps(0), []);
    for (const pid of pids) assert.equal(processRunning(pid), false, `pid ${pid} stopped`);
  },
);
