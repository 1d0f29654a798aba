/**
 * The back half of an MCAP file writer, sans-IO: takes sealed chunks (one buffer of records each),
 * records outside chunks, metadata and, at the end, the summary, and returns the bytes to append to
 * the file, in order, keeping what only the file's end knows: the position, the chunk and metadata
 * indexes. It checksums each chunk (Node's native `zlib.crc32`) and compresses it with zstd (level -1)
 * unless a 64 KiB probe of it does not shrink below 90 % (raw pixels, point clouds, JPEG): then the
 * chunk is stored as it is rather than paying for compression that saves nothing.
 *
 * `McapFileWriter` runs it on a worker thread (mcap-writer-thread.ts) so that checksums, compression
 * and writes never hold up the thread that receives messages, or inline.
 */
import { crc32 } from "node:zlib";
import type Zstd from "@foxglove/wasm-zstd";
import { createRequire } from "node:module";
import {
  McapRecordBuilder,
  Opcode,
  type Channel,
  type ChunkIndex,
  type MetadataIndex,
  type Schema,
  type Statistics,
  type SummaryOffset,
} from "@mcap/core";

/** Chunk compression of a recording. */
export type Compression = "zstd" | "none";

/** A chunk's records, sealed by the assembler: in pieces (inline), or joined into one buffer (to move it to a thread). */
export interface ChunkBody {
  /** The chunk's records, uncompressed, in order. */
  pieces: Uint8Array[];
  /** Their CRC-32, when already computed while assembling. */
  crc?: number;
  /** Earliest and latest log time of its messages, in ns since the Unix epoch. */
  start: bigint;
  end: bigint;
  /** Channel id → its MessageIndex record, in order of first appearance. */
  indexes: [number, Uint8Array][];
  /** Which piece to probe for compressibility, and where in it (its largest stretch of one message's data). */
  probePiece: number;
  probeOffset: number;
  probeLength: number;
}

/** What the summary lists, as the front half knows it. */
export interface SummaryContent {
  schemas: Schema[];
  channels: Channel[];
  /** The statistics; the tail fills in chunkCount and metadataCount itself. */
  stats: Statistics;
}

/** How much of a chunk is compressed to decide whether compressing it is worth it. */
const PROBE_BYTES = 64 * 1024;
const PROBE_RATIO = 0.9;
/**
 * zstd's first fast level: a 4 MiB chunk of 64 B JSON messages compresses in 4.2 ms instead of
 * 13.9 ms at level 1 (0.12 µs a message instead of 0.39 on the recording thread), to 10.0 % of its
 * size instead of 8.3 %. Any zstd reader reads it.
 */
const ZSTD_LEVEL = -1;
/**
 * After a probe found a chunk's large data incompressible, this many following chunks with large data
 * are stored as they are without probing again (a probe costs as much as checksumming a 1 MiB frame:
 * zstd's set-up dominates); then the next one is probed.
 */
const TRUST_PROBE_CHUNKS = 8;

let zstdModule: typeof Zstd | undefined;
let zstdReady: Promise<boolean> | undefined;

/**
 * The zstd codec (WebAssembly), required on first use rather than when this module is imported: its
 * memory is a few MB that a process which never records (a hub without a recorder) does not need.
 */
export function zstdCodec(): typeof Zstd {
  zstdModule ??= createRequire(import.meta.url)("@foxglove/wasm-zstd") as typeof Zstd;
  return zstdModule;
}

/** Resolves once the zstd module is loaded (needed before a tail with zstd compresses). */
export function zstdLoaded(): Promise<boolean> {
  return (zstdReady ??= zstdCodec().isLoaded);
}

/** See the module comment. */
export class McapFileTail {
  readonly compression: Compression;
  readonly #records = new McapRecordBuilder();
  readonly #chunkIndexes: ChunkIndex[] = [];
  readonly #metadataIndexes: MetadataIndex[] = [];
  #position = 0n;
  /** Chunks with large data still to store uncompressed without a probe (see TRUST_PROBE_CHUNKS). */
  #skipProbes = 0;

  constructor(compression: Compression) {
    this.compression = compression;
  }

  /** Bytes returned so far: the file's length once they are written. */
  get position(): bigint {
    return this.#position;
  }

  /** Records outside chunks (magic, header), as they are. */
  records(bytes: Uint8Array): Uint8Array[] {
    return this.#out([bytes]);
  }

  /** A metadata record, indexed in the summary. */
  metadata(name: string, record: Uint8Array): Uint8Array[] {
    this.#metadataIndexes.push({ name, offset: this.#position, length: BigInt(record.byteLength) });
    return this.#out([record]);
  }

