/**
 * Opening MCAP files for reading, with errors that say what is wrong with a file and what to do:
 *
 * - {@link openBag}: the indexed reader (`@mcap/core`'s `McapIndexedReader`) over a file handle, with
 *   zstd and lz4 decompression. A file that is not MCAP, or that was cut short (no summary: the recorder
 *   was killed), fails with `ERR_DECODE` naming the file and pointing at `myelin bag repair`;
 * - {@link scanBag}: a streaming pass over the records of a file that may be cut short or damaged: it
 *   yields every record up to the last complete, intact chunk and then reports where and why it stopped.
 *   `bag repair` and `bag info` on an unclosed file use it.
 */
import { open, type FileHandle } from "node:fs/promises";
import type Lz4 from "@foxglove/wasm-lz4";
import { createRequire } from "node:module";
import {
  McapIndexedReader,
  McapStreamReader,
  type DecompressHandlers,
  type TypedMcapRecord,
} from "@mcap/core";
import { FileHandleReadable } from "@mcap/nodejs";
import { DecodeError, MyelinError } from "../errors.js";
import { zstdCodec } from "./mcap-file-tail.js";

const MAGIC = Buffer.from([0x89, 0x4d, 0x43, 0x41, 0x50, 0x30, 0x0d, 0x0a]);

/**
 * Decompression of zstd and lz4 chunks (the codecs' WebAssembly loaded first, on the first call rather
 * than when this module is imported).
 */
export async function decompressHandlers(): Promise<DecompressHandlers> {
  const zstd = zstdCodec();
  const lz4 = createRequire(import.meta.url)("@foxglove/wasm-lz4") as typeof Lz4;
  await Promise.all([zstd.isLoaded, lz4.isLoaded]);
  return {
    zstd: (data, size) => zstd.decompress(data, Number(size)),
    lz4: (data, size) => lz4(data, Number(size)),
  };
}

/** An open MCAP file and its indexed reader. Close it when done. */
export interface Bag {
  readonly path: string;
  /** Size of the file in bytes. */
  readonly size: number;
  readonly reader: McapIndexedReader;
  close(): Promise<void>;
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (err as Error).message;
    throw new MyelinError("ERR_INVALID_ARGUMENT", `cannot open ${path}: ${why}`, { cause: err });
  }
}

/** Throws unless the file starts with the MCAP magic. */
async function checkMagic(path: string, fh: FileHandle, size: number): Promise<void> {
  const head = Buffer.alloc(8);
  const { bytesRead } = await fh.read(head, 0, 8, 0);
  if (bytesRead < 8 || !head.equals(MAGIC)) {
    throw new DecodeError(
      "ERR_DECODE",
      size === 0
        ? `${path} is empty: not an MCAP file`
        : `${path} is not an MCAP file (it does not start with the MCAP magic bytes); is it a ROS 1 bag, a db3 or another format?`,
    );
  }
}

/**
 * Opens `path` with the indexed reader.
 * @throws MyelinError ERR_INVALID_ARGUMENT if the file cannot be opened.
 * @throws DecodeError ERR_DECODE if it is not MCAP, or its summary is missing or damaged (the message
 *   says to run `myelin bag repair`).
 */
export async function openBag(path: string): Promise<Bag> {
  const fh = await openFile(path);
  try {
    const size = (await fh.stat()).size;
    await checkMagic(path, fh, size);
    let reader: McapIndexedReader;
    try {
      reader = await McapIndexedReader.Initialize({
        readable: new FileHandleReadable(fh),
        decompressHandlers: await decompressHandlers(),
      });
    } catch (err) {
      throw new DecodeError(
        "ERR_DECODE",
        `${path} has no valid index (${(err as Error).message}): it was probably not closed (the recorder was ` +
          `killed or the disk filled up); \`myelin bag repair ${path}\` rewrites what it holds into a valid file`,
        { cause: err },
      );
    }
    return { path, size, reader, close: () => fh.close() };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** How a scan of a file ended. */
export interface ScanEnd {
  /** True if the file ended with a valid footer and magic. */
  complete: boolean;
  /** Bytes of the file read as whole, intact records. */
  goodBytes: number;
  /** File size in bytes. */
  size: number;
  /** Why reading stopped before the end, if it did: a cut record, a bad CRC, a damaged record. */
  problem?: string;
}

/**
 * Reads every record of `path` in file order (chunks opened, their records yielded), stopping at the
 * first incomplete or damaged record. Returns how it ended; `onRecord` sees each record.
 * @throws MyelinError ERR_INVALID_ARGUMENT if the file cannot be opened.
 * @throws DecodeError ERR_DECODE if it is not MCAP at all.
 */
export async function scanBag(
  path: string,
  onRecord: (r: TypedMcapRecord) => void | Promise<void>,
): Promise<ScanEnd> {
  const fh = await openFile(path);
  try {
    const size = (await fh.stat()).size;
    await checkMagic(path, fh, size);
    const reader = new McapStreamReader({
      decompressHandlers: await decompressHandlers(),
      validateCrcs: true,
    });
    const buf = Buffer.alloc(4 * 1024 * 1024);
    let offset = 0;
    let consumed = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
      reader.append(buf.subarray(0, bytesRead));
      for (;;) {
        let r: TypedMcapRecord | undefined;
        try {
          r = reader.nextRecord();
        } catch (err) {
          return {
            complete: false,
            goodBytes: consumed,
            size,
            problem: `damaged record after byte ${consumed}: ${(err as Error).message}`,
          };
        }
        if (r === undefined) break;
        consumed = offset - reader.bytesRemaining();
        await onRecord(r);
      }
      if (reader.done()) return { complete: true, goodBytes: consumed, size };
    }
    return {
      complete: false,
      goodBytes: consumed,
      size,
      problem:
        consumed === size
          ? "the file ends after a complete record but has no summary: it was not closed"
          : `the file ends ${size - consumed} bytes into an incomplete record (cut short at byte ${size})`,
    };
  } finally {
    await fh.close();
  }
}
