/**
 * Hostile and stale descriptors: a BLOB naming a pool not offered, a slot beyond the pool, a range
 * beyond the slot, or a generation the slot does not have is refused and counted, never read; a
 * malformed shm frame is a decode error. Checked on the reader alone and through a real link whose
 * other end (a raw listener on a real Unix socket) forges frames.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DecodeError } from "../../errors.js";
import { FrameKind, parseFrame, type RecordHeader } from "../frame.js";
import { PeerLink } from "../peer-link.js";
import { unixTransport } from "../unix/unix-transport.js";
import { shmAddon, shmStatus } from "./shm-addon.js";
import {
  INLINE,
  ShmKind,
  encodeOffer,
  encodeRelease,
  encodeShmBlob,
  parseShmFrame,
  type PartDescriptor,
} from "./shm-frame.js";
import { readPoolHeader, slotHeaderAt } from "./shm-layout.js";
import { ShmReader, ShmRefusal, shmReaderStats } from "./shm-reader.js";
import { ShmWriter } from "./shm-writer.js";

const skip = shmAddon() === null ? `shared memory is off: ${shmStatus().detail}` : false;
const SIZE = 100_000;

/** A loaned buffer of this process's pool, filled, with what a reader needs to name it. */
function loanedSlot(fill: number): {
  view: Buffer;
  name: string;
  nonce: Buffer;
  slot: number;
  gen: number;
  slotBytes: number;
} {
  const w = ShmWriter.forProcess()!;
  const view = w.loan(SIZE);
  view.fill(fill);
  const name = `/${w.poolNames().find((n) => n.endsWith(`-${128 * 1024}`))!}`;
  const pool = shmAddon()!.open(name);
  const h = readPoolHeader(pool);
  assert.ok(h.ok);
  const data = Math.ceil((64 + 16 * h.slotCount) / 4096) * 4096;
  const slot = Math.floor((view.byteOffset - data) / h.slotBytes);
  const gen = shmAddon()!.atomicLoad(pool, slotHeaderAt(slot));
  return { view, name, nonce: Buffer.from(h.nonce), slot, gen, slotBytes: h.slotBytes };
}

test(
  "the reader refuses forged and stale descriptors, counts them, and reads a valid one in place",
  { skip },
  () => {
    const l = loanedSlot(0x5a);
    const reader = ShmReader.create()!;
    const before = shmReaderStats();
    assert.equal(reader.offer(0, l.name, Buffer.alloc(16)), false, "wrong nonce: not the pool offered");
    assert.equal(reader.offer(0, "/myelin-shm-no-such-pool", l.nonce), false, "no such pool");
    assert.equal(reader.offer(0, l.name, l.nonce), true);
    const good: PartDescriptor = { pool: 0, slot: l.slot, gen: l.gen, offset: 0, length: SIZE };
    const head = Buffer.from([0x90]);
    const r = reader.resolve([{ pool: INLINE, slot: 0, gen: 0, offset: 0, length: 1 }, good], [head]);
    assert.equal(r.parts[0], head);
    assert.equal(r.parts[1]!.length, SIZE);
    assert.ok(
      r.parts[1]!.every((b) => b === 0x5a),
      "the bytes the publisher wrote",
    );
    assert.notEqual(
      r.parts[1]!.buffer,
      l.view.buffer,
      "a mapping of its own (another process would have one)",
    );
    l.view[0] = 0x11;
    assert.equal(r.parts[1]![0], 0x11, "read in place: a write to the slot shows through, no copy was made");
    assert.deepEqual(r.slots, [{ pool: 0, slot: l.slot, gen: l.gen }]);

    const forged: [PartDescriptor, RegExp][] = [
      [{ ...good, pool: 7 }, /pool 7, which was not offered/],
      [{ ...good, slot: 100000 }, /slot 100000 of a pool of/],
      [{ ...good, offset: 0xffffffff, length: 10 }, /beyond a slot/],
      [{ ...good, offset: 16, length: l.slotBytes }, /beyond a slot/],
      [{ ...good, gen: l.gen + 2 }, /stale/],
      [{ ...good, gen: l.gen + 1 }, /stale/],
    ];
    for (const [d, why] of forged)
      assert.throws(
        () => reader.resolve([d], []),
        (e: Error) => e instanceof ShmRefusal && why.test(e.message),
      );
    // Once the publisher frees the slot its generation moves on: the old descriptor is stale.
    ShmWriter.forProcess()!.endLoans([l.view]);
    assert.throws(() => reader.resolve([good], []), /stale/);
    const after = shmReaderStats();
    assert.equal(after.offersRefused - before.offersRefused, 2);
    assert.equal(after.refusedPool - before.refusedPool, 1);
    assert.equal(after.refusedSlot - before.refusedSlot, 1);
    assert.equal(after.refusedRange - before.refusedRange, 2);
    assert.equal(after.refusedGeneration - before.refusedGeneration, 3);
    assert.equal(after.descriptorsReceived - before.descriptorsReceived, 1);
  },
);

