import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { McapIndexedReader } from "@mcap/core";
import { decompressHandlers } from "./bag-reader.js";
import { McapFileWriter } from "./mcap-file-writer.js";

const noise = randomBytes(300 * 1024);

/** Writes text messages and 300 KiB frames (compressible and not) in small chunks. */
async function write(path: string, thread: boolean): Promise<McapFileWriter> {
  const w = await McapFileWriter.create(path, { compression: "zstd", chunkBytes: 64 * 1024, thread });
  const s = w.addSchema("x", "", new Uint8Array(0));
  const text = w.addChannel(s, "/text", "json");
  const blob = w.addChannel(s, "/blob", "application/octet-stream");
  const words = Buffer.from("the same words again ".repeat(15000));
  for (let i = 1; i <= 3000; i++) {
    w.addMessage(text, i, BigInt(i), BigInt(i), `{"n":${i}}`);
    if (i % 500 === 0) w.addMessage(blob, i, BigInt(i), BigInt(i), i % 1000 === 0 ? noise : words);
  }
  w.addMetadata("m", new Map([["k", "v"]]));
  await w.close();
  return w;
}

test("the writer thread writes the same bytes as the inline writer, and the file reads back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mcap-writer-"));
  try {
    const a = await write(join(dir, "thread.mcap"), true);
    const b = await write(join(dir, "inline.mcap"), false);
    const bytesA = readFileSync(a.path);
    const bytesB = readFileSync(b.path);
    assert.equal(a.bytes, bytesA.byteLength);
    assert.equal(b.bytes, bytesB.byteLength);
    assert.ok(bytesA.equals(bytesB), "the two files differ");
    const read = async (bytes: Buffer): Promise<string[]> => {
      const r = await McapIndexedReader.Initialize({
        readable: {
          size: () => Promise.resolve(BigInt(bytes.byteLength)),
          read: (o, n) => Promise.resolve(bytes.subarray(Number(o), Number(o + n))),
        },
        decompressHandlers: await decompressHandlers(),
      });
      const out: string[] = [];
      for await (const m of r.readMessages()) out.push(`${m.channelId}:${m.sequence}:${m.data.byteLength}`);
      assert.equal(r.statistics?.messageCount, 3006n);
      assert.equal(r.metadataIndexes.length, 1);
      return out;
    };
    assert.deepEqual(await read(bytesA), await read(bytesB));
    assert.equal(a.queuedBytes, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a file that cannot be created or written is ERR_STORAGE naming it, on both paths", async () => {
  for (const thread of [true, false]) {
    await assert.rejects(McapFileWriter.create("/nonexistent-dir/x.mcap", { thread }), {
      code: "ERR_STORAGE",
      message: /cannot create \/nonexistent-dir\/x\.mcap: .*ENOENT/,
    });
    if (!existsSync("/dev/full")) continue;
    // /dev/full takes the open and refuses every write (ENOSPC): the failure surfaces, nothing hangs
    const w = await McapFileWriter.create("/dev/full", { thread, chunkBytes: 1024 });
    const ch = w.addChannel(w.addSchema("x", "", new Uint8Array(0)), "/x", "json");
    for (let i = 1; i <= 100 && w.failure === undefined; i++) w.addMessage(ch, i, 1n, 1n, "x".repeat(100));
    await assert.rejects(w.drain(), { code: "ERR_STORAGE", message: /writing \/dev\/full failed: .*ENOSPC/ });
    assert.throws(() => w.addMessage(ch, 101, 1n, 1n, "x"), { code: "ERR_STORAGE" });
    await assert.rejects(w.close(), { code: "ERR_STORAGE" });
  }
});
