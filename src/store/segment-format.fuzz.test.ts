/**
 * Property tests of the segment reader (docs/fuzzing.md): segments read back in any chunking; a
 * damaged segment yields a prefix of its records then a torn tail, never a record that was not
 * written; any bytes at all give records, a torn tail or DecodeError ERR_DECODE, quickly.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, parseOrCoded } from "../../test/fuzz-helpers.js";
import {
  MAX_RECORD_BODY_BYTES,
  SEGMENT_HEADER_BYTES,
  SegmentReader,
  decodeSegmentHeader,
  encodeRecord,
  encodeSegmentHeader,
  type SegmentRecord,
  type TornTail,
} from "./segment-format.js";

interface Rec {
  ts: number;
  header: Uint8Array;
  payload: Uint8Array;
}
const recArb = fc.record(
  {
    ts: fc.double({ noNaN: true, noDefaultInfinity: true }),
    header: fc.uint8Array({ maxLength: 16 }),
    payload: fc.uint8Array({ maxLength: 64 }),
  },
  { noNullPrototype: true },
);
const baseSeqArb = fc.oneof(
  fc.integer({ min: 1, max: 1000 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER - 100 }),
);

function segment(baseSeq: number, recs: Rec[]): Buffer {
  return Buffer.concat([
    encodeSegmentHeader({ baseSeq, createdAtMs: 1_700_000_000_000 }),
    ...recs.map((r, i) => encodeRecord(baseSeq + i, r.ts, r.header, r.payload)),
  ]);
}

/** Reads all of `bytes` pushed in chunks of the given sizes; DecodeError ERR_DECODE is allowed. */
function readAll(
  bytes: Uint8Array,
  cuts: number[] = [],
  opts?: ConstructorParameters<typeof SegmentReader>[0],
): { records: SegmentRecord[]; end: TornTail | undefined; error: boolean } {
  const records: SegmentRecord[] = [];
  let end: TornTail | undefined;
  const r = parseOrCoded("SegmentReader", ["ERR_DECODE", "ERR_INVALID_ARGUMENT"], bytes, () => {
    const reader = new SegmentReader(opts);
    let at = 0;
    const drain = (): void => {
      for (let guard = 0; guard <= bytes.length + 1; guard++) {
        const x = reader.next();
        if (x === undefined) return;
        if (x.torn) {
          end = x;
          return;
        }
        records.push(x);
      }
      assert.fail("SegmentReader.next() returned more records than there are bytes");
    };
    for (const c of cuts) {
      const n = Math.min(c, bytes.length - at);
      reader.push(bytes.subarray(at, at + n));
      at += n;
      drain();
      if (end !== undefined) return;
    }
    reader.push(bytes.subarray(at));
    reader.end();
    drain();
    assert.ok(end !== undefined, "after end() the reader must report the tail");
    assert.ok(end.validBytes <= (opts?.resume?.offset ?? 0) + bytes.length, "validBytes beyond the input");
    // A torn report is final.
    assert.deepEqual(reader.next(), end);
  });
  // Records follow each other: seq + 1, offsets contiguous.
  for (let i = 1; i < records.length; i++) {
    assert.equal(records[i]!.seq, records[i - 1]!.seq + 1);
    assert.equal(records[i]!.offset, records[i - 1]!.offset + records[i - 1]!.size);
  }
  return { records, end, error: !r.ok };
}

const same = (got: SegmentRecord, want: Rec, seq: number): void => {
  assert.equal(got.seq, seq);
  assert.equal(got.ts, want.ts);
  assert.deepEqual(Uint8Array.from(got.header), Uint8Array.from(want.header));
  assert.deepEqual(Uint8Array.from(got.payload), Uint8Array.from(want.payload));
};

test("fuzz: segments read back whole, in any chunking", () => {
  check(
    "segment round trip",
    300,
    [
      baseSeqArb,
      fc.array(recArb, { maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 10 }),
    ],
    (baseSeq, recs, cuts) => {
      const seg = segment(baseSeq, recs);
      const got = readAll(seg, cuts);
      assert.equal(got.error, false);
      assert.equal(got.records.length, recs.length);
      got.records.forEach((r, i) => same(r, recs[i]!, baseSeq + i));
      assert.equal(got.end?.validBytes, seg.length);
    },
  );
});

test("fuzz: a damaged segment gives a prefix of its records, then a torn tail", () => {
  check(
    "damaged segment",
    800,
    [
      baseSeqArb,
      fc.array(recArb, { minLength: 1, maxLength: 6 }),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom("set", "cut", "insert", "delete", "dup"),
      fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 6 }),
    ],
    (baseSeq, recs, at, x, how, cuts) => {
      const seg = segment(baseSeq, recs);
      const i = at % seg.length;
      let b: Uint8Array;
      if (how === "set") {
        b = Uint8Array.from(seg);
        b[i] = b[i] === x ? x ^ 1 : x;
      } else if (how === "cut") b = seg.subarray(0, i);
      else if (how === "insert") b = Buffer.concat([seg.subarray(0, i), Uint8Array.of(x), seg.subarray(i)]);
      else if (how === "delete") b = Buffer.concat([seg.subarray(0, i), seg.subarray(i + 1)]);
      else b = Buffer.concat([seg.subarray(0, i + 8), seg.subarray(i)]); // 8 bytes at i, twice
      const got = readAll(b, cuts);
      assert.ok(got.records.length <= recs.length, "more records than were written");
      got.records.forEach((r, k) => same(r, recs[k]!, baseSeq + k));
    },
  );
});

test("fuzz: arbitrary bytes give records, a torn tail or ERR_DECODE", () => {
  const header = encodeSegmentHeader({ baseSeq: 1, createdAtMs: 0 });
  check(
    "random segment bytes",
    1500,
    [fc.boolean(), bytes(128), fc.array(fc.integer({ min: 0, max: 64 }), { maxLength: 5 })],
    (withHeader, b, cuts) => {
      readAll(withHeader ? Buffer.concat([header, b]) : b, cuts);
    },
  );
  check(
    "resume anywhere",
    500,
    [
      bytes(96),
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.oneof(fc.integer({ min: -2, max: 10 }), fc.double()),
    ],
    (b, offset, seq) => {
      readAll(b, [], { resume: { offset, seq } });
    },
  );
  check("decodeSegmentHeader", 1000, [bytes(48)], (b) => {
    const withMagic = Buffer.concat([Buffer.from("MYLSEG01"), b]);
    for (const x of [b, withMagic])
      parseOrCoded("decodeSegmentHeader", ["ERR_DECODE"], x, () => decodeSegmentHeader(x));
  });
});

test("fuzz: record lengths claiming up to 4 GiB are a torn tail at once, nothing allocated", () => {
  const header = encodeSegmentHeader({ baseSeq: 1, createdAtMs: 0 });
  const t0 = performance.now();
  for (const len of [0xffffffff, 0x80000000, MAX_RECORD_BODY_BYTES + 1, MAX_RECORD_BODY_BYTES]) {
    const rec = Buffer.alloc(40);
    rec.writeUInt32LE(len, 0);
    const got = readAll(Buffer.concat([header, rec]));
    assert.equal(got.records.length, 0);
    assert.equal(got.end?.validBytes, SEGMENT_HEADER_BYTES);
  }
  assert.ok(performance.now() - t0 < 500);
});
