import { test } from "node:test";
import assert from "node:assert/strict";
import { MyelinError } from "../errors.js";
import "../msgs/index.js";
import { decodeExternal, encodeExternal, TopicMap, type MappingSpec } from "./mapping.js";

function throwsConfig(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MyelinError);
    assert.equal(e.code, "ERR_BAD_CONFIG");
    assert.match(e.message, re);
    return true;
  });
}

test("mqtt: wildcards map both ways, in order, with a site prefix", () => {
  const map = new TopicMap(
    [
      { myelin: "/sensors/+/temperature", external: "sensors/+/temp", type: "sensor_msgs/Temperature" },
      { myelin: "/fleet/+/logs/#", external: "devices/+/log/#", type: "std_msgs/String", direction: "in" },
      { myelin: "/cmd/+", external: "cmd/+", type: "std_msgs/String", direction: "out", qos: 2 },
    ],
    { syntax: "mqtt", sitePrefix: "site-a" },
  );
  assert.deepEqual(map.inbound("site-a/sensors/k1/temp")?.myelinTopic, "/sensors/k1/temperature");
  assert.equal(map.inbound("sensors/k1/temp"), undefined, "without the prefix nothing maps");
  assert.equal(map.inbound("site-a/devices/d7/log/a/b")?.myelinTopic, "/fleet/d7/logs/a/b");
  assert.equal(map.inbound("site-a/devices/d7/log")?.myelinTopic, "/fleet/d7/logs", "# matches zero levels");
  assert.equal(map.inbound("site-a/cmd/x"), undefined, "out rules do not map inbound");
  assert.equal(map.outbound("/sensors/k1/temperature")?.externalTopic, "site-a/sensors/k1/temp");
  assert.equal(map.outbound("/cmd/arm")?.externalTopic, "site-a/cmd/arm");
  assert.equal(map.outbound("/cmd/arm")?.rule.qos, 2);
  assert.equal(map.outbound("/fleet/d7/logs/a"), undefined, "in rules do not map outbound");
  assert.equal(map.outbound("/other"), undefined);
  assert.deepEqual(map.externalSubscriptions(), [
    { pattern: "site-a/sensors/+/temp", qos: 1 },
    { pattern: "site-a/devices/+/log/#", qos: 1 },
  ]);
  assert.equal(map.rules[1]!.index, 1);
  assert.equal(map.rules[0]!.format, "json");
  assert.equal(map.rules[0]!.direction, "both");
});

test("first matching rule wins; bad captured levels say why", () => {
  const map = new TopicMap(
    [
      { myelin: "/a/special", external: "a/x", type: "std_msgs/String" },
      { myelin: "/a/+", external: "a/+", type: "std_msgs/String" },
    ],
    { syntax: "mqtt" },
  );
  assert.equal(map.inbound("a/x")?.myelinTopic, "/a/special");
  assert.equal(map.inbound("a/y")?.rule.index, 1);
  const m = map.matchInbound("a/has space");
  assert.equal(m.ok, false);
  assert.ok(!m.ok && /not a valid Myelin level/.test(m.reason) && m.rule?.index === 1);
  assert.equal(map.matchInbound("b/c").ok, false);
  assert.equal(map.inbound("a/"), undefined, "an empty level is not a Myelin level");
});

test("$-topics are not matched by a leading wildcard", () => {
  const map = new TopicMap([{ myelin: "/all/#", external: "#", type: "std_msgs/String" }], {
    syntax: "mqtt",
  });
  assert.equal(map.inbound("x/y")?.myelinTopic, "/all/x/y");
  assert.equal(map.inbound("$SYS/broker"), undefined);
});

