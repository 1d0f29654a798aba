/**
 * The writing side of shared memory: this process's pools, from which publishers loan buffers and
 * into which the data server copies large frames once for every same-host subscriber, and the
 * per-subscriber accounting of the slots they hold.
 *
 * Slots are counted here, in the one process that writes them, never in shared memory: a
 * subscriber holds a slot from the descriptor it was sent until its RELEASE arrives, or until its
 * connection is dropped (a crashed subscriber's holds go with it). A slot with no holder goes
 * back to the free list and its generation moves on, so a descriptor that names it is stale.
 *
 * Pools are unlinked when this process exits; a process killed with SIGKILL leaves them behind
 * until a subscriber sees its link drop or the next process here creates a pool
 * ({@link sweepOrphanPools}).
 */
import { processShared } from "../../process-shared.js";
import { randomBytes } from "../node-crypto.js";
import { readdirSync, readFileSync } from "node:fs";
import { shmAddon, type ShmAddon } from "./shm-addon.js";
import {
  NONCE_BYTES,
  NONCE_OFFSET,
  POOL_MAGIC,
  POOL_NAME_PREFIX,
  POOL_VERSION,
  dataStart,
  poolBytes,
  processStartTime,
  slotHeaderAt,
} from "./shm-layout.js";
import { INLINE, encodeOffer, encodeShmBlob, type PartDescriptor, type SlotRelease } from "./shm-frame.js";
import type { RecordHeader } from "../frame.js";

/** Frames at least this large go through shared memory to same-host subscribers, in bytes. */
export const SHM_THRESHOLD_BYTES = 64 * 1024;
/** The smallest slot, in bytes. */
const MIN_SLOT_BYTES = 64 * 1024;
/** The largest slot, in bytes (a frame above it goes over the socket). */
const MAX_SLOT_BYTES = 64 * 1024 * 1024;
/** Bytes of shared memory per slot size, at most (pages are used only once written). */
const POOL_BUDGET_BYTES = 128 * 1024 * 1024;
/** Slots per pool, at most. */
const MAX_SLOTS = 64;

/** Counters of this process's shared-memory writing. */
export interface ShmWriterStats {
  /** Pools created (one per slot size in use). */
  pools: number;
  /** Slots holding a message or loaned. */
  slotsInUse: number;
  /** Messages sent to a subscriber as a descriptor (no bytes on the socket). */
  descriptorsSent: number;
  /** Large frames sent over the socket to a same-host subscriber because no slot was free. */
  exhausted: number;
  /** Buffers loaned from a pool / loans served from the heap (pool off or full). */
  loans: number;
  heapLoans: number;
  /** RELEASE or ACCEPT frames naming a slot or pool this subscriber does not hold (ignored). */
  badReleases: number;
  badAccepts: number;
}

/** A subscriber connection's shared-memory state, kept by the data server per peer. */
export class ShmPeer {
  /** Pools offered to this peer / accepted by it (it mapped them). */
  readonly offered = new Set<number>();
  readonly accepted = new Set<number>();
  /** Slots this peer holds: `pool:slot:gen` → count. */
  readonly holds = new Map<string, number>();
}

class Pool {
  readonly refs: Int32Array;
  readonly gens: Int32Array;
  readonly loaned: Uint8Array;
  readonly free: number[] = [];
  readonly data: number;
  constructor(
    readonly id: number,
    readonly name: string,
    readonly buf: Buffer,
    readonly slotCount: number,
    readonly slotBytes: number,
    readonly nonce: Buffer,
    private readonly addon: ShmAddon,
  ) {
    this.refs = new Int32Array(slotCount);
    this.gens = new Int32Array(slotCount);
    this.loaned = new Uint8Array(slotCount);
    this.data = dataStart(slotCount);
    for (let i = slotCount - 1; i >= 0; i--) this.free.push(i);
  }

  /** Takes a free slot with one hold; -1 when none is free. */
  acquire(): number {
    const s = this.free.pop();
    if (s === undefined) return -1;
    this.gens[s] = (this.gens[s]! + 1) | 0; // odd: in use
    this.addon.atomicStore(this.buf, slotHeaderAt(s), this.gens[s]);
    this.refs[s] = 1;
    return s;
  }

