/** The uplink configuration: defaults, both roles, and a clear ERR_BAD_CONFIG for each mistake. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseUplinkConfig, parseUplinkConfigText, UPLINK_DEFAULTS, volatileRules } from "./uplink-config.js";
import {
  commandSubject,
  siteSubject,
  splitToSiteTopic,
  tokensToTopic,
  topicOfSubject,
  topicToTokens,
} from "./uplink-subjects.js";

const nats = { servers: ["nats://cloud:4222"] };

test("a site with defaults; a cloud with its sites", () => {
  const s = parseUplinkConfig({ site: "cell-7", nats, export: { durable: ["/robot/**"] } });
  assert.equal(s.role, "site");
  assert.equal(s.stream.duplicateWindowMs, UPLINK_DEFAULTS.duplicateWindowMs);
  assert.equal(s.catchUp.maxInFlight, UPLINK_DEFAULTS.maxInFlight);
  const c = parseUplinkConfigText(
    "role: cloud\nsite: hq\nnats: {servers: nats://a:4222}\nsites: [a, b]\n",
    "up.yaml",
  );
  assert.deepEqual(c.sites, ["a", "b"]);
  assert.deepEqual(c.nats.servers, ["nats://a:4222"]);
});

test("mistakes are ERR_BAD_CONFIG naming the file, the field and the fix", () => {
  const cases: [unknown, RegExp][] = [
    [{ nats, export: { durable: ["/a"] } }, /site: missing/],
    [{ site: "a.b", nats, export: { durable: ["/a"] } }, /site: .* is not a site name/],
    [{ site: "a", export: { durable: ["/a"] } }, /nats: missing/],
    [{ site: "a", nats: { servers: [] }, export: { durable: ["/a"] } }, /nats.servers: give at least one/],
    [{ site: "a", nats: { servers: ["http://x y"] }, export: { durable: ["/a"] } }, /is not a NATS URL/],
    [{ site: "a", nats: { ...nats, pass: "p" }, export: { durable: ["/a"] } }, /a password needs a user/],
    [
      { site: "a", nats: { ...nats, user: "u", token: "t" }, export: { durable: ["/a"] } },
      /one way to log in/,
    ],
    [
      { site: "a", nats: { ...nats, tls: { certFile: "c" } }, export: { durable: ["/a"] } },
      /certFile and keyFile/,
    ],
    [
      { site: "a", nats, export: { durable: ["robot"] } },
      /export.durable\[0\]: .* is not a durable-topic pattern/,
    ],
    [{ site: "a", nats, export: { durable: ["/_store/x"] } }, /hidden topics/],
    [{ site: "a", nats }, /exports or imports something/],
    [{ site: "a", nats, export: { durable: ["/a"] }, stream: { replicas: 2 } }, /use 1, 3 or 5/],
    [{ site: "a", nats, export: { durable: ["/a"] }, catchUp: { maxInFlight: 0 } }, /catchUp.maxInFlight/],
    [{ site: "a", nats, export: { durable: ["/a"] }, colour: 1 }, /colour: unknown setting/],
    [{ site: "a", nats, export: { durable: ["/a"] }, sites: ["b"] }, /only a cloud/],
    [{ role: "cloud", site: "a", nats }, /sites: a cloud lists/],
    [{ role: "cloud", site: "a", nats, sites: ["b", "b"] }, /b is listed twice/],
    [{ role: "edge", site: "a", nats }, /role: .* is not site or cloud/],
    [[1, 2], /is not a mapping/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(
      () => parseUplinkConfig(raw, "up.yaml"),
      (e: Error & { code?: string }) =>
        e.code === "ERR_BAD_CONFIG" && /^up.yaml: /.test(e.message) && re.test(e.message),
      `${JSON.stringify(raw)} should fail with ${re}`,
    );
  }
  assert.throws(() => parseUplinkConfigText("site: [", "up.yaml"), /up.yaml: not valid YAML/);
});

test("topics map to subjects and back, '.' inside a level included; two sites never share a subject", () => {
  for (const t of ["/a/b", "/robot/arm.left/pose", "/x~y/z-1", "/p%q"])
    assert.equal(tokensToTopic(topicToTokens(t)), t);
  assert.equal(siteSubject("s1", "/robot/arm.left"), "sites.s1.robot.arm%2Eleft");
  assert.notEqual(siteSubject("a", "/t"), siteSubject("b", "/t"));
  assert.equal(topicOfSubject("sites", "s1", "sites.s1.robot.arm%2Eleft"), "/robot/arm.left");
  assert.equal(topicOfSubject("sites", "s1", "sites.s2.robot"), undefined);
  assert.equal(commandSubject("s1", "/commands/go"), "cmd.s1.commands.go");
  assert.deepEqual(splitToSiteTopic("/to_site/s1/commands/go"), { site: "s1", topic: "/commands/go" });
  assert.equal(splitToSiteTopic("/to_site/s1"), undefined);
  const [r] = volatileRules(
    parseUplinkConfig({
      site: "a",
      nats,
      export: { volatile: [{ topic: "/t/+/x", type: "std_msgs/String" }] },
    }),
  );
  assert.equal(r?.external, "t.*.x");
});
