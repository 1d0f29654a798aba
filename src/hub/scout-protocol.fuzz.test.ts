/**
 * Property tests of the scouting datagram (docs/fuzzing.md): every valid announcement round-trips,
 * and any bytes — random, truncated, mutated valid datagrams, near-miss JSON — decode or throw
 * DecodeError ERR_DECODE, never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, parseOrCoded } from "../../test/fuzz-helpers.js";
import { generateCurveKeyPair } from "../transport/curve-key.js";
import {
  decodeAnnouncement,
  encodeAnnouncement,
  MAX_ANNOUNCEMENT_BYTES,
  type Announcement,
} from "./scout-protocol.js";

const KEY = generateCurveKeyPair().publicKey;
const name = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/);
const announcement: fc.Arbitrary<Announcement> = fc.record(
  {
    kind: fc.constantFrom("announce" as const, "leave" as const),
    site: name,
    host: name,
    hub: fc.uuid(),
    endpoint: fc
      .tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 }))
      .map(([ip, port]) => `tcp://${ip}:${port}`),
    key: fc.constantFrom(KEY, ""),
    intervalMs: fc.integer({ min: 100, max: 600_000 }),
  },
  { noNullPrototype: true },
);

const decodeOrCoded = (b: Uint8Array): void => {
  parseOrCoded("decodeAnnouncement", ["ERR_DECODE"], b, () => decodeAnnouncement(b));
};

test("announcements round-trip and fit in a datagram", () => {
  check("round trip", 500, [announcement], (a) => {
    const b = encodeAnnouncement(a);
    assert.ok(b.length <= MAX_ANNOUNCEMENT_BYTES);
    assert.deepEqual(decodeAnnouncement(b), a);
  });
});

test("random bytes, truncations and mutations of valid datagrams decode or throw ERR_DECODE", () => {
  check("random bytes", 2000, [bytes(700)], decodeOrCoded);
  check(
    "mutated",
    2000,
    [
      announcement,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.nat(),
    ],
    (a, flips, cut) => {
      const b = Buffer.from(encodeAnnouncement(a));
      for (const [i, v] of flips) b[i % b.length] = v;
      decodeOrCoded(b);
      decodeOrCoded(b.subarray(0, cut % (b.length + 1)));
    },
  );
});

test("near-miss bodies (right header, JSON of any shape) decode or throw ERR_DECODE", () => {
  const keys = fc.constantFrom("site", "host", "hub", "endpoint", "key", "intervalMs", "x");
  check(
    "near-miss JSON",
    2000,
    [
      fc.oneof(
        fc.dictionary(keys, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 7 }),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    ],
    (v) => {
      const body = Buffer.from(JSON.stringify(v) ?? "null", "utf8");
      decodeOrCoded(Buffer.concat([Buffer.from("MYSC\x01A", "latin1"), body]));
    },
  );
});

test("what is wrong is named: size, magic, version, field", () => {
  const good = encodeAnnouncement({
    kind: "announce",
    site: "plant-1",
    host: "edge-2",
    hub: "3b1f0c2e-9f7a-4c1e-8d2a-1b2c3d4e5f60",
    endpoint: "tcp://10.0.0.2:7447",
    key: KEY,
    intervalMs: 1000,
  });
  assert.throws(() => decodeAnnouncement(Buffer.alloc(513)), /513 bytes, more than 512/);
  assert.throws(() => decodeAnnouncement(Buffer.from("XXXX\x01A{}")), /no MYSC magic/);
  const v2 = Buffer.from(good);
  v2[4] = 2;
  assert.throws(() => decodeAnnouncement(v2), /version 2, this hub reads version 1/);
  const body = (o: Record<string, unknown>): Buffer =>
    Buffer.concat([Buffer.from("MYSC\x01A", "latin1"), Buffer.from(JSON.stringify(o))]);
  const base = JSON.parse(good.subarray(6).toString()) as Record<string, unknown>;
  assert.throws(() => decodeAnnouncement(body({ ...base, key: "short" })), /key must be a 40-character Z85/);
  assert.throws(
    () => decodeAnnouncement(body({ ...base, endpoint: "ipc:///tmp/x" })),
    /endpoint must be tcp:\/\/HOST:PORT/,
  );
  assert.throws(() => decodeAnnouncement(body({ ...base, endpoint: "tcp://h:70000" })), /port 70000/);
  assert.throws(() => decodeAnnouncement(body({ ...base, site: "a b" })), /site must be a site name/);
  assert.throws(() => decodeAnnouncement(body({ ...base, intervalMs: 5 })), /intervalMs must be/);
});
