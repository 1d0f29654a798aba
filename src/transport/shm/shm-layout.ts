/**
 * The layout of a shared-memory pool, shared by the process that writes it and the processes that
 * map it to read. All numbers little-endian.
 *
 * ```
 *  0  u32 magic "MYS1"      4  u32 layout version (1)
 *  8  u32 slot count       12  u32 slot bytes
 * 16  u32 owner pid        20  u32 reserved
 * 24  16 bytes nonce (random; proves a reader mapped the writer's memory, not a namesake)
 * 64  slot headers, 16 bytes each: i32 generation, u32 length, 8 reserved
 * data, page aligned: slot i at dataStart + i * slotBytes
 * ```
 *
 * A slot's generation is odd while it holds a message and even while it is free; the writer bumps
 * it at each change, so a descriptor naming an older generation is stale and is refused.
 */

/** "MYS1" read as a little-endian u32. */
export const POOL_MAGIC = 0x3153594d;
/** Version of this layout. */
export const POOL_VERSION = 1;
/** Bytes of the pool header before the slot headers. */
export const POOL_HEADER_BYTES = 64;
/** Bytes of one slot header. */
export const SLOT_HEADER_BYTES = 16;
/** Offset of the nonce in the pool header. */
export const NONCE_OFFSET = 24;
/** Bytes of the nonce. */
export const NONCE_BYTES = 16;
/** Name prefix of every pool in /dev/shm: `myelin-shm-<pid>-<start time>-<random>-<slot bytes>`. */
export const POOL_NAME_PREFIX = "myelin-shm-";

/** Byte offset of slot `i`'s generation word. */
export function slotHeaderAt(i: number): number {
  return POOL_HEADER_BYTES + i * SLOT_HEADER_BYTES;
}

/** Byte offset where slot data starts for a pool of `slotCount` slots (page aligned). */
export function dataStart(slotCount: number): number {
  return Math.ceil((POOL_HEADER_BYTES + slotCount * SLOT_HEADER_BYTES) / 4096) * 4096;
}

/** Total bytes of a pool. */
export function poolBytes(slotCount: number, slotBytes: number): number {
  return dataStart(slotCount) + slotCount * slotBytes;
}

/** The header fields of a mapped pool, or a reason it is not one. */
export function readPoolHeader(
  buf: Buffer,
):
  | { ok: true; slotCount: number; slotBytes: number; pid: number; nonce: Buffer }
  | { ok: false; why: string } {
  if (buf.length < POOL_HEADER_BYTES)
    return { ok: false, why: `${buf.length} bytes is shorter than a pool header` };
  if (buf.readUInt32LE(0) !== POOL_MAGIC) return { ok: false, why: "not a Myelin pool (bad magic)" };
  if (buf.readUInt32LE(4) !== POOL_VERSION)
    return { ok: false, why: `pool layout ${buf.readUInt32LE(4)} unknown` };
  const slotCount = buf.readUInt32LE(8);
  const slotBytes = buf.readUInt32LE(12);
  if (slotCount === 0 || slotBytes === 0 || poolBytes(slotCount, slotBytes) > buf.length) {
    return {
      ok: false,
      why: `pool header claims ${slotCount} slots of ${slotBytes} bytes in ${buf.length} bytes`,
    };
  }
  return {
    ok: true,
    slotCount,
    slotBytes,
    pid: buf.readUInt32LE(16),
    nonce: buf.subarray(NONCE_OFFSET, NONCE_OFFSET + NONCE_BYTES),
  };
}

/**
 * Start time of process `pid` (clock ticks since boot, /proc/PID/stat field 22), or undefined if
 * there is no such process (or only its zombie). With the pid it names one process, even after the pid is reused.
 */
export function processStartTime(pid: number, readStat: (path: string) => string): string | undefined {
  let stat: string;
  try {
    stat = readStat(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // A zombie (Z) or dying (X) process has released its memory already: as good as gone.
  if (rest[0] === "Z" || rest[0] === "X") return undefined;
  return rest[19];
}
