/**
 * `myelin bag repair`: rewrites what an unclosed or damaged MCAP file holds into a new, valid, indexed
 * file. A recording cut by `kill -9` (or a full disk, or a power cut) has every chunk written before the
 * cut intact but no summary; the repair reads records in order up to the first incomplete or damaged
 * one, and writes every schema, channel, message and metadata record it found into the output, with a
 * `myelin.repair` metadata record saying what was recovered and from where.
 */
import { unlink } from "node:fs/promises";
import type { TypedMcapRecord } from "@mcap/core";
import { MyelinError } from "../errors.js";
import { scanBag } from "./bag-reader.js";
import { McapFileWriter, type Compression } from "./mcap-file-writer.js";

/** What a repair did. */
export interface RepairResult {
  input: string;
  output: string;
  /** True if the input was already a complete file (it is still rewritten). */
  wasComplete: boolean;
  messages: number;
  /** Bytes of the input read as whole records. */
  recoveredBytes: number;
  /** Bytes of the input after the last good record (lost). */
  lostBytes: number;
  /** Why reading stopped, when it stopped early. */
  problem?: string;
}

/**
 * Repairs `input` into `output` (which must be another path).
 * @throws MyelinError ERR_INVALID_ARGUMENT if input and output are the same file, or the input cannot be opened.
 * @throws DecodeError ERR_DECODE if the input is not an MCAP file.
 * @throws MyelinError ERR_STORAGE if the output cannot be written.
 */
export async function repairBag(
  input: string,
  output: string,
  compression: Compression = "zstd",
): Promise<RepairResult> {
  if (input === output) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `bag repair writes a new file: give an output other than ${input}`,
    );
  }
  const writer = await McapFileWriter.create(output, { compression });
  const schemaIds = new Map<number, number>();
  const channelIds = new Map<number, number>();
  const schemas = new Map<number, TypedMcapRecord & { type: "Schema" }>();
  let messages = 0;
  let header = { library: "", profile: "" };
  let end;
  try {
    end = await scanBag(input, async (r) => {
      switch (r.type) {
        case "Header":
          header = { library: r.library, profile: r.profile };
          break;
        case "Schema":
          schemas.set(r.id, r);
          break;
        case "Channel":
          if (!channelIds.has(r.id)) {
            let sid = 0;
            if (r.schemaId !== 0) {
              const s = schemas.get(r.schemaId);
              sid =
                schemaIds.get(r.schemaId) ??
                (s !== undefined ? writer.addSchema(s.name, s.encoding, s.data) : 0);
              schemaIds.set(r.schemaId, sid);
            }
            channelIds.set(r.id, writer.addChannel(sid, r.topic, r.messageEncoding, r.metadata));
          }
          break;
        case "Message":
          writer.addMessage(channelIds.get(r.channelId)!, r.sequence, r.logTime, r.publishTime, r.data);
          messages++;
          if (writer.queuedBytes > 64 * 1024 * 1024) await writer.drain(); // bounded memory on large files
          break;
        case "Metadata":
          writer.addMetadata(r.name, r.metadata);
          break;
        default:
          break;
      }
    });
    writer.addMetadata(
      "myelin.repair",
      new Map([
        ["source", input],
        ["source_library", header.library],
        ["recovered_bytes", String(end.goodBytes)],
        ["lost_bytes", String(end.size - end.goodBytes)],
        ["problem", end.problem ?? ""],
      ]),
    );
  } catch (err) {
    await writer.close().catch(() => undefined);
    await unlink(output).catch(() => undefined);
    throw err;
  }
  await writer.close();
  const result: RepairResult = {
    input,
    output,
    wasComplete: end.complete,
    messages,
    recoveredBytes: end.goodBytes,
    lostBytes: end.complete ? 0 : end.size - end.goodBytes,
  };
  if (end.problem !== undefined) result.problem = end.problem;
  return result;
}
