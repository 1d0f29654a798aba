/**
 * The Unix carrier's framing end to end: messages written by MessageWriter over a real Unix socket
 * come out of SlabReader (fed the way `onread` feeds it, in reads of every size) and ChunkReader
 * whole, in order, byte for byte — small ones batched in a slab, large ones read into their own
 * buffer, empty frames, messages spanning reads and slabs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Frames } from "../transport.js";
import { ChunkReader, SlabReader } from "./message-reader.js";
import { MessageWriter } from "./message-writer.js";
import { FramingError } from "./unix-framing.js";

/** A deterministic pseudo-random sequence (xorshift32). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** Messages of 0–4 frames, mostly small, some of 100 KiB to 700 KiB. */
function messages(count: number, seed: number): Frames[] {
  const r = rng(seed);
  const out: Frames[] = [];
  for (let i = 0; i < count; i++) {
    const frames: Frames = [];
    const n = Math.floor(r() * 5);
    for (let f = 0; f < n; f++) {
      const big = r() < 0.03;
      const len = big ? 100_000 + Math.floor(r() * 600_000) : Math.floor(r() * 300);
      const b = Buffer.alloc(len);
      for (let k = 0; k < len; k += 997) b[k] = (i + f + k) & 0xff;
      if (len > 0) b[len - 1] = i & 0xff;
      frames.push(b);
    }
    out.push(frames);
  }
  return out;
}

function assertSame(got: Frames[], want: Frames[]): void {
  assert.equal(got.length, want.length, "message count");
  for (let i = 0; i < want.length; i++) {
    assert.equal(got[i]!.length, want[i]!.length, `frame count of message ${i}`);
    for (let f = 0; f < want[i]!.length; f++)
      assert.ok(got[i]![f]!.equals(want[i]![f]!), `message ${i} frame ${f}`);
  }
}

/** Writes `msgs` with a MessageWriter over a real socket; resolves with every byte the other end read. */
async function overSocket(msgs: Frames[]): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "myelin-unix-framing-"));
  const path = join(dir, "s.sock");
  try {
    const chunks: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const server = createServer((s) => {
        s.on("data", (c: Buffer) => chunks.push(c));
        s.on("end", () => {
          server.close();
          resolve();
        });
        s.on("error", reject);
      });
      server.listen(path, () => {
        const sock: Socket = createConnection({ path }, () => {
          const w = new MessageWriter(sock, () => {});
          // Some in one turn (batched), some across turns (lone messages).
          let i = 0;
          const step = (): void => {
            const end = Math.min(msgs.length, i + 1 + (i % 37));
            for (; i < end; i++) w.write(msgs[i]!);
            if (i < msgs.length) setImmediate(step);
            else {
              w.flush();
              sock.end();
            }
          };
          step();
        });
        sock.on("error", reject);
      });
    });
    await done;
    return Buffer.concat(chunks);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("messages written in batches come out of SlabReader whole and in order, whatever the read sizes", async () => {
  const msgs = messages(1500, 7);
  const wire = await overSocket(msgs);
  for (const seed of [1, 2, 3]) {
    const r = rng(seed);
    const got: Frames[] = [];
    const reader = new SlabReader(1024 * 1024, (frames) => {
      got.push(frames.map((f) => Buffer.from(f)));
      return true;
    });
    let off = 0;
    while (off < wire.length) {
      const into = reader.buffer();
      const n = Math.min(into.length, wire.length - off, 1 + Math.floor(r() * (seed === 1 ? 64 : 300_000)));
      wire.copy(into, 0, off, off + n);
      off += n;
      reader.read(n);
    }
    assertSame(got, msgs);
  }
});

test("frames SlabReader delivers stay valid after later reads (slab bytes are never reused)", async () => {
  const msgs = messages(3000, 11).filter((m) => m.every((f) => f.length < 1000));
  const wire = await overSocket(msgs);
  const got: Frames[] = [];
  const reader = new SlabReader(1024 * 1024, (frames) => {
    got.push(frames); // views, kept as they are
    return true;
  });
  for (let off = 0; off < wire.length;) {
    const into = reader.buffer();
    const n = Math.min(into.length, wire.length - off, 4093);
    wire.copy(into, 0, off, off + n);
    off += n;
    reader.read(n);
  }
  assertSame(got, msgs);
});

test("ChunkReader cuts the same stream fed in chunks of every size", async () => {
  const msgs = messages(800, 5);
  const wire = await overSocket(msgs);
  const r = rng(9);
  const got: Frames[] = [];
  const reader = new ChunkReader(1024 * 1024, (frames) => {
    got.push(frames);
    return true;
  });
  for (let off = 0; off < wire.length;) {
    const n = Math.min(wire.length - off, 1 + Math.floor(r() * 200_000));
    reader.feed(Buffer.from(wire.subarray(off, off + n)));
    off += n;
  }
  assertSame(got, msgs);
});

test("a message over the limit or malformed is a FramingError, before any of it is delivered", () => {
  const over = Buffer.alloc(16);
  over.writeUInt32BE(10 * 1024 * 1024, 0);
  const slab = new SlabReader(1024, () => assert.fail("nothing is delivered"));
  const into = slab.buffer();
  over.copy(into);
  assert.throws(() => slab.read(over.length), FramingError);

  const bad = Buffer.alloc(16);
  bad.writeUInt32BE(12, 0); // 12 bytes follow
  bad.writeUInt16BE(1, 4); // one frame...
  bad.writeUInt32BE(100, 6); // ...of 100 bytes: overruns its message
  const chunks = new ChunkReader(1024, () => assert.fail("nothing is delivered"));
  assert.throws(() => chunks.feed(bad), /overruns/);
});

test("a reader stops at once when its handler says the socket closed", () => {
  const msgs: Frames[] = [[Buffer.from("a")], [Buffer.from("b")], [Buffer.from("c")]];
  const wire = Buffer.concat(
    msgs.map((m) => {
      const h = Buffer.alloc(10);
      h.writeUInt32BE(6 + m[0]!.length, 0);
      h.writeUInt16BE(1, 4);
      h.writeUInt32BE(m[0]!.length, 6);
      return Buffer.concat([h, m[0]!]);
    }),
  );
  let seen = 0;
  const reader = new ChunkReader(1024, () => {
    seen++;
    return false;
  });
  reader.feed(wire);
  assert.equal(seen, 1);
});
