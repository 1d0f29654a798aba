/**
 * Policy reload with real processes: a `myelin hub --policy FILE` process; `myelin policy reload`
 * (an admin: this host's user) and SIGHUP put a good file in force — the hub checks the next
 * declarations against it and its nodes receive it — and refuse a bad file with the error, keeping
 * the old policy. An identity that is no admin may not reload. A hostile peer's flood of refused
 * messages is counted exactly and logged as a few lines and a summary. A reload that withdraws a
 * subscriber's grant ends its running subscription (and refuses it asking again); granting it back
 * lets data flow again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { encodeControl } from "../src/node/control-protocol.js";
import { zmqTransport } from "../src/transport/zmq/zmq-transport.js";
import { spawnFixture, tempRuntime, until } from "./helpers.js";
import { runCli, startCliHub, world } from "./cli-world.js";

const policy = (guestPublish: string[]): string => `
identities:
  operators: local
  guests: anonymous
admins: [operators]
grants:
  - identity: guests
    publish: ${JSON.stringify(guestPublish)}
    subscribe: ["/**"]
`;

const refused = (e: Error & { code?: string }): boolean => e.code === "ERR_NOT_AUTHORIZED";

test(
  "myelin policy reload and SIGHUP put a good policy in force for the hub and its nodes; a bad file is refused and the old policy kept",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t, "myelin-policy-");
    w.env["MYELIN_INSECURE"] = "1";
    const file = join(w.dir, "policy.yaml");
    writeFileSync(file, policy(["/telemetry/**"]));
    const hub = await startCliHub(t, w, ["--listen", "tcp://127.0.0.1:0", "--insecure", "--policy", file]);
    const tcp = /listening on (tcp:\/\/\S+)/.exec(await hub.waitFor(/listening on tcp:/))![1]!;
    // A guest (anonymous, plain tcp) node, in this process.
    await using guest = await createNode({ name: "guest", hub: tcp, insecure: true, runtimeDir: w.dir });
    assert.equal(guest.identity, "anonymous");
    await assert.rejects(guest.createPublisher("/cmd/vel", std_msgs.String), refused, "before the reload");

    // Good file, `myelin policy reload`: the hub and the node have the new policy.
    writeFileSync(file, policy(["/telemetry/**", "/cmd/**"]));
    const ok = await runCli(t, w, ["policy", "reload"], 20000);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /policy reloaded from .*policy\.yaml: 1 admin\(s\), 1 grant\(s\); \d+ node\(s\) asked to register again/,
    );
    await hub.waitFor(/policy reloaded from/);
    await until(
      () => guest.accessPolicy.check("anonymous", "publish", "/cmd/vel").allowed,
      10000,
      "the node receiving the new policy",
    );
    await guest.createPublisher("/cmd/vel", std_msgs.String);

    // Bad file: refused with the error naming the file; the old policy stays in force.
    writeFileSync(file, "admins: [operators]\ngrants: nope\nextra: 1\n");
    const bad = await runCli(t, w, ["policy", "reload"], 20000);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /policy reload refused, the policy in force stays: ERR_BAD_CONFIG: .*policy\.yaml/,
    );
    await hub.waitFor(/policy reload refused, the policy in force stays/);
    await guest.createPublisher("/cmd/other", std_msgs.String); // still granted

    // SIGHUP with a good file that takes the grant back.
    writeFileSync(file, policy(["/telemetry/**"]));
    hub.child.kill("SIGHUP");
    await until(
      () => (hub.stdout.match(/policy reloaded from/g) ?? []).length >= 2,
      10000,
      "the SIGHUP reload",
    );
    await assert.rejects(guest.createPublisher("/cmd/third", std_msgs.String), refused, "after SIGHUP");
    await until(
      () => !guest.accessPolicy.check("anonymous", "publish", "/cmd/vel").allowed,
      10000,
      "the node receiving the SIGHUP policy",
    );

    // Reloading is for admins: once a policy names none, this host's user may not reload (SIGHUP,
    // from the hub's own user on its host, still may).
    writeFileSync(file, policy(["/telemetry/**"]).replace("admins: [operators]", "admins: []"));
    hub.child.kill("SIGHUP");
    await until(
      () => (hub.stdout.match(/policy reloaded from/g) ?? []).length >= 3,
      10000,
      "the third reload",
    );
    await until(
      () => !guest.accessPolicy.isAdmin("local"),
      10000,
      "the node receiving the policy without admins",
    );
    let denied: { code: number | null; stderr: string } | undefined;
    for (let i = 0; i < 20 && denied?.code !== 1; i++)
      denied = await runCli(t, w, ["policy", "reload"], 20000);
    assert.equal(denied?.code, 1);
    assert.match(
      denied?.stderr ?? "",
      /identity 'local' may not call \/_hub\/reload_policy: internal services are for admins only.*ERR_NOT_AUTHORIZED/,
    );
  },
);

const subscribePolicy = (guestSubscribe: string[]): string => `
identities:
  operators: local
  guests: anonymous
admins: [operators]
grants:
  - identity: guests
    subscribe: ${JSON.stringify(guestSubscribe)}
`;

test(
  "a reload that withdraws a subscriber's grant ends its running subscription and refuses it again; the grant back lets data flow again",
  { timeout: 120000 },
  async (t) => {
    const w = await world(t, "myelin-policy-");
    w.env["MYELIN_INSECURE"] = "1";
    const file = join(w.dir, "policy.yaml");
    writeFileSync(file, subscribePolicy(["/**"]));
    const hub = await startCliHub(t, w, ["--listen", "tcp://127.0.0.1:0", "--insecure", "--policy", file]);
    const tcp = /listening on (tcp:\/\/\S+)/.exec(await hub.waitFor(/listening on tcp:/))![1]!;
    // The publisher (this process, `local`: an admin) serves plain tcp, so the subscriber's link
    // to it is anonymous: a guest's.
    await using pubNode = await createNode({
      name: "wthf_pub",
      runtimeDir: w.dir,
      dataEndpoint: "tcp://127.0.0.1:0",
      insecure: true,
    });
    const pub = await pubNode.createPublisher("/wthf/data", std_msgs.String);
    let phase = "before";
    let n = 0;
    const ticker = setInterval(() => void pub.publish({ data: `${phase}-${n++}` }).catch(() => {}), 30);
    t.after(() => clearInterval(ticker));
    // The subscriber: another process, a guest of the hub (anonymous over tcp).
    await using sub = spawnFixture(
      "node-proc",
      { role: "sub", name: "wthf_sub", topic: "/wthf/data", type: "string", printEach: true },
      { MYELIN_HUB: tcp, MYELIN_INSECURE: "1", MYELIN_RUNTIME_DIR: w.dir, MYELIN_HOST: "" },
    );
    const got = (prefix: string): number =>
      sub.lines.filter((l) => l.event === "msg" && String(l["data"]).startsWith(prefix)).length;
    await until(() => got("before-") >= 5, 20000, "the subscriber receiving data");
    assert.equal(pub.subscriberCount, 1);

    // The grant goes: the running subscription ends, with the error naming the policy, logged by
    // the subscriber's node.
    writeFileSync(file, subscribePolicy(["/other/**"]));
    const off = await runCli(t, w, ["policy", "reload"], 20000);
    assert.equal(off.code, 0, off.stderr);
    const ended =
      /subscription to \/wthf\/data refused: node wthf_pub ended the subscription to \/wthf\/data: identity 'anonymous' has no 'subscribe' grant matching \/wthf\/data \(.*policy\.yaml; its subscribe patterns: \/other\/\*\*\)/;
    await until(() => sub.stderr.some((l) => ended.test(l)), 15000, "the subscriber's node logging the end");
    await until(() => pub.subscriberCount === 0, 15000, "the publisher dropping the subscriber");
    phase = "gap";
    // Asking again (its node subscribes anew when the publisher's record changes) is refused.
    const refusedBefore = pub.stats().subscribersRefused;
    await pubNode.createPublisher("/wthf/nudge", std_msgs.String);
    await until(
      () => pub.stats().subscribersRefused > refusedBefore,
      15000,
      "the publisher refusing the subscription asked again",
    );
    await until(
      () =>
        sub.stderr.some((l) =>
          /node wthf_pub refused the subscription: identity 'anonymous' has no 'subscribe' grant/.test(l),
        ),
      15000,
      "the subscriber's node logging the refusal of its new subscription",
    );
    assert.equal(pub.subscriberCount, 0);

    // The grant comes back: data flows again, and nothing published meanwhile ever arrived.
    phase = "after";
    writeFileSync(file, subscribePolicy(["/**"]));
    const on = await runCli(t, w, ["policy", "reload"], 20000);
    assert.equal(on.code, 0, on.stderr);
    await until(() => got("after-") >= 5, 20000, "data flowing again after the grant came back");
    assert.equal(got("gap-"), 0, "no message published while the grant was withdrawn arrived");
  },
);

test("a hub without a policy file says there is nothing to reload", { timeout: 30000 }, async (t) => {
  const w = await world(t, "myelin-policy-");
  await startCliHub(t, w);
  const r = await runCli(t, w, ["policy", "reload"], 20000);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /started without a policy file.*--policy FILE/);
});

test(
  "a flood of refused messages is counted exactly and logged as one line and a summary per peer and kind",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    const log: string[] = [];
    await using hub = await Hub.start({
      insecure: true,
      runtimeDir: rt.dir,
      listen: ["tcp://127.0.0.1:0"],
      refusalLogWindowMs: 1000,
      log: (l) => log.push(l),
    });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    await using victim = await createNode({ name: "victim", runtimeDir: rt.dir });
    const conn = zmqTransport.connect(tcp, { maxMessageBytes: 1 << 20 });
    try {
      const N = 500;
      for (let i = 0; i < N; i++) conn.send([encodeControl({ v: 1, t: "bye", id: victim.id })]);
      for (let i = 0; i < N; i++) conn.send([Buffer.from([0xc1, i & 0xff])]); // not msgpack
      await until(
        () => hub.refusalCounts().ownership === N && hub.refusalCounts().malformed === N,
        20000,
        `${N} refused byes and ${N} malformed messages counted`,
      );
      // Every refusal is either a line or counted in a summary; on a loaded machine the flood may
      // span more than one window, so a few lines per kind, never hundreds.
      const written = (re: RegExp): number => log.filter((l) => re.test(l)).length;
      const summarized = (re: RegExp): number =>
        log
          .filter((l) => /^suppressed \d+ similar refusals? from anonymous connection/.test(l) && re.test(l))
          .reduce((n, l) => n + Number(/^suppressed (\d+)/.exec(l)![1]), 0);
      const bye = /refused bye for/;
      const bad = /dropped a malformed control message/;
      await until(
        () =>
          written(new RegExp(`^${bye.source}`)) + summarized(bye) === N &&
          written(new RegExp(`^${bad.source}`)) + summarized(bad) === N,
        15000,
        "every refusal written or summarized",
      );
      assert.ok(written(new RegExp(`^${bye.source}`)) <= 5, log.join("\n"));
      assert.ok(written(new RegExp(`^${bad.source}`)) <= 5, log.join("\n"));
      assert.equal(hub.refusalCounts().logLinesSuppressed, summarized(bye) + summarized(bad));
      assert.ok(log.length < 30, `${log.length} log lines for ${2 * N} refusals`);
      // The victim is untouched, and `site status` shows the counts.
      assert.ok(hub.graph().nodes.some((n) => n.id === victim.id));
      const s = JSON.parse(await victim.querySiteStatus(5000)) as {
        refusals: { ownership: number; malformed: number };
      };
      assert.equal(s.refusals.ownership, N);
      assert.equal(s.refusals.malformed, N);
    } finally {
      await conn.close(0);
    }
  },
);
