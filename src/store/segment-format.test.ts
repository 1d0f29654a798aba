// The segment format: CRC-32C check values, golden files in conformance/store/ (MYELIN_UPDATE_GOLDEN=1
// rewrites them after a deliberate format change), chunking independence, and a seeded fuzz run.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { DecodeError, MyelinError } from "../errors.js";
import { crc32c } from "./crc32c.js";
import {
  SEGMENT_HEADER_BYTES,
  SegmentReader,
  decodeSegmentHeader,
  encodeRecord,
  encodeSegmentHeader,
  type SegmentRecord,
  type TornTail,
} from "./segment-format.js";

const UPDATE = process.env.MYELIN_UPDATE_GOLDEN === "1";

function goldenDir(): string {
  for (const start of [process.cwd(), dirname(fileURLToPath(import.meta.url))]) {
    let dir = resolve(start);
    for (;;) {
      if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "conformance"))) {
        return join(dir, "conformance", "store");
      }
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error("conformance/ not found: run the tests from the repository");
}

const dir = goldenDir();
if (UPDATE) mkdirSync(dir, { recursive: true });

function check(file: string, actual: Uint8Array): Buffer {
  const path = join(dir, file);
  if (UPDATE) writeFileSync(path, actual);
  assert.ok(existsSync(path), `${path} is missing; run with MYELIN_UPDATE_GOLDEN=1 to create it`);
  const golden = readFileSync(path);
  assert.equal(Buffer.from(actual).toString("hex"), golden.toString("hex"), `${file} differs`);
  return golden;
}

interface Rec {
  seq: number;
  ts: number;
  header: Uint8Array;
  payload: Uint8Array;
}

const te = new TextEncoder();
const CREATED = 1_700_000_000_000;

/** The canonical records of `segment-3-records.seg`. */
const threeRecords: Rec[] = [
  {
    seq: 1,
    ts: CREATED + 1.5,
    header: Uint8Array.from([0x81, 0xa3, 0x70, 0x75, 0x62, 0x01]),
    payload: te.encode("hello"),
  },
  { seq: 2, ts: CREATED + 2, header: new Uint8Array(0), payload: new Uint8Array(0) },
  { seq: 3, ts: CREATED + 2, header: te.encode("h"), payload: Uint8Array.from({ length: 40 }, (_, i) => i) },
];
/** seq above 2^32: pins the high word of the u64. */
const bigBase = 2 ** 32 + 7;
const bigRecords: Rec[] = [
  { seq: bigBase, ts: CREATED + 10, header: te.encode("k"), payload: te.encode("x") },
  { seq: bigBase + 1, ts: CREATED + 11, header: new Uint8Array(0), payload: te.encode("yz") },
];

function segment(baseSeq: number, records: Rec[]): Buffer {
  return Buffer.concat([
    encodeSegmentHeader({ baseSeq, createdAtMs: CREATED }),
    ...records.map((r) => encodeRecord(r.seq, r.ts, r.header, r.payload)),
  ]);
}

/** Reads everything with the given chunk sizes; returns the records and the final report. */
function readAll(bytes: Uint8Array, chunk: (i: number) => number = () => bytes.length) {
  const reader = new SegmentReader();
  const records: SegmentRecord[] = [];
  let torn: TornTail | undefined;
  let at = 0;
  for (let i = 0; ; i++) {
    const r = reader.next();
    if (r === undefined) {
      if (at >= bytes.length) {
        reader.end();
        continue;
      }
      const n = Math.max(1, chunk(i));
      reader.push(bytes.subarray(at, at + n));
      at += n;
      continue;
    }
    if (r.torn) {
      torn = r;
      break;
    }
    records.push(r);
  }
  return { records, torn: torn, header: reader.header };
}

function plain(r: Rec): Rec {
  return { seq: r.seq, ts: r.ts, header: new Uint8Array(r.header), payload: new Uint8Array(r.payload) };
}

