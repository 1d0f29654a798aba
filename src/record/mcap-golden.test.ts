// Golden MCAP files in conformance/mcap/: one small file per channel encoding (json, and ros2msg+cdr for
// Image, CompressedImage and PointCloud2). The writer must still produce them byte for byte, and
// @mcap/core's indexed reader must read them back to the same messages. MYELIN_UPDATE_GOLDEN=1
// rewrites them after a deliberate format change.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, mkdtempSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { McapIndexedReader, McapStreamReader } from "@mcap/core";
import { sensor_msgs, std_msgs, type MessageType } from "../msgs/index.js";
import { decompressHandlers } from "./bag-reader.js";
import { channelEncodingForSchema, channelEncodingOf } from "./channel-encoding.js";
import { McapFileWriter } from "./mcap-file-writer.js";

const UPDATE = process.env.MYELIN_UPDATE_GOLDEN === "1";

function goldenDir(): string {
  for (const start of [process.cwd(), dirname(fileURLToPath(import.meta.url))]) {
    let dir = resolve(start);
    for (;;) {
      if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "conformance"))) {
        return join(dir, "conformance", "mcap");
      }
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error("conformance/ not found: run the tests from the repository");
}

const T0 = 1_700_000_000_000_000_000n;

const bytes = (n: number, k: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * k) & 0xff);

/** The messages of each golden file: a type and three messages. */
const CASES: { file: string; topic: string; type: MessageType<unknown>; messages: unknown[] }[] = [
  {
    file: "json-string.mcap",
    topic: "/chatter",
    type: std_msgs.String,
    messages: ["hello", "wörld ✓", ""].map((data) => ({ data })),
  },
  {
    file: "cdr-image.mcap",
    topic: "/camera/image",
    type: sensor_msgs.Image,
    messages: [1, 2, 3].map((i) =>
      sensor_msgs.Image.create({
        header: { stamp: { sec: 1_700_000_000 + i, nanosec: i * 1000 }, frame_id: "camera" },
        height: 2,
        width: 3,
        encoding: "rgb8",
        step: 9,
        data: bytes(18, i),
      }),
    ),
  },
  {
    file: "cdr-compressed-image.mcap",
    topic: "/camera/image/compressed",
    type: sensor_msgs.CompressedImage,
    messages: [1, 2, 3].map((i) =>
      sensor_msgs.CompressedImage.create({
        header: { stamp: { sec: 1_700_000_000 + i, nanosec: 0 }, frame_id: "camera" },
        format: "jpeg",
        data: Uint8Array.from([0xff, 0xd8, 0xff, i, 0xff, 0xd9]),
      }),
    ),
  },
  {
    file: "cdr-pointcloud2.mcap",
    topic: "/lidar/points",
    type: sensor_msgs.PointCloud2,
    messages: [1, 2, 3].map((i) => {
      const data = new Uint8Array(2 * 12);
      new Float32Array(data.buffer).set([i, 0, 0, 0, i, 0]);
      return sensor_msgs.PointCloud2.create({
        header: { stamp: { sec: 1_700_000_000 + i, nanosec: 0 }, frame_id: "lidar" },
        height: 1,
        width: 2,
        fields: ["x", "y", "z"].map((name, k) => ({ name, offset: 4 * k, datatype: 7, count: 1 })),
        point_step: 12,
        row_step: 24,
        data,
        is_dense: true,
      });
    }),
  },
];

/** Writes a case's file with fixed times: log time T0 + i ms, publish time 1 µs earlier, sequence i + 1. */
async function writeCase(path: string, c: (typeof CASES)[number]): Promise<void> {
  const w = await McapFileWriter.create(path, { compression: "none" });
  const enc = channelEncodingOf(c.type);
  const schema = w.addSchema(enc.schemaName, enc.schemaEncoding, enc.schemaData);
  const channel = w.addChannel(schema, c.topic, enc.messageEncoding, new Map([["myelin_type", c.type.name]]));
  c.messages.forEach((m, i) => {
    const t = T0 + BigInt(i) * 1_000_000n;
    w.addMessage(channel, i + 1, t, t - 1000n, enc.encode(m));
  });
  w.addMetadata("myelin.recording", new Map([["dropped", JSON.stringify({ [c.topic]: 0 })]]));
  await w.close();
}

