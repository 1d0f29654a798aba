/**
 * Small metadata files (topic settings, rules, queue ids and floors) written so that a crash or a
 * full disk never leaves one empty or half written: the bytes go to a temp file beside it, which
 * is fsync'd, then renamed over the old one, and the directory is fsync'd. Either the old or the
 * new content is there afterwards, whole.
 */
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { MyelinError } from "../errors.js";

/**
 * Replaces `path` with `data` atomically and durably.
 * @throws MyelinError ERR_STORAGE naming the file and the cause (e.g. ENOSPC); the old content is kept
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    const fh = await open(tmp, "wx", 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    const hint =
      code === "ENOSPC"
        ? "the disk is full; free space and retry"
        : "check the disk and the directory's permissions";
    throw new MyelinError("ERR_STORAGE", `cannot write ${path}: ${(e as Error).message}; ${hint}`, {
      cause: e,
    });
  }
  try {
    const dir = await open(dirname(path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // The rename is done; a directory that cannot be fsync'd (some file systems) keeps it until the OS writes it.
  }
}
