/**
 * The recording thread's own cost, without the transport: `node dist/bench/record-sink.js [size]
 * [count] [compression]` fills batches (record-batch.ts) with `count` messages of `size` bytes (64:
 * std_msgs/String, written as JSON; larger: sensor_msgs/Image of random pixels, written as CDR), runs
 * a RecordingSink inline on them into a file in /dev/shm (or the temp dir), and prints the CPU time per
 * message (`process.cpuUsage()`) spent handling the batches, and until the file is closed. Run it
 * alternately against two builds to compare them: the figure hardly depends on the load.
 */
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrames } from "../src/codec/index.js";
import { describeMessageType, sensor_msgs, std_msgs } from "../src/msgs/index.js";
import { BatchWriter, type Batch } from "../src/record/record-batch.js";
import type { Compression } from "../src/record/mcap-file-writer.js";
import { RecordingSink, type SinkReply } from "../src/record/recording-sink.js";

const size = Number(process.argv[2] ?? 64);
const count = Number(process.argv[3] ?? (size <= 1024 ? 300_000 : 400));
const compression = (process.argv[4] ?? "zstd") as Compression;

const type = size <= 1024 ? std_msgs.String : sensor_msgs.Image;
const messages = Array.from({ length: 64 }, (_, i) =>
  size <= 1024
    ? { data: `${i}`.padStart(size, "x") }
    : sensor_msgs.Image.create({
        header: { frame_id: "camera", stamp: { sec: 1_700_000_000, nanosec: i } },
        height: size / 1024,
        width: 1024,
        encoding: "mono8",
        step: 1024,
        data: randomBytes(size),
      }),
);
const frames = messages.map((m) => encodeFrames(m));
const writer = new BatchWriter(256 * 1024);
const batches: Batch[] = [];
for (let i = 0; i < count; i++) {
  const f = frames[i % 64]!;
  const sec = 1_700_000_000 + Math.floor(i / 1000);
  const closed = writer.add(0, i + 1, i * 0.003, sec, (i % 1000) * 1000, f, BatchWriter.sizeOf(f));
  if (closed !== undefined) batches.push(closed);
}
const last = writer.take();
if (last !== undefined) batches.push(last);

const dir = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
const file = join(dir, `myelin-bench-record-sink-${process.pid}.mcap`);
let closed!: (r: Extract<SinkReply, { op: "closed" }>) => void;
const done = new Promise<Extract<SinkReply, { op: "closed" }>>((resolve) => (closed = resolve));
const sink = await RecordingSink.start(
  {
    output: file,
    compression,
    chunkBytes: 4 * 1024 * 1024,
    chunkMs: 1000,
    timeBaseNs: BigInt(Math.round(performance.timeOrigin * 1e6)),
    writerThread: false,
  },
  (r) => {
    if (r.op === "closed") closed(r);
    else if (r.op === "error") console.error(r.message);
  },
);
sink.post({ op: "topic", index: 0, topic: "/bench", type: describeMessageType(type) });
const c0 = process.cpuUsage();
let id = 1;
for (const b of batches) {
  sink.post({ op: "batch", id: id++, buffer: b.buffer, length: b.length, large: b.large });
}
const handled = process.cpuUsage(c0);
sink.post({ op: "close", counters: { dropped: [], lost: [], skipped: [] } });
const r = await done;
const total = process.cpuUsage(c0);
rmSync(file, { force: true });
const us = (c: NodeJS.CpuUsage): string => ((c.user + c.system) / count).toFixed(3);
console.log(
  JSON.stringify({
    size,
    count,
    compression,
    cpuUsPerMsgHandling: Number(us(handled)),
    cpuUsPerMsgUntilClosed: Number(us(total)),
    fileBytes: r.fileBytes,
    error: r.error ?? null,
  }),
);
