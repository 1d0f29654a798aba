/**
 * Writes one MCAP file: chunked, compressed, indexed (chunk and message indexes, statistics, summary
 * offsets), as `@mcap/core`'s `McapWriter` does, built on its record and chunk builders, with what a
 * recorder needs on top:
 *
 * - `addMessage` is synchronous: messages go into the open chunk; a full chunk is compressed and queued
 *   for writing, and the file is written behind, in order. `queuedBytes` tells how far behind the disk
 *   is, so the caller can shed load (and count it) instead of growing without bound;
 * - `flushChunk()` closes the open chunk now (the recorder calls it every second), so a process killed
 *   with `kill -9` loses at most that much: everything before is complete chunks;
 * - compression `zstd` (level 1) or `none`; with `zstd` a chunk whose first 64 KiB do not compress below
 *   90 % (raw pixels, point clouds, already-compressed JPEG) is stored uncompressed rather than paying
 *   for compression that saves nothing;
 * - chunk CRCs by Node's native `zlib.crc32`; the data section's CRC is left at 0 ("not computed", as
 *   the spec allows): each chunk's CRC covers the messages.
 */
import { open, type FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import zstd from "@foxglove/wasm-zstd";
import {
  McapRecordBuilder,
  Opcode,
  type ChunkIndex,
  type MetadataIndex,
  type Statistics,
  type SummaryOffset,
} from "@mcap/core";
import { ClosedError, MyelinError } from "../errors.js";
import { ChunkAssembler } from "./chunk-assembler.js";

/** Chunk compression of a recording. */
export type Compression = "zstd" | "none";

/** Options of {@link McapFileWriter.create}. */
export interface McapFileWriterOptions {
  /** Chunk compression (default `zstd`). */
  compression?: Compression;
  /** A chunk is closed once it holds this many bytes, uncompressed (default 4 MiB). */
  chunkBytes?: number;
  /** The header's `profile` (default `""`: no profile). */
  profile?: string;
  /** The header's `library` (default `myelin`). */
  library?: string;
}

const DEFAULTS = {
  compression: "zstd",
  chunkBytes: 4 * 1024 * 1024,
  profile: "",
  library: "myelin",
} as const;

/** How much of a chunk is compressed to decide whether compressing it is worth it. */
const PROBE_BYTES = 64 * 1024;
const PROBE_RATIO = 0.9;
const ZSTD_LEVEL = 1;

let zstdReady: Promise<boolean> | undefined;

/** A sequential, write-behind MCAP file writer; see the module comment. */
export class McapFileWriter {
  readonly path: string;
  readonly compression: Compression;
  readonly #fh: FileHandle;
  readonly #chunkBytes: number;
  readonly #records = new McapRecordBuilder();
  readonly #chunk = new ChunkAssembler();
  /** Serialises the schema and channel records put into chunks. */
  readonly #chunkRecords = new McapRecordBuilder();
  readonly #schemas = new Map<number, { id: number; name: string; encoding: string; data: Uint8Array }>();
  readonly #channels = new Map<
    number,
    { id: number; schemaId: number; topic: string; messageEncoding: string; metadata: Map<string, string> }
  >();
  readonly #inChunk = new Set<number>();
  readonly #chunkIndexes: ChunkIndex[] = [];
  readonly #metadataIndexes: MetadataIndex[] = [];
  readonly #stats: Statistics = {
    messageCount: 0n,
    schemaCount: 0,
    channelCount: 0,
    attachmentCount: 0,
    metadataCount: 0,
    chunkCount: 0,
    messageStartTime: 0n,
    messageEndTime: 0n,
    channelMessageCounts: new Map(),
  };
  #position = 0n;
  #queued = 0;
  #tail: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  #closed = false;
  #nextSchemaId = 1;
  #nextChannelId = 0;
  #uncompressedBytes = 0;
  /** Messages so far, and per channel id (numbers: the statistics record's bigints are built at the end). */
  #messages = 0;
  readonly #channelCounts: number[] = [];

  private constructor(path: string, fh: FileHandle, opts: Required<McapFileWriterOptions>) {
    this.path = path;
    this.#fh = fh;
    this.compression = opts.compression;
    this.#chunkBytes = opts.chunkBytes;
    this.#records.writeMagic();
    this.#records.writeHeader({ profile: opts.profile, library: opts.library });
    this.#emit(this.#takeRecords());
  }

  /**
   * Creates (or truncates) `path` and writes the file's magic and header.
   * @throws MyelinError ERR_STORAGE if the file cannot be created (the message names it and the reason).
   * @throws MyelinError ERR_INVALID_ARGUMENT on a bad option.
   */
  static async create(path: string, options: McapFileWriterOptions = {}): Promise<McapFileWriter> {
    const opts = { ...DEFAULTS, ...options };
    if (opts.compression !== "zstd" && opts.compression !== "none") {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `compression '${String(opts.compression)}' is not supported: use zstd or none`,
      );
    }
    if (!Number.isInteger(opts.chunkBytes) || opts.chunkBytes < 1024) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `chunkBytes must be an integer ≥ 1024, got ${opts.chunkBytes}`,
      );
    }
    if (opts.compression === "zstd") await (zstdReady ??= zstd.isLoaded);
    let fh: FileHandle;
    try {
      fh = await open(path, "w");
    } catch (err) {
      throw new MyelinError("ERR_STORAGE", `cannot create ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new McapFileWriter(path, fh, opts);
  }

  /** Bytes handed to the file so far (written or queued). */
  get bytes(): number {
    return Number(this.#position);
  }

  /** Bytes waiting to be written: closed chunks behind the disk, plus the open chunk. */
  get queuedBytes(): number {
    return this.#queued + this.#chunk.size;
  }

  /** Messages written so far (in closed chunks or the open one). */
  get messageCount(): number {
    return this.#messages;
  }

  /** Message bytes before compression, so far. */
  get uncompressedBytes(): number {
    return this.#uncompressedBytes;
  }

  /** The first write error, if any: once set, the file is lost and every later call throws it. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Adds a schema (written into the file with the first message of a channel using it); returns its id. */
  addSchema(name: string, encoding: string, data: Uint8Array): number {
    const id = this.#nextSchemaId++;
    this.#schemas.set(id, { id, name, encoding, data });
    this.#stats.schemaCount++;
    return id;
  }

  /** Adds a channel; returns its id. */
  addChannel(
    schemaId: number,
    topic: string,
    messageEncoding: string,
    metadata = new Map<string, string>(),
  ): number {
    const id = this.#nextChannelId++;
    this.#channels.set(id, { id, schemaId, topic, messageEncoding, metadata });
    this.#stats.channelCount++;
    return id;
  }

  /**
   * Adds a message to the open chunk, closing the chunk when it is full. `data` is the message's bytes,
   * its pieces (as `ChannelEncoding.encodeParts` gives them), or its text (JSON, written as UTF-8);
   * pieces of 16 KiB or more are kept by reference until written, so they must not change; smaller
   * ones are copied. Returns the message's length in bytes.
   * @param logTime when it was recorded, in ns since the Unix epoch
   * @param publishTime when it was published, in ns since the Unix epoch
   * @throws MyelinError ERR_STORAGE if an earlier write failed; ERR_CLOSED after close().
   */
  addMessage(
    channelId: number,
    sequence: number,
    logTime: bigint,
    publishTime: bigint,
    data: Uint8Array | readonly Uint8Array[] | string,
  ): number {
    this.#check();
    if (!this.#inChunk.has(channelId)) {
      const channel = this.#channels.get(channelId);
      if (channel === undefined) {
        throw new MyelinError("ERR_INVALID_ARGUMENT", `addMessage: no channel ${channelId} in ${this.path}`);
      }
      // Every chunk carries the schemas and channels of its messages, so that each chunk can be read on
      // its own: what `bag repair` relies on after a crash.
      const schema = this.#schemas.get(channel.schemaId);
      const r = this.#chunkRecords;
      if (schema !== undefined) r.writeSchema(schema);
      r.writeChannel(channel);
      this.#chunk.addRecords(r.buffer);
      r.reset();
      this.#inChunk.add(channelId);
    }
    const length = this.#chunk.addMessage(channelId, sequence, logTime, publishTime, data);
    const s = this.#stats;
    if (this.#messages === 0 || logTime < s.messageStartTime) s.messageStartTime = logTime;
    if (this.#messages === 0 || logTime > s.messageEndTime) s.messageEndTime = logTime;
    this.#messages++;
    this.#channelCounts[channelId] = (this.#channelCounts[channelId] ?? 0) + 1;
    this.#uncompressedBytes += length;
    if (this.#chunk.size >= this.#chunkBytes) this.flushChunk();
    return length;
  }

  /** Adds a metadata record (name → string map), outside chunks, indexed in the summary. */
  addMetadata(name: string, metadata: Map<string, string>): void {
    this.#check();
    const start = this.#position;
    const length = this.#records.writeMetadata({ name, metadata });
    this.#metadataIndexes.push({ name, offset: start, length });
    this.#stats.metadataCount++;
    this.#emit(this.#takeRecords());
  }

  /** Closes the open chunk, if it holds a message: compresses it and queues it for writing. */
  flushChunk(): void {
    this.#check();
    if (this.#chunk.messages === 0) return;
    const chunk = this.#chunk.seal();
    let compression = "";
    let body = chunk.pieces;
    let bodyLength = chunk.size;
    if (this.compression === "zstd" && worthCompressing(chunk.pieces)) {
      const z = zstd.compress(Buffer.concat(chunk.pieces, chunk.size), ZSTD_LEVEL);
      if (z.byteLength < chunk.size) {
        compression = "zstd";
        body = [z];
        bodyLength = z.byteLength;
      }
    }
    const chunkStart = this.#position;
    const head = chunkHeader(chunk.start, chunk.end, chunk.size, chunk.crc, compression, bodyLength);
    const chunkLength = BigInt(head.byteLength + bodyLength);
    this.#emit([head, ...body]);
    const indexStart = chunkStart + chunkLength;
    const messageIndexOffsets = new Map<number, bigint>();
    let indexLength = 0n;
    for (const [channelId, record] of chunk.indexes) {
      messageIndexOffsets.set(channelId, indexStart + indexLength);
      indexLength += BigInt(record.byteLength);
    }
    this.#emit([...chunk.indexes.values()]);
    this.#chunkIndexes.push({
      messageStartTime: chunk.start,
      messageEndTime: chunk.end,
      chunkStartOffset: chunkStart,
      chunkLength,
      messageIndexOffsets,
      messageIndexLength: indexLength,
      compression,
      compressedSize: BigInt(bodyLength),
      uncompressedSize: BigInt(chunk.size),
    });
    this.#stats.chunkCount++;
    this.#inChunk.clear();
  }

  /** Resolves once everything queued so far is written (rejects with the write error, if any). */
  async drain(): Promise<void> {
    await this.#tail;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Closes the open chunk, writes the summary (schemas, channels, statistics, metadata and chunk
   * indexes, summary offsets) and the footer, and closes the file. Idempotent.
   * @throws MyelinError ERR_STORAGE if a write failed: the file then ends at the last complete chunk
   *   and `myelin bag repair` makes it readable.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#failure === undefined) {
        this.flushChunk();
        this.#writeSummary();
      }
      this.#closed = true;
      await this.drain();
    } finally {
      this.#closed = true;
      await this.#tail;
      await this.#fh.close().catch(() => undefined);
    }
  }

  #writeSummary(): void {
    const r = this.#records;
    // 0: "not computed", as the MCAP spec allows. Every chunk carries the CRC of its records, which is
    // what readers and `bag repair` check; a second pass over every byte for the whole data section would
    // cost as much again at 1 MiB frames.
    r.writeDataEnd({ dataSectionCrc: 0 });
    this.#emit(this.#takeRecords());
    const summaryStart = this.#position;
    const offsets: SummaryOffset[] = [];
    const group = (opcode: Opcode, write: () => bigint): void => {
      const start = this.#position + BigInt(r.length);
      let length = 0n;
      length += write();
      if (length > 0n) offsets.push({ groupOpcode: opcode, groupStart: start, groupLength: length });
    };
    group(Opcode.SCHEMA, () => {
      let n = 0n;
      for (const s of this.#schemas.values()) n += r.writeSchema(s);
      return n;
    });
    group(Opcode.CHANNEL, () => {
      let n = 0n;
      for (const c of this.#channels.values()) n += r.writeChannel(c);
      return n;
    });
    this.#stats.messageCount = BigInt(this.#messages);
    this.#channelCounts.forEach((n, id) => this.#stats.channelMessageCounts.set(id, BigInt(n)));
    group(Opcode.STATISTICS, () => r.writeStatistics(this.#stats));
    group(Opcode.METADATA_INDEX, () => {
      let n = 0n;
      for (const m of this.#metadataIndexes) n += r.writeMetadataIndex(m);
      return n;
    });
    group(Opcode.CHUNK_INDEX, () => {
      let n = 0n;
      for (const c of this.#chunkIndexes) n += r.writeChunkIndex(c);
      return n;
    });
    const summaryOffsetStart = this.#position + BigInt(r.length);
    for (const o of offsets) r.writeSummaryOffset(o);
    // The footer's CRC covers the summary up to and including the footer's own first fields.
    const footerHead = Buffer.alloc(1 + 8 + 8 + 8);
    footerHead.writeUInt8(Opcode.FOOTER, 0);
    footerHead.writeBigUInt64LE(20n, 1);
    footerHead.writeBigUInt64LE(summaryStart, 9);
    footerHead.writeBigUInt64LE(summaryOffsetStart, 17);
    const summaryCrc = crc32(footerHead, crc32(r.buffer));
    r.writeFooter({ summaryStart, summaryOffsetStart, summaryCrc });
    r.writeMagic();
    const tail = this.#takeRecords();
    this.#position += BigInt(tail.byteLength);
    this.#queue([tail]);
  }

  /** The records built so far, as a buffer of their own (the builder's is reused). */
  #takeRecords(): Uint8Array {
    const b = this.#records.buffer; // a copy (the builder reuses its memory)
    this.#records.reset();
    return b;
  }

  /** Queues data-section bytes, counted in the position. */
  #emit(pieces: Uint8Array | Uint8Array[]): void {
    const list = Array.isArray(pieces) ? pieces : [pieces];
    for (const b of list) this.#position += BigInt(b.byteLength);
    this.#queue(list);
  }

  /** Writes `pieces` after everything queued before, in one gathered write where possible. */
  #queue(pieces: Uint8Array[]): void {
    let total = 0;
    for (const p of pieces) total += p.byteLength;
    if (total === 0) return;
    this.#queued += total;
    this.#tail = this.#tail.then(async () => {
      if (this.#failure !== undefined) return;
      try {
        let rest = pieces.filter((p) => p.byteLength > 0);
        while (rest.length > 0) {
          let { bytesWritten } = await this.#fh.writev(rest);
          // A short write: drop what went out and write the remainder.
          while (rest.length > 0 && bytesWritten >= rest[0]!.byteLength) {
            bytesWritten -= rest[0]!.byteLength;
            rest = rest.slice(1);
          }
          if (rest.length > 0 && bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
        }
      } catch (err) {
        this.#failure = new MyelinError(
          "ERR_STORAGE",
          `writing ${this.path} failed: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      } finally {
        this.#queued -= total;
      }
    });
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `${this.path} is closed`);
  }
}

