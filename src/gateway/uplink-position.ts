/**
 * The forwarded position of a store-and-forward forwarder, kept on disk: the highest sequence
 * number of the source topic up to which JetStream acknowledged every message, and the position
 * the forwarder started from. Written like the store's metadata (temp file, fsync, rename, fsync
 * of the directory), so after a crash the file holds either the old or the new position, whole.
 * A position on disk is never ahead of what JetStream acknowledged; it may be behind (the rest
 * is sent again, and the stream's duplicate window stores it once).
 */
import { readFile } from "node:fs/promises";
import { MyelinError } from "../errors.js";
import { writeFileAtomic } from "../store/atomic-file.js";

/** What the file holds. */
export interface ForwardPosition {
  /** The position the forwarder started from (messages at or below it were never forwarded). */
  start: number;
  /** Every message up to this sequence number is acknowledged by JetStream. */
  forwarded: number;
}

/** Reads a position file; undefined when it does not exist. @throws MyelinError ERR_STATE_CORRUPT */
export async function loadPosition(path: string): Promise<ForwardPosition | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new MyelinError("ERR_STORAGE", `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  const p = v as Partial<ForwardPosition> | undefined;
  if (
    p === undefined ||
    p === null ||
    !Number.isSafeInteger(p.start) ||
    !Number.isSafeInteger(p.forwarded) ||
    p.start! < 0 ||
    p.forwarded! < p.start!
  ) {
    throw new MyelinError(
      "ERR_STATE_CORRUPT",
      `${path} is not a forwarded position ({"start":N,"forwarded":M}); remove it to forward the topic again from its first message (the cloud stores each message once within its duplicate window)`,
    );
  }
  return { start: p.start!, forwarded: p.forwarded! };
}

/** Writes a position file atomically and durably. @throws MyelinError ERR_STORAGE */
export async function savePosition(path: string, p: ForwardPosition): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(p) + "\n");
}