test("crc32c check values", () => {
  assert.equal(crc32c(te.encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  // split computation equals one pass
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff);
  assert.equal(crc32c(data, 300, 1000, crc32c(data, 0, 300)), crc32c(data));
});

test("golden segment-3-records.seg", () => {
  const golden = check("segment-3-records.seg", segment(1, threeRecords));
  const { records, torn, header } = readAll(golden);
  assert.deepEqual(header, { version: 1, baseSeq: 1, createdAtMs: CREATED });
  assert.deepEqual(records.map(plain), threeRecords.map(plain));
  assert.equal(torn.validBytes, golden.length);
  assert.equal(records[0]!.offset, SEGMENT_HEADER_BYTES);
  assert.equal(records[0]!.size, 26 + 6 + 5);
});

test("golden segment-big-seq.seg (seq above 2^32)", () => {
  const golden = check("segment-big-seq.seg", segment(bigBase, bigRecords));
  const { records, torn } = readAll(golden);
  assert.deepEqual(records.map(plain), bigRecords.map(plain));
  assert.equal(torn.validBytes, golden.length);
});

test("golden segment-empty.seg", () => {
  const golden = check("segment-empty.seg", encodeSegmentHeader({ baseSeq: 1, createdAtMs: CREATED }));
  const { records, torn } = readAll(golden);
  assert.equal(records.length, 0);
  assert.equal(torn.validBytes, SEGMENT_HEADER_BYTES);
  assert.equal(torn.reason, "incomplete record");
});

test("golden segment-torn.seg: the last record is cut, the others survive", () => {
  const full = segment(1, threeRecords);
  const golden = check("segment-torn.seg", full.subarray(0, full.length - 7));
  const { records, torn } = readAll(golden);
  assert.deepEqual(records.map(plain), threeRecords.slice(0, 2).map(plain));
  assert.equal(torn.validBytes, records[1]!.offset + records[1]!.size);
});

test("chunking does not matter", () => {
  const bytes = segment(1, threeRecords);
  const whole = readAll(bytes);
  for (const size of [1, 2, 3, 7, 26, 41]) {
    const r = readAll(bytes, () => size);
    assert.deepEqual(r.records.map(plain), whole.records.map(plain));
    assert.equal(r.torn.validBytes, bytes.length);
  }
});

test("no torn report before end() while a record is incomplete; a bad checksum is reported at once", () => {
  const bytes = segment(1, threeRecords);
  const reader = new SegmentReader();
  reader.push(bytes.subarray(0, bytes.length - 1));
  let r = reader.next();
  while (r && !r.torn) r = reader.next();
  assert.equal(r, undefined);
  reader.push(bytes.subarray(bytes.length - 1));
  assert.equal(reader.next()?.torn, false);

  const bad = Buffer.from(bytes);
  bad.writeUInt8(bad.readUInt8(SEGMENT_HEADER_BYTES + 30) ^ 0x01, SEGMENT_HEADER_BYTES + 30);
  const r2 = new SegmentReader();
  r2.push(bad);
  assert.deepEqual(r2.next(), {
    torn: true,
    validBytes: SEGMENT_HEADER_BYTES,
    reason: "record checksum mismatch",
  });
  // stays torn
  assert.equal(r2.next()?.torn, true);
});

test("zero-filled tail, sequence gap and wrong magic", () => {
  const good = segment(1, threeRecords.slice(0, 1));
  const zeros = readAll(Buffer.concat([good, Buffer.alloc(64)]));
  assert.equal(zeros.records.length, 1);
  assert.equal(zeros.torn.validBytes, good.length);

  const gap = readAll(Buffer.concat([good, encodeRecord(3, CREATED, new Uint8Array(0), new Uint8Array(0))]));
  assert.equal(gap.records.length, 1);
  assert.match(gap.torn.reason, /expected 2/);

  const foreign = Buffer.from(good);
  foreign[0] = 0x58;
  assert.throws(() => readAll(foreign), DecodeError);
  assert.throws(() => readAll(foreign.subarray(0, 3)), DecodeError);
  const headerOnly = Buffer.from(good.subarray(0, SEGMENT_HEADER_BYTES));
  headerOnly.writeUInt8(headerOnly.readUInt8(20) ^ 0xff, 20);
  assert.equal(decodeSegmentHeader(headerOnly), undefined);
  assert.equal(readAll(headerOnly).torn.validBytes, 0);
});

test("resume mid-segment from a record boundary", () => {
  const bytes = segment(1, threeRecords);
  const { records } = readAll(bytes);
  const second = records[1]!;
  const reader = new SegmentReader({ resume: { offset: second.offset, seq: 2 } });
  reader.push(bytes.subarray(second.offset));
  reader.end();
  const a = reader.next() as SegmentRecord;
  const b = reader.next() as SegmentRecord;
  assert.deepEqual([a.seq, a.offset, b.seq], [2, second.offset, 3]);
  assert.deepEqual(reader.next(), { torn: true, validBytes: bytes.length, reason: "incomplete record" });
});

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("fuzz: mutated and truncated segments yield only original records, then a torn report", () => {
  const rand = prng(0x5eed);
  const int = (n: number) => Math.floor(rand() * n);
  const cases: { bytes: Buffer; originals: Rec[] }[] = [
    { bytes: segment(1, threeRecords), originals: threeRecords },
    { bytes: segment(bigBase, bigRecords), originals: bigRecords },
  ];
  let tornReports = 0;
  let decodeErrors = 0;
  for (let iter = 0; iter < 4000; iter++) {
    const c = cases[iter % cases.length]!;
    let m = Buffer.from(c.bytes);
    const mutations = 1 + int(3);
    for (let k = 0; k < mutations; k++) {
      switch (int(6)) {
        case 0: // truncate
          m = m.subarray(0, int(m.length + 1));
          break;
        case 1: // flip a bit
          if (m.length > 0) {
            const at = int(m.length);
            m.writeUInt8(m.readUInt8(at) ^ (1 << int(8)), at);
          }
          break;
        case 2: // random byte
          if (m.length > 0) m[int(m.length)] = int(256);
          break;
        case 3: {
          // insert random bytes
          const at = int(m.length + 1);
          const ins = Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256)));
          m = Buffer.concat([m.subarray(0, at), ins, m.subarray(at)]);
          break;
        }
        case 4: {
          // duplicate a slice (e.g. a whole record) further on
          const a = int(m.length + 1);
          const b = a + int(m.length - a + 1);
          const at = int(m.length + 1);
          m = Buffer.concat([m.subarray(0, at), m.subarray(a, b), m.subarray(at)]);
          break;
        }
        default: {
          // zero a run
          const a = int(m.length + 1);
          m.fill(0, a, Math.min(m.length, a + int(16)));
        }
      }
    }
    try {
      const { records, torn } = readAll(m, () => 1 + int(40));
      tornReports++;
      // Only records byte-identical to the originals, in order, from the first: never garbage.
      assert.ok(records.length <= c.originals.length);
      records.forEach((r, i) => assert.deepEqual(plain(r), plain(c.originals[i]!), `iteration ${iter}`));
      const end =
        records.length > 0 ? records[records.length - 1]!.offset + records[records.length - 1]!.size : 0;
      assert.ok(
        torn.validBytes === end || (records.length === 0 && torn.validBytes === SEGMENT_HEADER_BYTES),
      );
    } catch (e) {
      if (!(e instanceof MyelinError && e.code === "ERR_DECODE")) throw e;
      decodeErrors++;
    }
  }
  assert.ok(tornReports > 1000 && decodeErrors > 0, `${tornReports} torn, ${decodeErrors} decode errors`);
});