test("nats and amqp syntaxes: separators and wildcards", () => {
  const nats = new TopicMap(
    [{ myelin: "/sensors/+/data/#", external: "sensors.*.data.>", type: "std_msgs/String" }],
    { syntax: "nats", sitePrefix: "plant1" },
  );
  assert.equal(nats.inbound("plant1.sensors.s1.data.x.y")?.myelinTopic, "/sensors/s1/data/x/y");
  assert.equal(nats.outbound("/sensors/s1/data/x/y")?.externalTopic, "plant1.sensors.s1.data.x.y");
  assert.equal(nats.outbound("/sensors/s.1/data/x"), undefined, "a '.' in a level cannot go to NATS");
  assert.deepEqual(nats.externalSubscriptions(), [{ pattern: "plant1.sensors.*.data.>", qos: 1 }]);
  const amqp = new TopicMap([{ myelin: "/q/+/#", external: "q.*.#", type: "std_msgs/String" }], {
    syntax: "amqp",
  });
  assert.equal(amqp.inbound("q.a.b.c")?.myelinTopic, "/q/a/b/c");
  assert.equal(amqp.outbound("/q/a/b")?.externalTopic, "q.a.b");
});

test("bad rules are refused naming the entry and field", () => {
  const ok: MappingSpec = { myelin: "/a/+", external: "a/+", type: "std_msgs/String" };
  throwsConfig(
    () => new TopicMap([ok, { ...ok, external: "a/#" }], { syntax: "mqtt" }),
    /^mapping\[1\]\.external: .*same wildcards/,
  );
  throwsConfig(() => new TopicMap([{ ...ok, myelin: "a/+" }], { syntax: "mqtt" }), /^mapping\[0\]\.myelin: /);
  throwsConfig(
    () => new TopicMap([{ ...ok, myelin: "/a/#/b", external: "a/#/b" }], { syntax: "mqtt" }),
    /mapping\[0\]\.myelin: '#' must be the last/,
  );
  throwsConfig(
    () => new TopicMap([{ ...ok, external: "a/x+" }], { syntax: "mqtt" }),
    /mapping\[0\]\.external: .*wildcard/,
  );
  throwsConfig(
    () => new TopicMap([{ ...ok, type: "nope/Nothing" }], { syntax: "mqtt" }),
    /mapping\[0\]\.type: .*not registered/,
  );
  throwsConfig(
    () => new TopicMap([{ ...ok, format: "raw" }], { syntax: "mqtt" }),
    /mapping\[0\]\.type: format raw needs/,
  );
  throwsConfig(() => new TopicMap([{ ...ok, qos: 3 as 1 }], { syntax: "mqtt" }), /mapping\[0\]\.qos/);
  throwsConfig(
    () => new TopicMap([{ ...ok, direction: "up" as "in" }], { syntax: "mqtt" }),
    /mapping\[0\]\.direction/,
  );
  throwsConfig(
    () => new TopicMap([{ ...ok, external: "a.+" }], { syntax: "nats" }),
    /mapping\[0\]\.external/,
  );
  throwsConfig(() => new TopicMap([ok], { syntax: "mqtt", sitePrefix: "a/+" }), /sitePrefix/);
  throwsConfig(() => new TopicMap([ok], { syntax: "pulsar" as "mqtt" }), /syntax/);
});

test("decodeExternal validates JSON against the type and never throws; encodeExternal round-trips", () => {
  const map = new TopicMap(
    [
      { myelin: "/t/+", external: "t/+", type: "sensor_msgs/Temperature" },
      { myelin: "/raw/+", external: "raw/+", type: "myelin_msgs/RawPayload", format: "raw" },
    ],
    { syntax: "mqtt" },
  );
  const rule = map.rules[0]!;
  const enc = new TextEncoder();
  const good = decodeExternal(rule, enc.encode(JSON.stringify({ temperature: 21.5, variance: 0.1 })));
  assert.ok(good.ok);
  const msg = good.message as { temperature: number; header: { frame_id: string } };
  assert.equal(msg.temperature, 21.5);
  assert.equal(msg.header.frame_id, "", "missing fields get defaults");
  const back = JSON.parse(new TextDecoder().decode(encodeExternal(rule, msg))) as { temperature: number };
  assert.equal(back.temperature, 21.5);

  const wrong = decodeExternal(rule, enc.encode(JSON.stringify({ temperature: "hot" })));
  assert.ok(!wrong.ok && /temperature/.test(wrong.reason), JSON.stringify(wrong));
  const notJson = decodeExternal(rule, enc.encode("{temperature: 1"));
  assert.ok(!notJson.ok && /not valid JSON/.test(notJson.reason));
  const notUtf8 = decodeExternal(rule, new Uint8Array([0xff, 0xfe]));
  assert.ok(!notUtf8.ok && /UTF-8/.test(notUtf8.reason));
  const notObject = decodeExternal(rule, enc.encode("42"));
  assert.ok(!notObject.ok && /JSON object/.test(notObject.reason));
  const extra = decodeExternal(rule, enc.encode(JSON.stringify({ temperature: 1, bogus: 2 })));
  assert.ok(!extra.ok && /bogus/.test(extra.reason), JSON.stringify(extra));

  const raw = map.rules[1]!;
  const bytes = new Uint8Array([0, 1, 2, 255]);
  const r = decodeExternal(raw, bytes);
  assert.ok(r.ok);
  assert.deepEqual(encodeExternal(raw, r.message), bytes);
});

