/**
 * Property tests of the data-plane wire format (docs/fuzzing.md): every encoder round-trips, and
 * any bytes at all parse or throw DecodeError ERR_DECODE, quickly, whatever lengths they claim.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Packr } from "msgpackr/pack";
import { check, parseOrCoded, bytes } from "../../test/fuzz-helpers.js";
import {
  DataFrameBuilder,
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameKind,
  encodeBlobHeader,
  encodeCredit,
  encodeError,
  encodeHello,
  encodePing,
  encodeReplyHeader,
  encodeRequestHeader,
  encodeSub,
  encodeUnsub,
  forEachRecord,
  parseFrame,
  type ParsedFrame,
} from "./frame.js";

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const str = fc.string({ maxLength: 40 });
const parse = (frames: Buffer[]): ParsedFrame | undefined => {
  const r = parseOrCoded("parseFrame", ["ERR_DECODE"], frames[0], () => parseFrame(frames));
  return r.ok ? r.value : undefined;
};
const pre = (kind: number, body: Uint8Array): Buffer =>
  Buffer.concat([Buffer.from([FRAME_MAGIC, FRAME_VERSION, kind]), body]);

test("fuzz: every control-like frame round-trips", () => {
  check("hello round trip", 200, [str, str], (node, process) => {
    assert.deepEqual(parseFrame([encodeHello({ node, process })]), {
      kind: FrameKind.Hello,
      body: { node, process },
    });
  });
  const sub = fc.record(
    {
      sid: u32,
      topic: str,
      type: str,
      reliable: fc.boolean(),
      history: u32,
      creditMsgs: u32,
      creditBytes: u32,
      group: str,
    },
    {
      requiredKeys: ["sid", "topic", "type", "reliable", "history", "creditMsgs", "creditBytes"],
      noNullPrototype: true,
    },
  );
  check("sub round trip", 300, [sub], (body) => {
    assert.deepEqual(parseFrame([encodeSub(body)]), { kind: FrameKind.Sub, body });
  });
  check("unsub/credit/ping round trip", 300, [u32, u32, u32], (a, b, c) => {
    assert.deepEqual(parseFrame([encodeUnsub(a)]), { kind: FrameKind.Unsub, sid: a });
    assert.deepEqual(parseFrame([encodeCredit(a, b, c)]), {
      kind: FrameKind.Credit,
      sid: a,
      msgs: b,
      bytes: c,
    });
    assert.deepEqual(parseFrame([encodePing(c)]), { kind: FrameKind.Ping, token: c });
  });
  const errBody = fc.record(
    { sid: u32, code: str, message: str },
    { requiredKeys: ["code", "message"], noNullPrototype: true },
  );
  check("error round trip", 200, [errBody], (body) => {
    assert.deepEqual(parseFrame([encodeError(body)]), { kind: FrameKind.Error, body });
  });
  const timeout = fc.oneof(
    fc.integer({ min: 1, max: 2 ** 40 }),
    fc.double({ min: Number.MIN_VALUE, noNaN: true }),
    fc.constant(Infinity),
  );
  const part = fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b));
  check(
    "request/reply round trip",
    200,
    [
      u32,
      str,
      str,
      timeout,
      fc.array(part, { minLength: 1, maxLength: 3 }),
      fc.option(fc.record({ code: str, message: str }, { noNullPrototype: true })),
    ],
    (id, service, type, timeoutMs, parts, error) => {
      assert.deepEqual(parseFrame([encodeRequestHeader({ id, service, type, timeoutMs }), ...parts]), {
        kind: FrameKind.Request,
        header: { id, service, type, timeoutMs },
        parts,
      });
      const header = error === null ? { id, ok: true } : { id, ok: false, error };
      assert.deepEqual(parseFrame([encodeReplyHeader(header), ...parts]), {
        kind: FrameKind.Reply,
        header,
        parts,
      });
    },
  );
  const rec = fc.record(
    {
      sid: u32,
      pub: fc.integer({ min: 0, max: 0xffff }),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      sec: u32,
      nsec: fc.integer({ min: 0, max: 999_999_999 }),
    },
    { noNullPrototype: true },
  );
  check("blob header round trip", 200, [rec, part], (h, p) => {
    assert.deepEqual(parseFrame([encodeBlobHeader(h), p]), { kind: FrameKind.Blob, header: h, parts: [p] });
  });
});

test("fuzz: data frames round-trip through DataFrameBuilder and forEachRecord", () => {
  const rec = fc.record(
    {
      sid: u32,
      pub: fc.integer({ min: 0, max: 0xffff }),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      sec: u32,
      nsec: fc.integer({ min: 0, max: 999_999_999 }),
      payload: fc.uint8Array({ maxLength: 64 }),
    },
    { noNullPrototype: true },
  );
  check(
    "data frame round trip",
    300,
    [fc.array(rec, { maxLength: 12 }), fc.integer({ min: 1, max: 256 })],
    (recs, cap) => {
      const b = new DataFrameBuilder(cap);
      for (const r of recs) b.append(r.sid, r.pub, r.seq, r.sec, r.nsec, r.payload);
      const frame = b.finish();
      assert.equal(parseFrame([frame]).kind, FrameKind.Data);
      const got: unknown[] = [];
      const n = forEachRecord(frame, (sid, pub, seq, sec, nsec, payload) =>
        got.push({ sid, pub, seq, sec, nsec, payload: Uint8Array.from(payload) }),
      );
      assert.equal(n, recs.length);
      assert.deepEqual(
        got,
        recs.map((r) => ({ ...r, payload: Uint8Array.from(r.payload) })),
      );
    },
  );
});

test("fuzz: arbitrary bytes parse or throw ERR_DECODE, never anything else", () => {
  check("random frames", 1000, [bytes(64), fc.array(bytes(8), { maxLength: 2 })], (first, rest) => {
    const frames = [Buffer.from(first), ...rest.map((r) => Buffer.from(r))];
    const p = parse(frames);
    if (p?.kind === FrameKind.Data) {
      parseOrCoded("forEachRecord", ["ERR_DECODE"], first, () => forEachRecord(p.frame, () => undefined));
    }
  });
  // Valid preamble, any kind, any body: reaches every body parser.
  check("random bodies", 2000, [fc.integer({ min: 0, max: 12 }), bytes(64)], (kind, body) => {
    const p = parse([pre(kind, body), Buffer.from("x")]);
    if (p?.kind === FrameKind.Data) {
      parseOrCoded("forEachRecord", ["ERR_DECODE"], body, () => forEachRecord(p.frame, () => undefined));
    }
  });
  // Bodies that are msgpack of arbitrary values (maps with the right keys half the time).
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const keys = [
    "node",
    "process",
    "sid",
    "topic",
    "type",
    "reliable",
    "history",
    "creditMsgs",
    "creditBytes",
    "group",
    "id",
    "service",
    "timeoutMs",
    "ok",
    "error",
    "code",
    "message",
  ];
  const value = fc.oneof(
    fc.anything({ maxDepth: 3, withBigInt: true }),
    fc.dictionary(fc.constantFrom(...keys), fc.anything({ maxDepth: 2 }), { maxKeys: 10 }),
  );
  check("msgpack bodies", 1000, [fc.constantFrom(1, 2, 7, 8, 10), value], (kind, v) => {
    let body: Uint8Array;
    try {
      body = packr.pack(v);
    } catch {
      return; // not encodable (symbols and the like): nothing to parse
    }
    parse([pre(kind, body), Buffer.from("x")]);
  });
});

test("fuzz: lengths claiming up to 4 GiB are refused at once, without allocating them", () => {
  const big = [0xffffffff, 0x7fffffff, 0x80000000, 0x10000000];
  for (const n of big) {
    // Data frame: record count, then a record length, both huge.
    const f = Buffer.alloc(3 + 4 + 4 + 24);
    f.set([FRAME_MAGIC, FRAME_VERSION, FrameKind.Data]);
    f.writeUInt32LE(n, 3);
    f.writeUInt32LE(n, 7);
    const t0 = performance.now();
    assert.throws(() => forEachRecord(f, () => undefined), { code: "ERR_DECODE" });
    f.writeUInt32LE(24, 7);
    assert.throws(
      () => forEachRecord(f, () => undefined),
      { code: "ERR_DECODE" },
      "count beyond the records",
    );
    // msgpack bodies whose str/bin/array/map/ext headers claim n.
    for (const tag of [0xdb, 0xc6, 0xdd, 0xdf, 0xc9]) {
      const body = Buffer.from([tag, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, 1, 2]);
      for (const kind of [
        FrameKind.Hello,
        FrameKind.Sub,
        FrameKind.Request,
        FrameKind.Reply,
        FrameKind.Error,
      ]) {
        assert.throws(() => parseFrame([pre(kind, body), Buffer.from("x")]), { code: "ERR_DECODE" });
      }
    }
    assert.ok(performance.now() - t0 < 500, `huge length ${n} took ${performance.now() - t0} ms`);
  }
});

test("fuzz regressions: inputs that broke the parser once", () => {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  // A request whose timeoutMs is NaN, negative or 0 was accepted and handed to the service handler.
  for (const timeoutMs of [NaN, -1, 0, -Infinity]) {
    const f = pre(FrameKind.Request, packr.pack({ id: 1, service: "/s", type: "t/T", timeoutMs }));
    assert.throws(() => parseFrame([f, Buffer.from("x")]), /field 'timeoutMs' must be a number > 0/);
  }
});
