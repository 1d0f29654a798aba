import { test } from "node:test";
import assert from "node:assert/strict";
import { MyelinError } from "../errors.js";
import { parseBridgeConfig, redactUrl } from "./bridge-config.js";
import { backoffDelay } from "./bridge.js";

function badConfig(text: string, where: RegExp): void {
  assert.throws(
    () => parseBridgeConfig(text, "bridges.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof MyelinError, String(e));
      assert.equal(e.code, "ERR_BAD_CONFIG");
      assert.match(e.message, where);
      return true;
    },
  );
}

const mapping = "    mapping: [{ myelin: /a/+, external: a.*, type: std_msgs/String }]\n";

test("bridge config: a valid file of each kind, with defaults filled per kind", () => {
  const cfgs = parseBridgeConfig(
    `bridges:
  - name: plant
    kind: mqtt
    url: mqtt://broker:1883
    protocolVersion: 5
    mapping: [{ myelin: /plant/+/temp, external: plant/+/temp, type: std_msgs/Float64, direction: in }]
    queue: { maxMessages: 1000, whenFull: reject }
  - name: cloud
    kind: nats
    url: nats://nats:4222
    jetstream: { stream: SITE, create: true }
${mapping}  - name: core
    kind: nats
    url: nats://nats:4222
${mapping}  - name: rabbit
    kind: amqp
    url: amqp://guest:guest@rabbit:5672
    exchange: plant
${mapping}`,
    "bridges.yaml",
  );
  assert.deepEqual(
    cfgs.map((c) => [c.name, c.kind]),
    [
      ["plant", "mqtt"],
      ["cloud", "nats"],
      ["core", "nats"],
      ["rabbit", "amqp"],
    ],
  );
  // NATS: JetStream (qos 1) by default with a stream, core NATS (qos 0) without.
  assert.equal(cfgs[1]!.mapping[0]!.qos, 1);
  assert.equal(cfgs[2]!.mapping[0]!.qos, 0);
  assert.equal(cfgs[0]!.queue?.whenFull, "reject");
});

test("bridge config: errors name the file, the entry and the field, and what is accepted", () => {
  badConfig("bridges: []", /bridges\.yaml: bridges: must be a non-empty list/);
  badConfig(
    "bridges:\n  - { name: x, url: mqtt://h, mapping: [] }",
    /bridges\[0\]\.kind: is required: mqtt, nats, amqp or kafka/,
  );
  badConfig(
    "bridges:\n  - { name: x, kind: pulsar, url: h }",
    /bridges\[0\]\.kind: must be one of mqtt, nats, amqp, kafka/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: mqtt\n    url: http://h\n${mapping.replace("a.*", "a/+")}`,
    /bridges\[0\]\.url: "http:\/\/h" is not a mqtt URL, e.g. mqtt:\/\/host:1883/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: mqtt\n    url: mqtt://h\n    clientid: y\n${mapping}`,
    /bridges\[0\]\.clientid: unknown setting; accepted here: .*clientId/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: nats\n    url: nats://h\n    mapping: [{ myelin: /a, external: a, type: std_msgs/String, qos: 1 }]\n`,
    /bridges\[0\]\.mapping\[0\]\.qos: qos 1 rides JetStream and needs a `jetstream: \{ stream: NAME \}`/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: amqp\n    url: amqp://h\n    mapping: [{ myelin: /a/+, external: a.#, type: std_msgs/String }]\n`,
    /bridges\.yaml: bridges\[0\]\.mapping\[0\]\.external: /,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: amqp\n    url: amqp://h\n    mapping: [{ myelin: /a, external: a, type: nope/Nope }]\n`,
    /bridges\[0\]\.mapping\[0\]\.type: message type nope\/Nope is not registered/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: mqtt\n    url: mqtt://h\n    queue: { maxBytes: -1 }\n${mapping}`,
    /bridges\[0\]\.queue\.maxBytes: must be an integer from 1/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: mqtt\n    url: mqtt://h\n    mapping: [{ myelin: /a, external: a, type: std_msgs/String }]\n  - name: x\n    kind: mqtt\n    url: mqtt://h\n    mapping: [{ myelin: /a, external: a, type: std_msgs/String }]\n`,
    /bridges\[1\]\.name: "x" is used by another bridge/,
  );
  const natsRule = "    mapping: [{ myelin: /a, external: a, type: std_msgs/String }]\n";
  badConfig(
    `bridges:\n  - name: x\n    kind: nats\n    url: nats://h\n    user: u\n    credsFile: /x.creds\n${natsRule}`,
    /bridges\[0\]\.credsFile: give one way to log in: user\/pass, token, credsFile or nkeySeedFile/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: nats\n    url: nats://h\n    pass: p\n${natsRule}`,
    /bridges\[0\]\.user: a password needs a user/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: nats\n    url: nats://h\n    tls: { certFile: /c.pem }\n${natsRule}`,
    /bridges\[0\]\.tls: a client certificate needs both certFile and keyFile/,
  );
  badConfig(
    `bridges:\n  - name: x\n    kind: nats\n    url: nats://h\n    tls: { ca: /c.pem }\n${natsRule}`,
    /bridges\[0\]\.tls\.ca: unknown setting; accepted here: caFile, certFile, keyFile/,
  );
  badConfig("bridges: [ { name: x", /bridges\.yaml: not valid YAML/);
});

test("bridge backoff grows, is capped, and has jitter", () => {
  const p = { initialMs: 100, maxMs: 1000, factor: 2 };
  assert.equal(
    backoffDelay(1, p, () => 0.5),
    100,
  );
  assert.equal(
    backoffDelay(3, p, () => 0.5),
    400,
  );
  assert.equal(
    backoffDelay(10, p, () => 0.5),
    1000,
  );
  assert.equal(
    backoffDelay(10, p, () => 1),
    1200,
  );
  assert.equal(
    backoffDelay(1, p, () => 0),
    80,
  );
});

test("bridge URLs are shown without their password", () => {
  assert.equal(redactUrl("amqp://guest:secret@host:5672/vh"), "amqp://guest:***@host:5672/vh");
  assert.equal(redactUrl("mqtt://host:1883"), "mqtt://host:1883");
});
