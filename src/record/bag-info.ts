/**
 * What `myelin bag info` shows about an MCAP file: duration, start and end, message counts and bytes
 * per topic with their schema and encoding, chunk compression, and the drops the recorder counted (its
 * `myelin.recording` metadata). A closed file is read through its index (counts from the statistics,
 * bytes by reading the messages); a file that was never closed is scanned up to its last complete chunk
 * and reported as such.
 */
import type { TypedMcapRecord } from "@mcap/core";
import { openBag, scanBag } from "./bag-reader.js";

/** One topic (channel) of a bag. */
export interface BagTopicInfo {
  topic: string;
  /** The schema's name, e.g. `sensor_msgs/msg/Image`. */
  schema: string;
  /** Schema and message encodings, e.g. `ros2msg/cdr`. */
  encoding: string;
  messages: number;
  /** Bytes of its messages' data (uncompressed). */
  bytes: number;
  /** Messages per second over the bag's duration. */
  rateHz: number;
  /** Dropped by the recorder (disk behind), from its metadata; undefined when the file does not say. */
  dropped?: number;
  /** Lost before the recorder (publisher sequence gaps), from its metadata. */
  lost?: number;
}

/** A bag's summary. */
export interface BagInfo {
  path: string;
  /** File size in bytes. */
  size: number;
  /** True if the file was closed properly (summary and index present). */
  indexed: boolean;
  /** For an unclosed file: where and why reading stopped. */
  problem?: string;
  library: string;
  profile: string;
  /** First and last log time, ns since the Unix epoch (0 when empty). */
  startNs: bigint;
  endNs: bigint;
  durationMs: number;
  messages: number;
  chunks: number;
  /** Chunk count by compression (`zstd`, `lz4`, `none`). */
  compression: Record<string, number>;
  topics: BagTopicInfo[];
  /** Metadata records by name. */
  metadata: Record<string, Record<string, string>>;
}

interface Acc {
  schema: string;
  encoding: string;
  messages: number;
  bytes: number;
}

/**
 * Summarises `path`; see the module comment.
 * @throws MyelinError ERR_INVALID_ARGUMENT if the file cannot be opened.
 * @throws DecodeError ERR_DECODE if it is not an MCAP file.
 */
export async function bagInfo(path: string): Promise<BagInfo> {
  const byTopic = new Map<string, Acc>();
  const compression: Record<string, number> = {};
  const metadata: Record<string, Record<string, string>> = {};
  let library = "";
  let profile = "";
  let startNs = 0n;
  let endNs = 0n;
  let messages = 0;
  let chunks = 0;
  const count = (topic: string, schema: string, encoding: string, logTime: bigint, bytes: number): void => {
    let a = byTopic.get(topic);
    if (a === undefined) byTopic.set(topic, (a = { schema, encoding, messages: 0, bytes: 0 }));
    a.messages++;
    a.bytes += bytes;
    if (messages === 0 || logTime < startNs) startNs = logTime;
    if (messages === 0 || logTime > endNs) endNs = logTime;
    messages++;
  };
  let indexed = true;
  let problem: string | undefined;
  let size = 0;
  let bag;
  try {
    bag = await openBag(path);
  } catch (err) {
    if ((err as { code?: string }).code !== "ERR_DECODE" || !/no valid index/.test((err as Error).message))
      throw err;
  }
  if (bag !== undefined) {
    const r = bag.reader;
    try {
      size = bag.size;
      library = r.header.library;
      profile = r.header.profile;
      chunks = r.chunkIndexes.length;
      for (const c of r.chunkIndexes) {
        compression[c.compression || "none"] = (compression[c.compression || "none"] ?? 0) + 1;
      }
      for (const ch of r.channelsById.values()) {
        const s = r.schemasById.get(ch.schemaId);
        byTopic.set(ch.topic, {
          schema: s?.name ?? "",
          encoding: `${s?.encoding ?? "none"}/${ch.messageEncoding}`,
          messages: 0,
          bytes: 0,
        });
      }
      for await (const m of r.readMessages({ validateCrcs: true })) {
        const ch = r.channelsById.get(m.channelId)!;
        const a = byTopic.get(ch.topic)!;
        count(ch.topic, a.schema, a.encoding, m.logTime, m.data.byteLength);
      }
      for await (const md of r.readMetadata()) metadata[md.name] = Object.fromEntries(md.metadata);
    } catch (err) {
      // The index is there but a chunk is damaged: count what a scan in file order can read.
      problem = `damaged: ${(err as Error).message}`;
      byTopic.clear();
      for (const k of Object.keys(compression)) delete compression[k];
      messages = 0;
      chunks = 0;
    } finally {
      await bag.close();
    }
  }
  if (bag === undefined || problem !== undefined) {
    indexed = bag !== undefined;
    const schemas = new Map<number, { name: string; encoding: string }>();
    const channels = new Map<number, { topic: string; schemaId: number; messageEncoding: string }>();
    const end = await scanBag(path, (rec: TypedMcapRecord) => {
      switch (rec.type) {
        case "Header":
          library = rec.library;
          profile = rec.profile;
          break;
        case "Schema":
          schemas.set(rec.id, rec);
          break;
        case "Channel":
          channels.set(rec.id, rec);
          break;
        case "Chunk":
          chunks++;
          compression[rec.compression || "none"] = (compression[rec.compression || "none"] ?? 0) + 1;
          break;
        case "Message": {
          const ch = channels.get(rec.channelId)!;
          const s = schemas.get(ch.schemaId);
          count(
            ch.topic,
            s?.name ?? "",
            `${s?.encoding ?? "none"}/${ch.messageEncoding}`,
            rec.logTime,
            rec.data.byteLength,
          );
          break;
        }
        case "Metadata":
          metadata[rec.name] = Object.fromEntries(rec.metadata);
          break;
        default:
          break;
      }
    });
    size = end.size;
    if (problem !== undefined)
      problem = `${problem}; read in file order up to ${end.goodBytes} bytes${end.problem !== undefined ? ` (${end.problem})` : ""}`;
    else problem = end.problem ?? "the file has no summary";
  }
  const durationMs = Number(endNs - startNs) / 1e6;
  const rec = metadata["myelin.recording"];
  const parse = (key: string): Record<string, number> => {
    try {
      return JSON.parse(rec?.[key] ?? "{}") as Record<string, number>;
    } catch {
      return {};
    }
  };
  const dropped = parse("dropped");
  const lost = parse("lost");
  const topics: BagTopicInfo[] = [...byTopic.entries()]
    .map(([topic, a]) => {
      const t: BagTopicInfo = {
        topic,
        schema: a.schema,
        encoding: a.encoding,
        messages: a.messages,
        bytes: a.bytes,
        rateHz: durationMs > 0 ? (a.messages * 1000) / durationMs : 0,
      };
      if (rec !== undefined) {
        t.dropped = dropped[topic] ?? 0;
        t.lost = lost[topic] ?? 0;
      }
      return t;
    })
    .sort((a, b) => a.topic.localeCompare(b.topic));
  const info: BagInfo = {
    path,
    size,
    indexed,
    library,
    profile,
    startNs,
    endNs,
    durationMs,
    messages,
    chunks,
    compression,
    topics,
    metadata,
  };
  if (problem !== undefined) info.problem = problem;
  return info;
}
