/**
 * The worker thread of `McapFileWriter`: owns the file and an {@link McapFileTail}; checksums,
 * compresses and writes the chunks the writer's thread sealed, in the order they were posted, and
 * acknowledges each one once written, so the writer can bound what waits (see {@link TailRequest}).
 */
import { open } from "node:fs/promises";
import { parentPort, workerData } from "node:worker_threads";
import { FileAppender } from "./file-appender.js";
import {
  McapFileTail,
  zstdLoaded,
  type ChunkBody,
  type Compression,
  type SummaryContent,
} from "./mcap-file-tail.js";

/** What the writer posts to the thread, in order. `id` comes back in the acknowledgement. */
export type TailRequest =
  | { op: "records"; id: number; bytes: Uint8Array }
  | { op: "metadata"; id: number; name: string; record: Uint8Array }
  | { op: "chunk"; id: number; chunk: ChunkBody }
  | { op: "summary"; id: number; content: SummaryContent }
  | { op: "close" };

/** What the thread posts back. */
export type TailReply =
  | { op: "opened" }
  /** Request `id` is written; the file is `position` bytes long; a chunk's buffer comes back for reuse. */
  | { op: "ack"; id: number; position: bigint; recycled?: ArrayBuffer }
  /** A write (or the open) failed: nothing more is written. */
  | { op: "failed"; message: string }
  | { op: "closed"; position: bigint };

/** What the thread is started with. */
export interface TailThreadData {
  path: string;
  compression: Compression;
}

async function main(): Promise<void> {
  const port = parentPort!;
  const { path, compression } = workerData as TailThreadData;
  const post = (r: TailReply): void => port.postMessage(r);
  let appender: FileAppender;
  try {
    if (compression === "zstd") await zstdLoaded();
    appender = new FileAppender(await open(path, "w"));
  } catch (err) {
    post({ op: "failed", message: (err as Error).message });
    return;
  }
  const tail = new McapFileTail(compression);
  let reported = false;
  const acked = (id: number, position: bigint, recycled?: ArrayBuffer) => (): void => {
    const f = appender.failure;
    if (f !== undefined) {
      if (!reported) post({ op: "failed", message: f.message });
      reported = true;
      return;
    }
    if (recycled === undefined) post({ op: "ack", id, position });
    else port.postMessage({ op: "ack", id, position, recycled } satisfies TailReply, [recycled]);
  };
  port.on("message", (m: TailRequest) => {
    try {
      switch (m.op) {
        case "records":
          appender.append(tail.records(m.bytes), acked(m.id, tail.position));
          break;
        case "metadata":
          appender.append(tail.metadata(m.name, m.record), acked(m.id, tail.position));
          break;
        case "chunk":
          // Once written, the chunk's buffer goes back to the writer for the next chunk.
          appender.append(
            tail.chunk(m.chunk),
            acked(m.id, tail.position, m.chunk.pieces[0]!.buffer as ArrayBuffer),
          );
          break;
        case "summary":
          appender.append(tail.summary(m.content), acked(m.id, tail.position));
          break;
        case "close":
          void appender.close().then(() => {
            post({ op: "closed", position: tail.position });
            port.close();
          });
          break;
      }
    } catch (err) {
      if (!reported) post({ op: "failed", message: (err as Error).message });
      reported = true;
    }
  });
  post({ op: "opened" });
}

void main();