/** The header of a Chunk record (opcode, length and every field before the records' bytes). */
function chunkHeader(
  start: bigint,
  end: bigint,
  uncompressedSize: number,
  uncompressedCrc: number,
  compression: string,
  recordsLength: number,
): Buffer {
  const name = Buffer.from(compression, "utf8");
  const fields = 8 + 8 + 8 + 4 + 4 + name.byteLength + 8;
  const b = Buffer.allocUnsafe(1 + 8 + fields);
  let o = b.writeUInt8(Opcode.CHUNK, 0);
  o = b.writeBigUInt64LE(BigInt(fields + recordsLength), o);
  o = b.writeBigUInt64LE(start, o);
  o = b.writeBigUInt64LE(end, o);
  o = b.writeBigUInt64LE(BigInt(uncompressedSize), o);
  o = b.writeUInt32LE(uncompressedCrc, o);
  o = b.writeUInt32LE(name.byteLength, o);
  o += name.copy(b, o);
  b.writeBigUInt64LE(BigInt(recordsLength), o);
  return b;
}

/**
 * True when a 64 KiB sample of the chunk compresses below {@link PROBE_RATIO}. The sample comes from its
 * largest piece: a frame's own bytes rather than the record headers around it.
 */
function worthCompressing(pieces: readonly Uint8Array[]): boolean {
  let largest = pieces[0]!;
  for (const p of pieces) if (p.byteLength > largest.byteLength) largest = p;
  if (largest.byteLength <= PROBE_BYTES) return true;
  const mid = Math.floor((largest.byteLength - PROBE_BYTES) / 2);
  const probe = largest.subarray(mid, mid + PROBE_BYTES);
  return zstd.compress(probe, ZSTD_LEVEL).byteLength < PROBE_BYTES * PROBE_RATIO;
}