test('decodeExternal: the {"data":"<base64>"} shortcut gives what JSON.parse and fromJson give', async () => {
  const fc = (await import("fast-check")).default;
  const { fromJson } = await import("../codec/json.js");
  const map = new TopicMap(
    [
      { myelin: "/raw/+", external: "raw/+", type: "myelin_msgs/RawPayload" },
      { myelin: "/text/+", external: "text/+", type: "std_msgs/String" },
    ],
    { syntax: "mqtt" },
  );
  const strict = new TextDecoder("utf-8", { fatal: true });
  /** The general path alone, as decodeExternal took it before the shortcut. */
  const general = (rule: (typeof map.rules)[number], payload: Buffer): unknown => {
    try {
      return { ok: true, message: fromJson(rule.messageType, JSON.parse(strict.decode(payload))) };
    } catch {
      return { ok: false };
    }
  };
  // Strings made of base64 characters and the ones that must not take the shortcut.
  const piece = fc.constantFrom(
    "QUJD",
    "AA==",
    "A",
    "=",
    "+/",
    '"',
    "\\",
    "\\u0041",
    "\n",
    "\u0001",
    "é",
    " ",
    "}",
    "{",
  );
  const inner = fc.array(piece, { maxLength: 8 }).map((p) => p.join(""));
  const shape = fc.tuple(
    fc.constantFrom('{"data":"', '{ "data":"', '{"data": "', '{"dat":"', '{"data":"'),
    inner,
    fc.constantFrom('"}', '" }', '"}\n', '"', '"}'),
  );
  fc.assert(
    fc.property(shape, fc.boolean(), ([open, body, close], text) => {
      const rule = map.rules[text ? 1 : 0]!;
      const payload = Buffer.from(open + body + close);
      const got = decodeExternal(rule, payload);
      const want = general(rule, payload) as { ok: boolean; message?: unknown };
      assert.equal(got.ok, want.ok, `${payload.toString()} → ${JSON.stringify(got)}`);
      if (got.ok) assert.deepEqual(got.message, want.message);
    }),
    { numRuns: 5000, seed: 15 },
  );
  // A large payload, as the MQTT bench sends: the same bytes back.
  const data = Buffer.alloc(1 << 20, 7);
  const big = decodeExternal(map.rules[0]!, Buffer.from(`{"data":"${data.toString("base64")}"}`));
  assert.ok(big.ok);
  assert.ok(Buffer.from((big.message as { data: Uint8Array }).data).equals(data));
  // Decoded into the buffer `alloc` gives (the gateway lends shared memory); a bad character in a
  // later 64 KiB chunk leaves that buffer unused and gives the general path's refusal.
  const lent: Uint8Array[] = [];
  const alloc = (n: number): Uint8Array => lent[lent.push(new Uint8Array(n)) - 1]!;
  const text = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) & 0xff)).toString("base64");
  const good = decodeExternal(map.rules[0]!, Buffer.from(`{"data":"${text}"}`), alloc);
  assert.ok(good.ok);
  assert.equal((good.message as { data: Uint8Array }).data, lent[0]);
  assert.ok(Buffer.from(lent[0]!).equals(Buffer.from(text, "base64")));
  const bad = Buffer.from(`{"data":"${text.slice(0, 200_001)}*${text.slice(200_002)}"}`);
  const refused = decodeExternal(map.rules[0]!, bad, alloc);
  assert.equal(lent.length, 2);
  assert.ok(
    !refused.ok &&
      /data: expected bytes as a base64 string, got a string that is not base64/.test(refused.reason),
  );
});
