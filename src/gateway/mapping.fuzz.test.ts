/**
 * Property tests of the MQTT/NATS/AMQP ⇄ Myelin mapping (docs/fuzzing.md): topics map there and
 * back; rules that are not valid are ERR_BAD_CONFIG; external payloads decode to a valid message or
 * a reason, never an exception, and encoded messages decode back to themselves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, configValue, messageArb, parseOrCoded } from "../../test/fuzz-helpers.js";
import {
  levelArb,
  MAPPED_TYPES,
  ruleArb,
  shapeArb,
  myelinPattern,
  externalPattern,
} from "../../test/fuzz-mapping.js";
import { fromJson } from "../codec/json.js";
import { lookupType } from "../msgs/index.js";
import {
  decodeExternal,
  encodeExternal,
  TopicMap,
  type ExternalSyntax,
  type MappingSpec,
} from "./mapping.js";

const SYNTAXES: ExternalSyntax[] = ["mqtt", "nats", "amqp"];
const SEP: Record<ExternalSyntax, string> = { mqtt: "/", nats: ".", amqp: ".", kafka: "." };
const prefixArb = fc.option(fc.array(levelArb, { minLength: 1, maxLength: 2 }), { nil: undefined });

test("fuzz: a topic maps out and back in to itself", () => {
  check(
    "topic round trip",
    800,
    [
      fc.constantFrom(...SYNTAXES),
      shapeArb,
      prefixArb,
      fc.array(levelArb, { minLength: 5, maxLength: 5 }),
      fc.array(levelArb, { minLength: 1, maxLength: 3 }),
    ],
    (syntax, shape, prefix, fills, tail) => {
      const sitePrefix = prefix?.join(SEP[syntax]);
      const rule: MappingSpec = {
        myelin: myelinPattern(shape),
        external: externalPattern(shape, syntax),
        type: "std_msgs/String",
      };
      const map = new TopicMap([rule], sitePrefix === undefined ? { syntax } : { syntax, sitePrefix });
      let k = 0;
      const levels = shape.levels.map((l) => (l === "+" ? fills[k++]! : l));
      if (shape.rest) levels.push(...tail);
      const topic = "/" + levels.join("/");
      const out = map.outbound(topic);
      assert.ok(out !== undefined, `${topic} does not map out by ${JSON.stringify(rule)}`);
      const back = map.matchInbound(out.externalTopic);
      assert.ok(back.ok, `${out.externalTopic} does not map back: ${back.ok ? "" : back.reason}`);
      assert.equal(back.myelinTopic, topic);
    },
  );
});

test("fuzz: arbitrary rules and topics: ERR_BAD_CONFIG or a working map", () => {
  const KEYS = ["myelin", "external", "type", "format", "direction", "qos"];
  const specs = fc.oneof(
    fc.array(
      fc.oneof({ weight: 3, arbitrary: ruleArb("mqtt") }, { weight: 2, arbitrary: configValue(KEYS, 2) }),
      { maxLength: 4 },
    ),
    configValue(KEYS, 3),
  );
  const topic = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc
      .array(fc.oneof(levelArb, fc.constantFrom("", "+", "#", "*", ">", "$SYS", "a.b", "\u0000")), {
        maxLength: 5,
      })
      .map((ls) => ls.join("/")),
  );
  check(
    "arbitrary mapping rules",
    1500,
    [
      fc.constantFrom(...SYNTAXES, "xml"),
      specs,
      fc.option(fc.oneof(fc.string({ maxLength: 8 }), configValue([], 0))),
      fc.array(topic, { maxLength: 4 }),
    ],
    (syntax, raw, sitePrefix, topics) => {
      const opts = { syntax, ...(sitePrefix === null ? {} : { sitePrefix }) } as never;
      const r = parseOrCoded(
        "new TopicMap",
        ["ERR_BAD_CONFIG"],
        raw,
        () => new TopicMap(raw as MappingSpec[], opts),
      );
      if (!r.ok) return;
      for (const t of topics) {
        for (const x of [t, "/" + t]) {
          parseOrCoded("TopicMap.inbound", [], x, () => r.value.matchInbound(x));
          parseOrCoded("TopicMap.outbound", [], x, () => r.value.outbound(x));
        }
      }
      parseOrCoded("externalSubscriptions", [], raw, () => r.value.externalSubscriptions());
    },
  );
});

const rules = (): ReturnType<TopicMap["rules"]["slice"]> =>
  new TopicMap(
    [
      ...MAPPED_TYPES.map((type, i) => ({ myelin: `/t${i}`, external: `t${i}`, type })),
      { myelin: "/raw", external: "raw", type: "myelin_msgs/RawPayload", format: "raw" as const },
    ],
    { syntax: "mqtt" },
  ).rules.slice();

test("fuzz: external payloads decode to a valid message or a reason, never an exception", () => {
  for (const rule of rules()) {
    const type = rule.messageType;
    check(`${rule.type}: message → payload → message`, 200, [messageArb(type)], (m) => {
      const d = decodeExternal(rule, encodeExternal(rule, m));
      assert.ok(d.ok, d.ok ? "" : d.reason);
      assert.deepEqual(d.message, m);
    });
    const keys = [...Object.keys(type.fields), "sec", "nanosec", "x", "y", "z", "frame_id", "stamp"];
    const payload = fc.oneof(
      bytes(64),
      configValue(keys, 4).map((v) => {
        try {
          return new TextEncoder().encode(JSON.stringify(v) ?? "null");
        } catch {
          return new Uint8Array(0); // bigints
        }
      }),
    );
    check(`${rule.type}: arbitrary payloads`, 800, [payload], (p) => {
      const d = parseOrCoded("decodeExternal", [], p, () => decodeExternal(rule, p));
      assert.ok(d.ok);
      if (d.value.ok) assert.ok(type.validate(d.value.message).ok, "decodeExternal gave an invalid message");
      else assert.ok(d.value.reason.length <= 600, "reason not clipped");
      // decodeExternal catches everything: check the JSON path itself only throws ValidationError.
      if (rule.format === "json") {
        let value: unknown;
        try {
          value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(p));
        } catch {
          return;
        }
        parseOrCoded("fromJson", ["ERR_VALIDATION"], value, () => fromJson(type, value));
      }
    });
  }
  assert.ok(lookupType("std_msgs/String") !== undefined);
});

test("fuzz regressions: rule values JSON cannot show are ERR_BAD_CONFIG, not a TypeError", () => {
  // Found by "arbitrary mapping rules" (MYELIN_FUZZ_SEED=1): error messages used JSON.stringify, which
  // throws on a bigint and on a YAML alias to itself (`myelin: &a [*a]`).
  const selfList: unknown[] = [];
  selfList.push(selfList);
  for (const [k, v] of [
    ["myelin", -1085648033183622383001n],
    ["myelin", selfList],
    ["external", selfList],
    ["direction", 5n],
    ["qos", 1n],
    ["format", selfList],
  ] as const) {
    const rule = { myelin: "/a", external: "a", type: "std_msgs/String", [k]: v };
    assert.throws(() => new TopicMap([rule], { syntax: "nats" }), {
      code: "ERR_BAD_CONFIG",
      message: new RegExp(`mapping\\[0\\]\\.${k}`),
    });
  }
  assert.throws(() => new TopicMap([], { syntax: 3n as never }), { code: "ERR_BAD_CONFIG" });
  assert.throws(() => new TopicMap([], { syntax: "mqtt", sitePrefix: selfList as never }), {
    code: "ERR_BAD_CONFIG",
  });
});
