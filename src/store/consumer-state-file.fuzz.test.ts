/**
 * Property tests of the consumer state file format (docs/fuzzing.md): snapshots round-trip; any
 * bytes, and any JSON body behind a valid header and checksum, decode to a consistent snapshot or
 * throw ERR_STATE_CORRUPT, quickly, whatever counts they claim.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, configValue, parseOrCoded } from "../../test/fuzz-helpers.js";
import type { ConsumerSnapshot } from "./consumer.js";
import {
  CONSUMER_STATE_HEADER_BYTES,
  CONSUMER_STATE_MAGIC,
  CONSUMER_STATE_VERSION,
  MAX_HANDLED_ABOVE_FLOOR,
  decodeConsumerState,
  encodeConsumerState,
} from "./consumer-state-file.js";
import { crc32c } from "./crc32c.js";

/** A state file around `body`, with a correct header and checksum. */
function fileWithBody(body: Uint8Array, version = CONSUMER_STATE_VERSION): Uint8Array {
  const out = new Uint8Array(CONSUMER_STATE_HEADER_BYTES + body.length);
  const dv = new DataView(out.buffer);
  out.set(CONSUMER_STATE_MAGIC, 0);
  dv.setUint16(4, version, true);
  dv.setUint32(8, body.length, true);
  out.set(body, CONSUMER_STATE_HEADER_BYTES);
  dv.setUint32(12, crc32c(body, 0, body.length, crc32c(out, 0, 12)), true);
  return out;
}
const json = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

/** What a decoded snapshot always satisfies (docs/store-consumers.md). */
function consistent(s: ConsumerSnapshot): void {
  assert.ok(Number.isSafeInteger(s.floor) && s.floor >= 0);
  let prev = s.floor;
  for (const h of s.handled) {
    assert.ok(Number.isSafeInteger(h) && h > prev, `handled ${h} after ${prev}`);
    prev = h;
  }
  const handled = new Set(s.handled);
  prev = s.floor;
  for (const [seq, n] of s.outstanding) {
    assert.ok(Number.isSafeInteger(seq) && seq > prev && !handled.has(seq));
    assert.ok(Number.isSafeInteger(n) && n >= 1);
    prev = seq;
  }
}

const decode = (b: Uint8Array): ConsumerSnapshot | undefined => {
  const r = parseOrCoded("decodeConsumerState", ["ERR_STATE_CORRUPT"], b, () => decodeConsumerState(b));
  if (!r.ok) return undefined;
  consistent(r.value);
  return r.value;
};

/** Valid snapshots: a floor, sorted distinct seqs above it split between handled and outstanding. */
const snapshotArb: fc.Arbitrary<ConsumerSnapshot> = fc
  .tuple(
    fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 2 ** 52 })),
    fc.uniqueArray(fc.integer({ min: 1, max: 5000 }), { maxLength: 40 }),
    fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
    fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 40, maxLength: 40 }),
  )
  .map(([floor, offs, isHandled, deliveries]) => {
    const seqs = offs.sort((a, b) => a - b).map((o) => floor + o);
    const handled: number[] = [];
    const outstanding: Array<[number, number]> = [];
    seqs.forEach((s, i) => (isHandled[i] ? handled.push(s) : outstanding.push([s, deliveries[i]!])));
    return { floor, handled, outstanding };
  });

test("fuzz: consumer state snapshots round-trip", () => {
  check("consumer state round trip", 500, [snapshotArb], (s) => {
    assert.deepEqual(decodeConsumerState(encodeConsumerState(s)), s);
  });
});

test("fuzz: any bytes decode consistently or throw ERR_STATE_CORRUPT", () => {
  check("random state bytes", 1500, [bytes(80)], (b) => {
    decode(b);
    // the same bytes as a body behind a valid header: reaches the JSON checks
    decode(fileWithBody(b));
  });
  check("wrong versions", 100, [snapshotArb, fc.integer({ min: 0, max: 0xffff })], (s, v) => {
    const body = encodeConsumerState(s).subarray(CONSUMER_STATE_HEADER_BYTES);
    const got = decode(fileWithBody(body, v));
    assert.equal(got !== undefined, v === CONSUMER_STATE_VERSION);
  });
  // JSON bodies close to the real shape: floor, handled runs and outstanding pairs of anything.
  const num = fc.oneof(
    fc.integer({ min: -3, max: 200 }),
    // (not 2^24 itself: the most allowed, ~130 MB once expanded; checked once below)
    fc.constantFrom(2 ** 53, 2 ** 53 - 1, 1e300, -0, 0.5, 2 ** 24 + 1, 2 ** 32, 100_000),
  );
  const pair = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(num, num) },
    { weight: 1, arbitrary: configValue(["floor"], 2) },
  );
  const body = fc.record(
    {
      floor: fc.oneof(num, configValue([], 1)),
      handled: fc.array(pair, { maxLength: 6 }),
      outstanding: fc.array(pair, { maxLength: 6 }),
      extra: fc.anything({ maxDepth: 1 }),
    },
    { requiredKeys: [], noNullPrototype: true },
  );
  check("JSON bodies", 3000, [body], (v) => {
    let text: string;
    try {
      text = JSON.stringify(v);
    } catch {
      return; // bigints: not JSON
    }
    if (text === undefined) return;
    decode(fileWithBody(new TextEncoder().encode(text)));
  });
});

test("fuzz regressions: runs claiming billions of seqs are refused before anything is expanded", () => {
  // A 45-byte body claiming 20 million handled seqs took 5 s and died with a RangeError (Set
  // maximum size exceeded); 64 runs of 64M each would have asked for 4G numbers.
  // CPU time of this process, not the wall clock: other processes on a loaded machine do not count.
  const cpuMs = (since: NodeJS.CpuUsage): number => {
    const u = process.cpuUsage(since);
    return (u.user + u.system) / 1000;
  };
  const t0 = process.cpuUsage();
  for (const handled of [
    [[1, 20_000_000]],
    [[1, MAX_HANDLED_ABOVE_FLOOR + 1]],
    Array.from({ length: 64 }, (_, i) => [1 + i * 70_000_000, 64 * 1024 * 1024]),
    [
      [1, MAX_HANDLED_ABOVE_FLOOR],
      [MAX_HANDLED_ABOVE_FLOOR + 2, 1],
    ],
  ]) {
    assert.throws(() => decodeConsumerState(fileWithBody(json({ floor: 0, handled, outstanding: [] }))), {
      code: "ERR_STATE_CORRUPT",
      message: /more than a consumer can keep/,
    });
  }
  assert.ok(cpuMs(t0) < 200, `took ${cpuMs(t0)} ms of CPU`);
  // The most a file may hold still decodes (no Set built for it), in well under a second.
  const t1 = process.cpuUsage();
  const most = decodeConsumerState(
    fileWithBody(
      json({
        floor: 0,
        handled: [[2, MAX_HANDLED_ABOVE_FLOOR]],
        outstanding: [
          [1, 1],
          [MAX_HANDLED_ABOVE_FLOOR + 2, 3],
        ],
      }),
    ),
  );
  assert.equal(most.handled.length, MAX_HANDLED_ABOVE_FLOOR);
  assert.ok(cpuMs(t1) < 1500, `2^24 handled seqs took ${cpuMs(t1)} ms of CPU`);
  // the length field of the header claiming 4 GiB
  const f = Uint8Array.from(encodeConsumerState({ floor: 1, handled: [], outstanding: [] }));
  new DataView(f.buffer).setUint32(8, 0xffffffff, true);
  assert.throws(() => decodeConsumerState(f), { code: "ERR_STATE_CORRUPT", message: /header announces/ });
});