/** Plain values with Uint8Array views, for deepEqual. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === "object" && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const dir = goldenDir();
if (UPDATE) mkdirSync(dir, { recursive: true });

for (const c of CASES) {
  test(`golden ${c.file}: the writer produces it byte for byte, and @mcap/core reads it back`, async () => {
    const tmp = mkdtempSync(join(tmpdir(), "myelin-mcap-"));
    try {
      const out = join(tmp, c.file);
      await writeCase(out, c);
      const written = readFileSync(out);
      const golden = join(dir, c.file);
      if (UPDATE) writeFileSync(golden, written);
      assert.ok(existsSync(golden), `${golden} is missing; run with MYELIN_UPDATE_GOLDEN=1 to create it`);
      assert.equal(
        written.toString("hex"),
        readFileSync(golden).toString("hex"),
        `${c.file} differs from the golden file`,
      );

      // The indexed reader: every channel has a schema, every message decodes to what was written.
      const data = readFileSync(golden);
      const reader = await McapIndexedReader.Initialize({
        readable: {
          size: () => Promise.resolve(BigInt(data.length)),
          read: (offset, length) => Promise.resolve(data.subarray(Number(offset), Number(offset + length))),
        },
        decompressHandlers: await decompressHandlers(),
      });
      assert.equal(reader.statistics?.messageCount, BigInt(c.messages.length));
      for (const ch of reader.channelsById.values())
        assert.ok(reader.schemasById.has(ch.schemaId), `${ch.topic} has a schema`);
      const got: unknown[] = [];
      for await (const m of reader.readMessages({ validateCrcs: true })) {
        const ch = reader.channelsById.get(m.channelId)!;
        const s = reader.schemasById.get(ch.schemaId)!;
        const enc = channelEncodingForSchema({
          schemaName: s.name,
          schemaEncoding: s.encoding,
          messageEncoding: ch.messageEncoding,
        });
        assert.equal(m.sequence, got.length + 1);
        assert.equal(m.logTime, T0 + BigInt(got.length) * 1_000_000n);
        assert.equal(m.publishTime, m.logTime - 1000n);
        got.push(enc.decode(m.data));
      }
      assert.deepEqual(plain(got), plain(c.messages));

      // The streaming reader validates every CRC and ends at the footer.
      const stream = new McapStreamReader({ validateCrcs: true });
      stream.append(data);
      while (stream.nextRecord() !== undefined) {
        // read to the end
      }
      assert.ok(stream.done(), "a complete file, footer and magic included");
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test("zstd chunks: compressible chunks are compressed, incompressible ones stored as they are", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "myelin-mcap-"));
  try {
    const path = join(tmp, "z.mcap");
    const w = await McapFileWriter.create(path, { compression: "zstd", chunkBytes: 256 * 1024 });
    const s = w.addSchema("x", "", new Uint8Array(0));
    const ch = w.addChannel(s, "/x", "application/octet-stream");
    const text = Buffer.from("the same words again and again ".repeat(10000));
    w.addMessage(ch, 1, 1n, 1n, text);
    w.flushChunk();
    const noise = randomBytes(300 * 1024);
    w.addMessage(ch, 2, 2n, 2n, noise);
    await w.close();
    const data = readFileSync(path);
    const reader = await McapIndexedReader.Initialize({
      readable: {
        size: () => Promise.resolve(BigInt(data.length)),
        read: (offset, length) => Promise.resolve(data.subarray(Number(offset), Number(offset + length))),
      },
      decompressHandlers: await decompressHandlers(),
    });
    assert.deepEqual(
      reader.chunkIndexes.map((c) => c.compression),
      ["zstd", ""],
    );
    const got = [];
    for await (const m of reader.readMessages({ validateCrcs: true })) got.push(Buffer.from(m.data));
    assert.ok(got[0]!.equals(text) && got[1]!.equals(noise));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
