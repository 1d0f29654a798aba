/**
 * Placement across hosts and site-wide orchestration, on loopback: hubs with hosts of their own
 * (runtime, data and key directories, `--host`, labels), peered over CURVE. `myelin up` on one
 * host places each node on the hubs its placement matches and reports a node no hub matches;
 * `ps`, `logs`, `scale`, `restart`, `down` work from any host; a host that is away during `up` is
 * reported and converges to the new spec when it is back. An anonymous caller (plain tcp) is
 * refused by another host's supervisor.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { processRunning, type ProcessRow } from "../src/orchestrator/index.js";
import { eventually, ORCH_NODE, PlWorld } from "./placement-world.js";

const LEASE_MS = 1500;

const summary = (rows: ProcessRow[]): string[] =>
  rows.map((r) => `${r.host}:${r.process}#${r.replica}:${r.state}`).sort();

const spec = (nodes: Record<string, string>): string =>
  `version: 1\nnodes:\n${Object.entries(nodes)
    .map(([n, extra]) => `  ${n}: { module: ${ORCH_NODE}${extra === "" ? "" : `, ${extra}`} }`)
    .join("\n")}\n`;

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
    b.child.kill("SIGSTOP");
    await a.waitFor(/on host plb is unreachable/, LEASE_MS + 10000, "b unreachable on a");
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
    b.child.kill("SIGCONT");
    await a.waitFor(
      /host plb held version \d+: sent it the spec of version \d+/,
      30000,
      "a pushes the spec to b",
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

test(
  "a host that misses a site-wide down stops its processes when it is back; --host restricts down to one host",
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
    const c = w.hub(0, common);
    const cTcp = await c.tcp();
    const d = w.hub(1, [...common, "--peer", `${cTcp}#plc`]);
    await d.tcp();
    for (const h of [c, d]) await h.waitFor(/supervisor ready/, 20000, "the supervisor");
    await w.waitForPeer(0, "pld");
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

    // Bring d back up, then freeze it through a site-wide down from c.
    const up2 = await w.cli(0, ["up", w.file("s2.yaml", spec({ every: "", more: "" })), "--json"]);
    assert.equal(up2.code, 0, `${up2.stdout}\n${up2.stderr}`);
    const dPids = (await w.ps(1, ["--host", "pld"])).map((r) => r.pid);
    assert.equal(dPids.length, 2);
    d.child.kill("SIGSTOP");
    await c.waitFor(/on host pld is unreachable/, LEASE_MS + 10000, "d unreachable on c");
    const down = await w.cli(0, ["down", "--keep-hub"]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /host pld: not reached: .*it stops its processes when it is back/);
    d.child.kill("SIGCONT");
    await c.waitFor(/host pld held version \d+: sent it the down of version \d+/, 30000, "c pushes the down");
    await eventually(
      async () => (dPids.every((p) => !processRunning(p)) ? true : undefined),
      30000,
      "d's processes stopped",
    );
    assert.deepEqual(await w.ps(1), []);
  },
);

test(
  "an anonymous caller (plain tcp) is refused by another host's supervisor: up, scale and down there do nothing",
  { timeout: 120000 },
  async () => {
    await using w = new PlWorld(["ple", "plf"], { insecure: true });
    const common = ["--listen", "tcp://127.0.0.1:0", "--advertise-address", "127.0.0.1", "--insecure"];
    const e = w.hub(0, common);
    const eTcp = await e.tcp();
    const f = w.hub(1, [...common, "--peer", eTcp]);
    await f.tcp();
    for (const h of [e, f]) await h.waitFor(/supervisor ready/, 20000, "the supervisor");
    await w.waitForPeer(0, "plf");
    const up = await w.cli(0, ["up", w.file("s.yaml", spec({ every: "" })), "--json"]);
    assert.equal(up.code, 1, `${up.stdout}\n${up.stderr}`);
    assert.match(
      up.stderr,
      /host plf: .*identity 'anonymous' may not call \/_supervisor\/ps: internal services are for admins only/,
    );
    assert.deepEqual(summary(JSON.parse(up.stdout) as ProcessRow[]), ["ple:every#0:ready"]);
    // f ran nothing, and its own supervisor holds no spec (asked locally, as an admin).
    assert.deepEqual(await w.ps(1, ["--host", "plf"]), []);
    const scale = await w.cli(0, ["scale", "every=2", "--host", "plf"]);
    assert.equal(scale.code, 1);
    assert.match(scale.stderr, /identity 'anonymous' may not call \/_supervisor\/scale/);
    const down = await w.cli(0, ["down", "--host", "plf"]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /identity 'anonymous' may not call \/_supervisor\/down/);
    // e's own processes are e's to stop.
    const downE = await w.cli(0, ["down", "--host", "ple", "--keep-hub"]);
    assert.equal(downE.code, 0, downE.stderr);
  },
);

test(
  "a trusted host key that the policy does not make an admin is refused by that host's supervisor, also when a supervisor pushes the spec",
  { timeout: 120000 },
  async () => {
    await using w = new PlWorld(["plg", "plh"]);
    const policy = w.file(
      "policy.yaml",
      [
        "identities:",
        "  operators: local",
        "admins: [operators]",
        "grants:",
        "  - identity: curve:*",
        '    publish: ["**"]',
        '    subscribe: ["**"]',
        '    serve: ["**"]',
        '    call: ["**"]',
        "",
      ].join("\n"),
    );
    const common = ["--listen", "tcp://127.0.0.1:0", "--advertise-address", "127.0.0.1"];
    const g = w.hub(0, common);
    const gTcp = await g.tcp();
    const h = w.hub(1, [...common, "--peer", `${gTcp}#plg`, "--policy", policy]);
    await h.tcp();
    for (const x of [g, h]) await x.waitFor(/supervisor ready/, 20000, "the supervisor");
    await w.waitForPeer(0, "plh");
    const up = await w.cli(0, ["up", w.file("s.yaml", spec({ every: "" })), "--json"]);
    assert.equal(up.code, 1, `${up.stdout}\n${up.stderr}`);
    const key = w.hosts[0]!.publicKey;
    const line = up.stderr.split("\n").find((l) => l.includes("host plh: ")) ?? "";
    assert.ok(
      line.includes(
        `identity 'curve:${key}' may not call /_supervisor/ps: internal services are for admins only`,
      ),
      up.stderr,
    );
    assert.deepEqual(summary(JSON.parse(up.stdout) as ProcessRow[]), ["plg:every#0:ready"]);
    // g's supervisor, holding the newer spec, tries to push it to h: refused the same way.
    await g.waitFor(
      /cannot bring host plh to version \d+ yet \(retrying\): .*may not call \/_supervisor\/ps/,
      20000,
      "g's push refused",
    );
    assert.deepEqual(await w.ps(1, ["--host", "plh"]), []);
    // The other way round is allowed: g's default policy makes every trusted key (h's) an admin.
    const upH = await w.cli(1, ["up", w.file("h.yaml", spec({ mine: "" })), "--json"]);
    assert.equal(upH.code, 0, `${upH.stdout}\n${upH.stderr}`);
    assert.deepEqual(summary(JSON.parse(upH.stdout) as ProcessRow[]), [
      "plg:mine#0:ready",
      "plh:mine#0:ready",
    ]);
  },
);
