/**
 * Who may orchestrate another host: an anonymous caller (plain tcp, `--insecure` hubs) and a
 * trusted host key the other host's policy does not make an admin are refused by that host's
 * supervisor — the CLI's calls and the pushes between supervisors alike — and nothing starts there.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ProcessRow } from "../src/orchestrator/index.js";
import { PlWorld, spec, summary } from "./placement-world.js";

test(
  "an anonymous caller (plain tcp) is refused by another host's supervisor: up, scale and down there do nothing",
  { timeout: 120000 },
  async () => {
    await using w = new PlWorld(["ple", "plf"], { insecure: true });
    const common = ["--listen", "tcp://127.0.0.1:0", "--advertise-address", "127.0.0.1", "--insecure"];
    await w.pair(common, [], true);
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
    const [g] = await w.pair(common, ["--policy", policy]);
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