test("malformed shm frames are decode errors naming what is wrong", () => {
  const h: RecordHeader = { sid: 1, pub: 0, seq: 1, sec: 0, nsec: 0 };
  const d: PartDescriptor = { pool: 0, slot: 0, gen: 1, offset: 0, length: 10 };
  const blob = encodeShmBlob(h, [{ ...d, pool: INLINE }, d]);
  const f = parseFrame([blob, Buffer.from([1])]);
  assert.equal(f.kind, FrameKind.Shm);
  const ok = parseShmFrame(blob, [Buffer.from([1])]);
  assert.equal(ok.sub, ShmKind.Blob);
  const bad: [Buffer, Buffer[], RegExp][] = [
    [blob, [], /2 parts|1 inline parts but 0 frames/],
    [blob.subarray(0, blob.length - 1), [Buffer.from([1])], /must be \d+ bytes/],
    [blob.subarray(0, 10), [], /at least/],
    [Buffer.from([0xa7, 1, 11, 9]), [], /unknown shm frame sub-kind 9/],
    [Buffer.from([0xa7, 1, 11]), [], /at least 4 bytes/],
    [encodeRelease([{ pool: 0, slot: 0, gen: 0 }]).subarray(0, 12), [], /release frame must be/],
    [encodeOffer(0, Buffer.alloc(16), "").subarray(0, 20), [], /offer frame must be at least/],
  ];
  const zero = Buffer.from(blob.subarray(0, 4 + 24 + 4));
  zero.writeUInt32LE(0, 28);
  bad.push([zero, [], /0 parts/]);
  for (const [first, rest, why] of bad) {
    assert.throws(
      () => parseShmFrame(first, rest),
      (e: Error) => e instanceof DecodeError && why.test(e.message),
      String(why),
    );
  }
});

test(
  "a link whose publisher forges descriptors drops them, counts them, and keeps working",
  { skip },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "myelin-shm-"));
    const endpoint = `ipc://${join(dir, "pub.sock")}`;
    const listener = await unixTransport.listen(endpoint, { maxMessageBytes: 1 << 20 });
    const bad: Error[] = [];
    const link = new PeerLink({
      endpoint,
      transports: { ipc: unixTransport },
      hello: { node: "n", process: "p" },
      maxMessageBytes: 1 << 20,
      pingIntervalMs: 1000,
      onBadFrame: (e) => bad.push(e),
    });
    const got: { parts: Buffer[]; release: (() => void) | undefined }[] = [];
    let wake: (() => void) | undefined;
    const sid = link.subscribe(
      { topic: "/t", type: "x/Y", reliable: true, history: 0, creditMsgs: 10, creditBytes: 1 << 20 },
      {
        onRecord: () => undefined,
        onBlob: (_h, parts, release) => {
          got.push({ parts, release });
          wake?.();
        },
        onRefused: () => undefined,
      },
    );
    const l = loanedSlot(0x33);
    try {
      const it = listener[Symbol.asyncIterator]();
      /** Next message from the link, skipping pings. */
      const next = async (): Promise<{ peer: Buffer; first: Buffer; rest: Buffer[] }> => {
        for (;;) {
          const r = await it.next();
          assert.ok(!r.done);
          const f = parseFrame(r.value.frames);
          if (f.kind === FrameKind.Ping) continue;
          return { peer: r.value.peer, first: r.value.frames[0]!, rest: r.value.frames.slice(1) };
        }
      };
      const hello = await next();
      const hb = parseFrame([hello.first]);
      assert.ok(hb.kind === FrameKind.Hello && hb.body.shm === true, "the link says it maps shared memory");
      await next(); // the Sub
      const peer = hello.peer;
      listener.send(peer, [encodeOffer(3, l.nonce, l.name)]);
      const accept = parseShmFrame((await next()).first, []);
      assert.equal(accept.sub, ShmKind.Accept);
      const h: RecordHeader = { sid, pub: 0, seq: 1, sec: 0, nsec: 0 };
      const good: PartDescriptor = { pool: 3, slot: l.slot, gen: l.gen, offset: 0, length: SIZE };
      const head = Buffer.from([0x90]);
      const inline = { pool: INLINE, slot: 0, gen: 0, offset: 0, length: 1 };
      // Forged: unknown pool, slot out of range, range out of the slot, wrong generation; and garbage.
      for (const d of [
        { ...good, pool: 4 },
        { ...good, slot: 1 << 20 },
        { ...good, offset: 1 << 30 },
        { ...good, gen: l.gen + 2 },
      ]) {
        listener.send(peer, [encodeShmBlob(h, [inline, d]), head]);
      }
      listener.send(peer, [Buffer.from([0xa7, 1, 11, 3, 1, 2, 3])]);
      listener.send(peer, [encodeShmBlob({ ...h, seq: 2 }, [inline, good]), head]);
      if (got.length === 0) await new Promise<void>((r) => (wake = r));
      assert.equal(bad.length, 5, bad.map((e) => e.message).join("; "));
      assert.equal(link.badFrames, 5);
      assert.equal(got.length, 1, "only the valid descriptor was delivered");
      assert.ok(got[0]!.parts[1]!.every((b) => b === 0x33));
      // The forged ones were given back at once (the publisher ignores what it did not lend).
      for (let i = 0; i < 4; i++) assert.equal(parseShmFrame((await next()).first, []).sub, ShmKind.Release);
      got[0]!.release!();
      const rel = parseShmFrame((await next()).first, []);
      assert.ok(rel.sub === ShmKind.Release);
      assert.deepEqual(rel.slots, [{ pool: 3, slot: l.slot, gen: l.gen }]);
    } finally {
      ShmWriter.forProcess()!.endLoans([l.view]);
      link.close();
      await listener.close(0);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
