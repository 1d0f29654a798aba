/**
 * The gateway's own PUBLISH encoder (the coalesced delivery path) against mqtt-packet, the encoder
 * aedes writes with: the same bytes for every topic, payload, QoS and flag, across the sizes where
 * the remaining length takes one to four bytes and where the payload becomes its own chunk.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import mqttPacket from "mqtt-packet";
import { encodePublish, type PublishFields } from "./mqtt-publish-writer.js";

function reference(p: PublishFields): Buffer {
  return mqttPacket.generate({
    cmd: "publish",
    topic: p.topic,
    payload: p.payload,
    qos: p.qos,
    retain: p.retain,
    dup: p.dup,
    ...(p.qos > 0 ? { messageId: p.messageId } : {}),
  });
}

function ours(p: PublishFields): Buffer {
  const e = encodePublish(p);
  assert.ok(e !== undefined);
  return e.payload === undefined ? e.head : Buffer.concat([e.head, e.payload]);
}

const fieldsArb = (payload: fc.Arbitrary<Buffer | string>): fc.Arbitrary<PublishFields> =>
  fc.record({
    topic: fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 })),
    payload,
    qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
    retain: fc.boolean(),
    dup: fc.boolean(),
    messageId: fc.integer({ min: 1, max: 65535 }),
  });

test("encodePublish writes the bytes mqtt-packet writes (small payloads, strings and buffers)", () => {
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    fc.string({ unit: "grapheme", maxLength: 100 }),
  );
  fc.assert(
    fc.property(fieldsArb(payload), (p) => {
      assert.deepEqual(ours(p), reference(p));
    }),
    { numRuns: 3000, seed: 15 },
  );
});

test("encodePublish at the length boundaries, with the payload copied or its own chunk", () => {
  // Remaining lengths around 127/128, 16383/16384 and 2097151/2097152, and payloads around 16 KiB.
  const sizes = [0, 1, 120, 121, 122, 123, 16_370, 16_376, 16_377, 16_378, 16_384, 16_385, 40_000];
  sizes.push(2_097_140, 2_097_144, 2_097_145, 2_097_146, 2_097_152);
  for (const size of sizes) {
    for (const qos of [0, 1, 2] as const) {
      const p: PublishFields = {
        topic: "a/b",
        payload: Buffer.alloc(size, size % 251),
        qos,
        retain: size % 2 === 0,
        dup: qos === 1,
        messageId: 4242,
      };
      const e = encodePublish(p)!;
      assert.equal(e.payload !== undefined, size > 16 * 1024, `payload of ${size} B as its own chunk`);
      assert.ok(ours(p).equals(reference(p)), `payload of ${size} B at QoS ${qos}`);
    }
  }
});

test("encodePublish refuses what MQTT cannot carry", () => {
  const base: PublishFields = {
    topic: "t",
    payload: Buffer.alloc(0),
    qos: 0,
    retain: false,
    dup: false,
    messageId: 0,
  };
  assert.equal(encodePublish({ ...base, topic: "x".repeat(65_536) }), undefined);
  assert.ok(encodePublish({ ...base, topic: "x".repeat(65_535) }) !== undefined);
});
