/**
 * The reading side of shared memory, one per link to a publishing node: maps the pools the
 * publisher offers (after checking the nonce, so a namesake on another host is never read), turns
 * a BLOB's descriptors into views of the mapping (no copy) after checking each against the pool,
 * and gives slots back.
 *
 * A descriptor is refused, counted and never read when it names a pool not offered on this link,
 * a slot beyond the pool, a range beyond the slot, or a generation the slot does not have (stale
 * or forged). Each link maps the pools offered on it; a mapping stays valid as long as a view of it
 * is alive, even after the pool is unlinked.
 */
import { processShared } from "../../process-shared.js";
import { readPoolHeader, slotHeaderAt, dataStart } from "./shm-layout.js";
import { shmAddon, type ShmAddon } from "./shm-addon.js";
import { INLINE, type PartDescriptor, type SlotRelease } from "./shm-frame.js";
import { poolOwnerGone } from "./shm-writer.js";

/** Counters of this process's shared-memory reading (every link together). */
export interface ShmReaderStats {
  /** Pools mapped and accepted / offers refused (not found, wrong nonce, not a pool). */
  poolsMapped: number;
  offersRefused: number;
  /** Messages received as descriptors and read in place. */
  descriptorsReceived: number;
  /** Descriptors refused: unknown pool, slot out of range, range out of slot, stale generation. */
  refusedPool: number;
  refusedSlot: number;
  refusedRange: number;
  refusedGeneration: number;
  /** Pools of a publisher that died, removed from /dev/shm by this process. */
  orphansUnlinked: number;
}

/** This process's reading counters: one set per process (src/process-shared.ts), like the writer's. */
const stats = processShared<ShmReaderStats>("transport.shm.reader-stats", () => ({
  poolsMapped: 0,
  offersRefused: 0,
  descriptorsReceived: 0,
  refusedPool: 0,
  refusedSlot: 0,
  refusedRange: 0,
  refusedGeneration: 0,
  orphansUnlinked: 0,
}));

/** This process's reading counters. */
export function shmReaderStats(): ShmReaderStats {
  return { ...stats };
}

interface Mapped {
  name: string;
  buf: Buffer;
  slotCount: number;
  slotBytes: number;
  data: number;
}

/** A descriptor that cannot be read: why, for the link's bad-frame report. */
export class ShmRefusal extends Error {}

/** The shared-memory reader of one link. */
export class ShmReader {
  readonly #addon: ShmAddon;
  #pools = new Map<number, Mapped>();

  private constructor(addon: ShmAddon) {
    this.#addon = addon;
  }

  /** A reader, or null when shared memory is off in this process. */
  static create(): ShmReader | null {
    const addon = shmAddon();
    return addon === null ? null : new ShmReader(addon);
  }

  /**
   * The publisher offers pool `id` named `name`: maps it and checks the nonce.
   * @returns true when accepted (answer ACCEPT), false when refused (counted)
   */
  offer(id: number, name: string, nonce: Buffer): boolean {
    let buf: Buffer;
    try {
      buf = this.#addon.open(name);
    } catch {
      stats.offersRefused++;
      return false;
    }
    const h = readPoolHeader(buf);
    if (!h.ok || !h.nonce.equals(nonce)) {
      stats.offersRefused++;
      return false;
    }
    this.#pools.set(id, {
      name,
      buf,
      slotCount: h.slotCount,
      slotBytes: h.slotBytes,
      data: dataStart(h.slotCount),
    });
    stats.poolsMapped++;
    return true;
  }

  /**
   * The parts of a message: views into the pools for shared parts, the inline frames in order for
   * the others; and the slots to give back once the message is consumed.
   * @throws ShmRefusal when a descriptor is not valid (counted; nothing was read)
   */
  resolve(
    parts: readonly PartDescriptor[],
    inline: readonly Buffer[],
  ): { parts: Buffer[]; slots: SlotRelease[] } {
    const out: Buffer[] = new Array<Buffer>(parts.length);
    const slots: SlotRelease[] = [];
    let next = 0;
    for (let i = 0; i < parts.length; i++) {
      const d = parts[i]!;
      if (d.pool === INLINE) {
        out[i] = inline[next++]!;
        continue;
      }
      const m = this.#pools.get(d.pool);
      if (m === undefined) {
        stats.refusedPool++;
        throw new ShmRefusal(`shm descriptor names pool ${d.pool}, which was not offered on this link`);
      }
      if (d.slot >= m.slotCount) {
        stats.refusedSlot++;
        throw new ShmRefusal(`shm descriptor names slot ${d.slot} of a pool of ${m.slotCount}`);
      }
      if (d.offset > m.slotBytes || d.length > m.slotBytes - d.offset) {
        stats.refusedRange++;
        throw new ShmRefusal(
          `shm descriptor range ${d.offset}+${d.length} is beyond a slot of ${m.slotBytes} bytes`,
        );
      }
      const gen = this.#addon.atomicLoad(m.buf, slotHeaderAt(d.slot));
      if (gen !== d.gen || (gen & 1) === 0) {
        stats.refusedGeneration++;
        throw new ShmRefusal(
          `shm descriptor of slot ${d.slot} is stale: generation ${d.gen}, the slot has ${gen}`,
        );
      }
      const at = m.data + d.slot * m.slotBytes + d.offset;
      out[i] = m.buf.subarray(at, at + d.length);
      if (!slots.some((s) => s.pool === d.pool && s.slot === d.slot))
        slots.push({ pool: d.pool, slot: d.slot, gen: d.gen });
    }
    stats.descriptorsReceived++;
    return { parts: out, slots };
  }

  /**
   * The link to the publisher went down: forget its pool ids (a new connection offers again), and
   * remove from /dev/shm the pools of a publisher that is dead. Views already handed out stay valid.
   */
  linkDown(): void {
    const names = [...this.#pools.values()].map((m) => m.name);
    this.#pools = new Map();
    // The link may drop a moment before the process is gone: look again a little later.
    const sweep = (left: number[]): void => {
      const alive = names.filter((name) => !this.#unlinkIfOrphan(name));
      if (alive.length === 0 || left.length === 0) return;
      names.splice(0, names.length, ...alive);
      setTimeout(() => sweep(left.slice(1)), left[0]).unref();
    };
    sweep([200, 1000, 3000]);
  }

  /** Unlinks pool `name` if its writer is gone; true when it is no longer this link's concern. */
  #unlinkIfOrphan(name: string): boolean {
    if (!poolOwnerGone(name)) return false;
    try {
      if (this.#addon.unlink(name)) stats.orphansUnlinked++;
    } catch {
      // not ours to remove, or gone
    }
    return true;
  }
}
