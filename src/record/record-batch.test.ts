import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchWriter, forEachBatchMessage, type Batch } from "./record-batch.js";

type Seen = [number, number, number, number, number, number[][]];

function read(b: Batch): Seen[] {
  const out: Seen[] = [];
  forEachBatchMessage(b.buffer, b.length, (topic, seq, logMs, pubSec, pubNsec, frames) =>
    out.push([topic, seq, logMs, pubSec, pubNsec, frames.map((f) => [...f])]),
  );
  return out;
}

test("batches carry each message's header fields and frames, in order; a large message opens a batch of its size", () => {
  const w = new BatchWriter(1024);
  const small = [Uint8Array.from([1, 2, 3])];
  const handed: Batch[] = [];
  const add = (topic: number, seq: number, frames: Uint8Array[]): void => {
    const closed = w.add(
      topic,
      seq,
      12.5 + seq,
      1_700_000_000,
      999_999_999,
      frames,
      BatchWriter.sizeOf(frames),
    );
    if (closed !== undefined) handed.push(closed);
  };
  add(0, 1, small);
  add(65535, 2 ** 40, [Uint8Array.from([9]), new Uint8Array(0), Uint8Array.from(Array(70).fill(7))]);
  const big = new Uint8Array(20 * 1024).fill(5);
  add(3, 3, [Uint8Array.from([4]), big]);
  add(1, 4, small);
  handed.push(w.take()!);
  assert.equal(w.take(), undefined, "nothing left");
  assert.deepEqual(
    handed.map((b) => [b.count, b.large]),
    [
      [2, false],
      [2, true], // the large message's batch (rounded up to 64 KiB) takes the next one too
    ],
  );
  const all = handed.flatMap(read);
  assert.deepEqual(
    all.map(([topic, seq, logMs, pubSec, pubNsec]) => [topic, seq, logMs, pubSec, pubNsec]),
    [
      [0, 1, 13.5, 1_700_000_000, 999_999_999],
      [65535, 2 ** 40, 12.5 + 2 ** 40, 1_700_000_000, 999_999_999],
      [3, 3, 15.5, 1_700_000_000, 999_999_999],
      [1, 4, 16.5, 1_700_000_000, 999_999_999],
    ],
  );
  assert.deepEqual(all[1]![5], [[9], [], Array(70).fill(7)]);
  assert.equal(all[2]![5][1]!.length, 20 * 1024);
  assert.ok(all[2]![5][1]!.every((x) => x === 5));
});

test("buffers given back are reused: small batches by size, large ones when they fit", () => {
  const w = new BatchWriter(1024);
  const frames = [new Uint8Array(100)];
  w.add(0, 1, 0, 0, 0, frames, BatchWriter.sizeOf(frames));
  const first = w.take()!;
  w.recycle(first.buffer);
  w.add(0, 2, 0, 0, 0, frames, BatchWriter.sizeOf(frames));
  assert.equal(w.take()!.buffer, first.buffer, "the small batch's buffer is reused");
  const big = [new Uint8Array(100_000)];
  w.add(0, 3, 0, 0, 0, big, BatchWriter.sizeOf(big));
  const large = w.take()!;
  assert.ok(large.large && large.buffer.byteLength >= 100_000);
  w.recycle(large.buffer);
  const other = [new Uint8Array(90_000)];
  w.add(0, 4, 0, 0, 0, other, BatchWriter.sizeOf(other));
  assert.equal(w.take()!.buffer, large.buffer, "a large buffer that fits is reused");
});