  ref(s: number): void {
    this.refs[s]!++;
  }

  /** Drops one hold; the last one frees the slot and moves its generation on. */
  unref(s: number): void {
    if (--this.refs[s]! > 0) return;
    this.refs[s] = 0;
    this.gens[s] = (this.gens[s]! + 1) | 0; // even: free
    this.addon.atomicStore(this.buf, slotHeaderAt(s), this.gens[s]);
    this.free.push(s);
  }

  view(s: number, offset: number, length: number): Buffer {
    const at = this.data + s * this.slotBytes + offset;
    return this.buf.subarray(at, at + length);
  }

  /** The slot and offset of a view into this pool's data, or undefined. */
  locate(part: Uint8Array): { slot: number; offset: number } | undefined {
    if (part.buffer !== this.buf.buffer) return undefined;
    const rel = part.byteOffset - this.buf.byteOffset - this.data;
    if (rel < 0) return undefined;
    const slot = Math.floor(rel / this.slotBytes);
    const offset = rel - slot * this.slotBytes;
    if (slot >= this.slotCount || offset + part.length > this.slotBytes) return undefined;
    return { slot, offset };
  }
}

/** Where a message's parts lie: per part a descriptor (INLINE for a part sent as bytes). */
interface Placement {
  parts: PartDescriptor[];
  /** Each distinct slot once. */
  slots: SlotRelease[];
}

/**
 * This process's writer: undefined until first asked for, null when shared memory is off. One per
 * process (src/process-shared.ts), so every copy of Myelin loans from and counts in the same pools.
 */
const shared = processShared<{ writer: ShmWriter | null | undefined }>("transport.shm.writer", () => ({
  writer: undefined,
}));