  /**
   * A chunk: its header, its records (compressed when worth it, else the pieces as they are, for a
   * gathered write) and its message indexes.
   */
  chunk(c: ChunkBody): Uint8Array[] {
    let size = 0;
    for (const p of c.pieces) size += p.byteLength;
    let crc = c.crc;
    if (crc === undefined) {
      crc = 0;
      for (const p of c.pieces) crc = crc32(p, crc);
    }
    let compression = "";
    let body = c.pieces;
    let bodyLength = size;
    const probe = c.pieces[c.probePiece];
    if (this.compression === "zstd" && this.#worthCompressing(probe, c.probeOffset, c.probeLength)) {
      const joined = c.pieces.length === 1 ? c.pieces[0]! : Buffer.concat(c.pieces, size);
      const z = zstdCodec().compress(joined, ZSTD_LEVEL);
      if (z.byteLength < size) {
        compression = "zstd";
        body = [z];
        bodyLength = z.byteLength;
      }
    }
    const chunkStart = this.#position;
    const head = chunkHeader(c.start, c.end, size, crc, compression, bodyLength);
    const chunkLength = BigInt(head.byteLength + bodyLength);
    const indexStart = chunkStart + chunkLength;
    const messageIndexOffsets = new Map<number, bigint>();
    let indexLength = 0n;
    for (const [channelId, record] of c.indexes) {
      messageIndexOffsets.set(channelId, indexStart + indexLength);
      indexLength += BigInt(record.byteLength);
    }
    this.#chunkIndexes.push({
      messageStartTime: c.start,
      messageEndTime: c.end,
      chunkStartOffset: chunkStart,
      chunkLength,
      messageIndexOffsets,
      messageIndexLength: indexLength,
      compression,
      compressedSize: BigInt(bodyLength),
      uncompressedSize: BigInt(size),
    });
    return this.#out([head, ...body, ...c.indexes.map(([, r]) => r)]);
  }

  /** Whether to compress a chunk whose largest stretch of one message's data is `probe`'s (see worthCompressing). */
  #worthCompressing(probe: Uint8Array | undefined, offset: number, length: number): boolean {
    if (probe === undefined || length <= PROBE_BYTES) return true;
    if (this.#skipProbes > 0) {
      this.#skipProbes--;
      return false;
    }
    if (worthCompressing(probe, offset, length)) return true;
    this.#skipProbes = TRUST_PROBE_CHUNKS;
    return false;
  }

  /**
   * The data end, the summary (schemas, channels, statistics, metadata and chunk indexes, summary
   * offsets), the footer and the closing magic.
   */
  summary(content: SummaryContent): Uint8Array[] {
    const r = this.#records;
    // 0: "not computed", as the MCAP spec allows. Every chunk carries the CRC of its records, which is
    // what readers and `bag repair` check; a second pass over every byte for the whole data section would
    // cost as much again at 1 MiB frames.
    r.writeDataEnd({ dataSectionCrc: 0 });
    const dataEnd = this.#take();
    const summaryStart = this.#position + BigInt(dataEnd.byteLength);
    const offsets: SummaryOffset[] = [];
    const group = (opcode: Opcode, write: () => bigint): void => {
      const start = summaryStart + BigInt(r.length);
      const length = write();
      if (length > 0n) offsets.push({ groupOpcode: opcode, groupStart: start, groupLength: length });
    };
    group(Opcode.SCHEMA, () => {
      let n = 0n;
      for (const s of content.schemas) n += r.writeSchema(s);
      return n;
    });
    group(Opcode.CHANNEL, () => {
      let n = 0n;
      for (const c of content.channels) n += r.writeChannel(c);
      return n;
    });
    const stats: Statistics = {
      ...content.stats,
      chunkCount: this.#chunkIndexes.length,
      metadataCount: this.#metadataIndexes.length,
    };
    group(Opcode.STATISTICS, () => r.writeStatistics(stats));
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
    const summaryOffsetStart = summaryStart + BigInt(r.length);
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
    return this.#out([dataEnd, this.#take()]);
  }

  #take(): Uint8Array {
    const b = this.#records.buffer; // a copy (the builder reuses its memory)
    this.#records.reset();
    return b;
  }

  #out(pieces: Uint8Array[]): Uint8Array[] {
    const out = pieces.filter((p) => p.byteLength > 0);
    for (const p of out) this.#position += BigInt(p.byteLength);
    return out;
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
 * True when a 64 KiB sample of the probed piece (the chunk's largest: a frame's own bytes rather than
 * the record headers around it) compresses below {@link PROBE_RATIO}.
 */
function worthCompressing(body: Uint8Array, offset: number, length: number): boolean {
  if (length <= PROBE_BYTES) return true;
  const mid = offset + Math.floor((length - PROBE_BYTES) / 2);
  const probe = body.subarray(mid, mid + PROBE_BYTES);
  return zstdCodec().compress(probe, ZSTD_LEVEL).byteLength < PROBE_BYTES * PROBE_RATIO;
}