/** This process's pools and slot accounting; see the module comment. */
export class ShmWriter {
  readonly #addon: ShmAddon;
  readonly #pools: Pool[] = [];
  readonly #bySize = new Map<number, Pool>();
  /** Slot sizes whose pool could not be created (not tried again). */
  readonly #failed = new Set<number>();
  readonly #placed = new WeakMap<object, Placement | null>();
  readonly #detached = new WeakMap<object, Uint8Array[]>();
  readonly #prefix: string;
  readonly #loanGuard = new FinalizationRegistry<{ pool: Pool; slot: number; gen: number }>((l) =>
    this.#endLoan(l.pool, l.slot, l.gen),
  );
  #loansOut = 0;
  readonly #stats: Omit<ShmWriterStats, "pools" | "slotsInUse"> = {
    descriptorsSent: 0,
    exhausted: 0,
    loans: 0,
    heapLoans: 0,
    badReleases: 0,
    badAccepts: 0,
  };

  private constructor(addon: ShmAddon) {
    this.#addon = addon;
    const start = processStartTime(process.pid, (p) => readFileSync(p, "latin1")) ?? "0";
    this.#prefix = `/${POOL_NAME_PREFIX}${process.pid}-${start}-${randomBytes(4).toString("hex")}`;
  }

  /** The writer of this process, or null when shared memory is off (see `shmStatus()`). */
  static forProcess(): ShmWriter | null {
    if (shared.writer !== undefined) return shared.writer;
    const addon = shmAddon();
    const w = addon === null ? null : new ShmWriter(addon);
    shared.writer = w;
    if (w !== null) process.once("exit", () => w.unlinkAll());
    return w;
  }

  /** Counters. */
  stats(): ShmWriterStats {
    let inUse = 0;
    for (const p of this.#pools) inUse += p.slotCount - p.free.length;
    return { ...this.#stats, pools: this.#pools.length, slotsInUse: inUse };
  }

  /** Names of this process's pools (in /dev/shm, without the leading slash). */
  poolNames(): string[] {
    return this.#pools.map((p) => p.name.slice(1));
  }

  /** Removes every pool of this process from /dev/shm (mappings stay valid until dropped). */
  unlinkAll(): void {
    for (const p of this.#pools) {
      try {
        this.#addon.unlink(p.name);
      } catch {
        // gone already
      }
    }
  }

  #poolFor(bytes: number): Pool | undefined {
    if (bytes > MAX_SLOT_BYTES) return undefined;
    let size = MIN_SLOT_BYTES;
    while (size < bytes) size *= 2;
    let pool = this.#bySize.get(size);
    if (pool !== undefined || this.#failed.has(size)) return pool;
    if (this.#pools.length === 0) sweepOrphanPools();
    const slots = Math.max(2, Math.min(MAX_SLOTS, Math.floor(POOL_BUDGET_BYTES / size)));
    const name = `${this.#prefix}-${size}`;
    let buf: Buffer;
    try {
      buf = this.#addon.create(name, poolBytes(slots, size));
    } catch (err) {
      process.emitWarning(
        `cannot create shared-memory pool ${name}: ${(err as Error).message}; large frames go over the socket`,
        {
          code: "MYELIN_SHM_POOL",
        },
      );
      this.#failed.add(size);
      return undefined;
    }
    buf.writeUInt32LE(POOL_MAGIC, 0);
    buf.writeUInt32LE(POOL_VERSION, 4);
    buf.writeUInt32LE(slots, 8);
    buf.writeUInt32LE(size, 12);
    buf.writeUInt32LE(process.pid, 16);
    randomBytes(NONCE_BYTES).copy(buf, NONCE_OFFSET);
    const nonce = Buffer.from(buf.subarray(NONCE_OFFSET, NONCE_OFFSET + NONCE_BYTES));
    pool = new Pool(this.#pools.length, name, buf, slots, size, nonce, this.#addon);
    this.#pools.push(pool);
    this.#bySize.set(size, pool);
    return pool;
  }

  #locate(part: Uint8Array): { pool: Pool; slot: number; offset: number } | undefined {
    for (const pool of this.#pools) {
      const at = pool.locate(part);
      if (at !== undefined) return { pool, ...at };
    }
    return undefined;
  }

  /**
   * A buffer of `size` bytes in shared memory to fill and publish (see `Publisher.loan`); a heap
   * buffer when the pool is full or `size` is below the threshold.
   */
  loan(size: number): Buffer {
    const pool = size >= SHM_THRESHOLD_BYTES ? this.#poolFor(size) : undefined;
    const slot = pool?.acquire() ?? -1;
    if (pool === undefined || slot < 0) {
      this.#stats.heapLoans++;
      return Buffer.allocUnsafe(size);
    }
    pool.loaned[slot] = 1;
    this.#loansOut++;
    this.#stats.loans++;
    const view = pool.view(slot, 0, size);
    this.#loanGuard.register(view, { pool, slot, gen: pool.gens[slot]! }, view);
    return view;
  }

  /** True while some loaned buffer is neither published nor returned. */
  get loansOut(): boolean {
    return this.#loansOut > 0;
  }

  /** Whether `part` is a view into one of this process's pools. */
  isPooled(part: Uint8Array): boolean {
    return this.#pools.length > 0 && this.#locate(part) !== undefined;
  }

  /**
   * Ends the loans among `parts` (after publishing, or to give a buffer back unpublished):
   * the publisher's hold goes; subscribers that got a descriptor keep theirs.
   */
  endLoans(parts: readonly Uint8Array[]): void {
    if (this.#loansOut === 0) return;
    for (const part of parts) {
      const at = this.#locate(part);
      if (at === undefined || at.pool.loaned[at.slot] !== 1) continue;
      this.#loanGuard.unregister(part);
      this.#endLoan(at.pool, at.slot, at.pool.gens[at.slot]!);
    }
  }

  /** {@link endLoans} for the loaned buffers anywhere inside a message value. */
  endLoansIn(value: unknown): void {
    if (this.#loansOut === 0) return;
    const found: Uint8Array[] = [];
    walk(value, (u) => {
      found.push(u);
      return u;
    });
    this.endLoans(found);
  }

  /**
   * `value` (a message) with every pooled buffer inside replaced by a heap copy; objects on the
   * way are copied, the rest shared. For what keeps a message beyond the publish call.
   */
  detachValue<T>(value: T): T {
    if (this.#pools.length === 0) return value;
    return walk(value, (u) => (this.#locate(u) === undefined ? u : Buffer.from(u))) as T;
  }

  #endLoan(pool: Pool, slot: number, gen: number): void {
    if (pool.gens[slot] !== gen || pool.loaned[slot] !== 1) return;
    pool.loaned[slot] = 0;
    this.#loansOut--;
    pool.unref(slot);
  }

  /**
   * `frames` with every part that lies in a pool replaced by a heap copy (once per frames array):
   * what goes over a socket, waits for credit, or is kept, must not change when a slot is reused.
   */
  detach(frames: Uint8Array[]): Uint8Array[] {
    if (this.#pools.length === 0) return frames;
    let out = this.#detached.get(frames);
    if (out !== undefined) return out;
    out = frames;
    for (let i = 0; i < frames.length; i++) {
      if (this.#locate(frames[i]!) === undefined) continue;
      if (out === frames) out = frames.slice();
      out[i] = Buffer.from(frames[i]!);
    }
    this.#detached.set(frames, out);
    return out;
  }

  /** Where `frames`' parts lie in shared memory, copying large heap parts into one slot once. */
  #placement(frames: Uint8Array[]): Placement | null {
    const cached = this.#placed.get(frames);
    if (cached !== undefined && (cached === null || this.#valid(cached))) return cached;
    const parts: PartDescriptor[] = new Array<PartDescriptor>(frames.length);
    const copy: number[] = [];
    let copyBytes = 0;
    let shared = 0;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const at = i > 0 ? this.#locate(f) : undefined;
      // A view of a slot nobody holds (a loan published twice) is sent like a heap buffer.
      if (at !== undefined && at.pool.refs[at.slot]! > 0) {
        parts[i] = {
          pool: at.pool.id,
          slot: at.slot,
          gen: at.pool.gens[at.slot]!,
          offset: at.offset,
          length: f.length,
        };
        shared++;
      } else {
        parts[i] = { pool: INLINE, slot: 0, gen: 0, offset: 0, length: f.length };
        if (i > 0 && f.length >= SHM_THRESHOLD_BYTES) {
          copy.push(i);
          copyBytes += (f.length + 63) & ~63;
        }
      }
    }
    if (shared === 0 && copy.length === 0) {
      this.#placed.set(frames, null);
      return null;
    }
    if (copy.length > 0) {
      const pool = this.#poolFor(copyBytes);
      const slot = pool?.acquire() ?? -1;
      if (pool !== undefined && slot >= 0) {
        let off = 0;
        for (const i of copy) {
          const f = frames[i]!;
          pool.buf.set(f, pool.data + slot * pool.slotBytes + off);
          parts[i] = { pool: pool.id, slot, gen: pool.gens[slot]!, offset: off, length: f.length };
          off += (f.length + 63) & ~63;
        }
        // The placement's own hold ends once this turn's subscribers took theirs.
        queueMicrotask(() => pool.unref(slot));
      } else {
        this.#stats.exhausted++;
        if (shared === 0) return null; // not cached: a slot may be free next time
      }
    }
    const slots: SlotRelease[] = [];
    for (const p of parts) {
      if (p.pool !== INLINE && !slots.some((s) => s.pool === p.pool && s.slot === p.slot)) {
        slots.push({ pool: p.pool, slot: p.slot, gen: p.gen });
      }
    }
    const placement = { parts, slots };
    this.#placed.set(frames, placement);
    return placement;
  }

  #valid(p: Placement): boolean {
    for (const s of p.slots) {
      const pool = this.#pools[s.pool]!;
      if (pool.gens[s.slot] !== s.gen || pool.refs[s.slot]! <= 0) return false;
    }
    return true;
  }

  /**
   * The frames to send a large message to a subscriber as a descriptor, or null to send it over
   * the socket (peer not on this host or not yet accepted the pool, no slot free, nothing large).
   * Offers a pool the peer has not been offered yet through `sendOffer`.
   */
  encode(
    peer: ShmPeer | null,
    header: RecordHeader,
    frames: Uint8Array[],
    sendOffer: (frame: Buffer) => void,
  ): Buffer[] | null {
    if (peer === null) return null;
    const p = this.#placement(frames);
    if (p === null) return null;
    let ready = true;
    for (const s of p.slots) {
      if (peer.accepted.has(s.pool)) continue;
      ready = false;
      if (!peer.offered.has(s.pool)) {
        peer.offered.add(s.pool);
        const pool = this.#pools[s.pool]!;
        sendOffer(encodeOffer(pool.id, pool.nonce, pool.name));
      }
    }
    if (!ready) return null;
    const out: Buffer[] = [encodeShmBlob(header, p.parts)];
    for (let i = 0; i < p.parts.length; i++) if (p.parts[i]!.pool === INLINE) out.push(frames[i] as Buffer);
    for (const s of p.slots) {
      this.#pools[s.pool]!.ref(s.slot);
      const key = `${s.pool}:${s.slot}:${s.gen}`;
      peer.holds.set(key, (peer.holds.get(key) ?? 0) + 1);
    }
    this.#stats.descriptorsSent++;
    return out;
  }

  /** The peer mapped pool `pool` and found `nonce` there: descriptors of it may go to the peer. */
  accept(peer: ShmPeer, pool: number, nonce: Buffer): void {
    const p = this.#pools[pool];
    if (p === undefined || !peer.offered.has(pool) || !p.nonce.equals(nonce)) {
      this.#stats.badAccepts++;
      return;
    }
    peer.accepted.add(pool);
  }

  /** The peer gives slots back. Slots it does not hold are counted and ignored. */
  release(peer: ShmPeer, slots: readonly SlotRelease[]): void {
    for (const s of slots) {
      const key = `${s.pool}:${s.slot}:${s.gen}`;
      const n = peer.holds.get(key);
      if (n === undefined) {
        this.#stats.badReleases++;
        continue;
      }
      if (n === 1) peer.holds.delete(key);
      else peer.holds.set(key, n - 1);
      this.#pools[s.pool]!.unref(s.slot);
    }
  }

  /** The peer is gone (closed, crashed, timed out): every slot it held is released. */
  dropPeer(peer: ShmPeer): void {
    for (const [key, n] of peer.holds) {
      const [pool, slot] = key.split(":").map(Number) as [number, number];
      for (let i = 0; i < n; i++) this.#pools[pool]!.unref(slot);
    }
    peer.holds.clear();
    peer.accepted.clear();
    peer.offered.clear();
  }
}

/** Maps every Uint8Array inside `v` through `fn`; copies the objects and arrays whose content changed. */
function walk(v: unknown, fn: (u: Uint8Array) => Uint8Array, depth = 0): unknown {
  if (v instanceof Uint8Array) return fn(v);
  if (typeof v !== "object" || v === null || depth > 64) return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const e: unknown = v[i];
      const m = walk(e, fn, depth + 1);
      if (m !== e) (out ??= v.slice())[i] = m;
    }
    return out ?? v;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, e] of Object.entries(v)) {
    const m = walk(e, fn, depth + 1);
    if (m !== e) (out ??= { ...(v as Record<string, unknown>) })[k] = m;
  }
  return out ?? v;
}

/**
 * Removes Myelin pools in /dev/shm whose writing process is gone (killed before it could unlink
 * them): the pid and start time in the name name no live process. Other users' pools are left.
 * @returns the names removed
 */
export function sweepOrphanPools(dir = "/dev/shm"): string[] {
  const addon = shmAddon();
  if (addon === null) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(POOL_NAME_PREFIX)) continue;
    if (!poolOwnerGone(name)) continue;
    try {
      if (addon.unlink(`/${name}`)) removed.push(name);
    } catch {
      // another user's, or gone meanwhile
    }
  }
  return removed;
}

/** True when the process that created pool `name` (`myelin-shm-<pid>-<start>-…`) no longer runs. */
export function poolOwnerGone(name: string): boolean {
  const m = /^\/?myelin-shm-(\d+)-(\d+)-/.exec(name);
  if (m === null) return false;
  const start = processStartTime(Number(m[1]), (p) => readFileSync(p, "latin1"));
  return start === undefined || start !== m[2];
}
