/**
 * The shared-memory frames of the data plane, sans-IO: frame kind `Shm` (11) with a sub-kind in
 * byte 3. Little-endian, like the other hot frames.
 *
 * - OFFER (publisher → subscriber): u32 pool id, 16-byte nonce, pool name (UTF-8). The subscriber
 *   maps the pool and answers ACCEPT only if it finds the same nonce there (same memory).
 * - ACCEPT (subscriber → publisher): u32 pool id, 16-byte nonce.
 * - BLOB (publisher → subscriber): the 24-byte record header, u32 part count, then per part a
 *   20-byte descriptor: u32 pool id (0xffffffff: the part is the next inline frame), u32 slot,
 *   u32 generation, u32 offset in the slot, u32 length. Inline parts follow as frames.
 * - RELEASE (subscriber → publisher): u32 count, then per slot: u32 pool id, u32 slot, u32 generation.
 */
import { DecodeError } from "../../errors.js";
import {
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameKind,
  PREAMBLE_BYTES,
  RECORD_HEADER_BYTES,
  type RecordHeader,
} from "../frame.js";

/** Sub-kinds of a Shm frame. */
export const ShmKind = { Offer: 1, Accept: 2, Blob: 3, Release: 4 } as const;
export type ShmKind = (typeof ShmKind)[keyof typeof ShmKind];

/** The pool id of an inline part in a BLOB descriptor. */
export const INLINE = 0xffffffff;
/** Bytes of one BLOB part descriptor. */
export const DESCRIPTOR_BYTES = 20;
/** Most parts one BLOB may describe. */
export const MAX_PARTS = 4096;
/** Most slots one RELEASE may name. */
export const MAX_RELEASES = 65536;

/** Where one part of a message lies: in a pool's slot, or inline (pool = INLINE). */
export interface PartDescriptor {
  pool: number;
  slot: number;
  gen: number;
  offset: number;
  length: number;
}

/** One slot a subscriber gives back. */
export interface SlotRelease {
  pool: number;
  slot: number;
  gen: number;
}

/** A parsed Shm frame. */
export type ShmFrame =
  | { sub: typeof ShmKind.Offer; pool: number; nonce: Buffer; name: string }
  | { sub: typeof ShmKind.Accept; pool: number; nonce: Buffer }
  | { sub: typeof ShmKind.Blob; header: RecordHeader; parts: PartDescriptor[]; inline: Buffer[] }
  | { sub: typeof ShmKind.Release; slots: SlotRelease[] };

const HEAD = PREAMBLE_BYTES + 1;

function start(sub: ShmKind, bodyBytes: number): Buffer {
  const b = Buffer.allocUnsafe(HEAD + bodyBytes);
  b[0] = FRAME_MAGIC;
  b[1] = FRAME_VERSION;
  b[2] = FrameKind.Shm;
  b[3] = sub;
  return b;
}

/** Encodes an OFFER of pool `pool` named `name`. */
export function encodeOffer(pool: number, nonce: Buffer, name: string): Buffer {
  const n = Buffer.from(name, "utf8");
  const b = start(ShmKind.Offer, 4 + 16 + n.length);
  b.writeUInt32LE(pool, HEAD);
  nonce.copy(b, HEAD + 4, 0, 16);
  n.copy(b, HEAD + 20);
  return b;
}

/** Encodes an ACCEPT of pool `pool`. */
export function encodeAccept(pool: number, nonce: Buffer): Buffer {
  const b = start(ShmKind.Accept, 20);
  b.writeUInt32LE(pool, HEAD);
  nonce.copy(b, HEAD + 4, 0, 16);
  return b;
}

/** Encodes the first frame of a BLOB; the inline parts follow it as frames, in order. */
export function encodeShmBlob(h: RecordHeader, parts: readonly PartDescriptor[]): Buffer {
  const b = start(ShmKind.Blob, RECORD_HEADER_BYTES + 4 + parts.length * DESCRIPTOR_BYTES);
  let at = HEAD;
  b.writeUInt32LE(h.sid, at);
  b.writeUInt16LE(h.pub, at + 4);
  b.writeUInt16LE(0, at + 6);
  b.writeDoubleLE(h.seq, at + 8);
  b.writeUInt32LE(h.sec >>> 0, at + 16);
  b.writeUInt32LE(h.nsec, at + 20);
  at += RECORD_HEADER_BYTES;
  b.writeUInt32LE(parts.length, at);
  at += 4;
  for (const p of parts) {
    b.writeUInt32LE(p.pool, at);
    b.writeUInt32LE(p.slot, at + 4);
    b.writeUInt32LE(p.gen >>> 0, at + 8);
    b.writeUInt32LE(p.offset, at + 12);
    b.writeUInt32LE(p.length, at + 16);
    at += DESCRIPTOR_BYTES;
  }
  return b;
}

/** Encodes a RELEASE of `slots`. */
export function encodeRelease(slots: readonly SlotRelease[]): Buffer {
  const b = start(ShmKind.Release, 4 + slots.length * 12);
  b.writeUInt32LE(slots.length, HEAD);
  let at = HEAD + 4;
  for (const s of slots) {
    b.writeUInt32LE(s.pool, at);
    b.writeUInt32LE(s.slot, at + 4);
    b.writeUInt32LE(s.gen >>> 0, at + 8);
    at += 12;
  }
  return b;
}

function need(first: Buffer, bytes: number, what: string, exact: boolean): void {
  if (exact ? first.length !== bytes : first.length < bytes) {
    throw new DecodeError(
      "ERR_DECODE",
      `shm ${what} frame must be ${exact ? "" : "at least "}${bytes} bytes, got ${first.length}`,
    );
  }
}

/**
 * Parses a Shm frame (its first frame and the frames after it). Checks the layout only; whether
 * the slots exist is for the reader to check against the pool.
 * @throws DecodeError ERR_DECODE naming what is wrong
 */
export function parseShmFrame(first: Buffer, rest: Buffer[]): ShmFrame {
  need(first, HEAD, "", false);
  const sub = first[3];
  switch (sub) {
    case ShmKind.Offer: {
      need(first, HEAD + 21, "offer", false);
      const name = first.toString("utf8", HEAD + 20);
      return {
        sub,
        pool: first.readUInt32LE(HEAD),
        nonce: Buffer.from(first.subarray(HEAD + 4, HEAD + 20)),
        name,
      };
    }
    case ShmKind.Accept:
      need(first, HEAD + 20, "accept", true);
      return { sub, pool: first.readUInt32LE(HEAD), nonce: Buffer.from(first.subarray(HEAD + 4, HEAD + 20)) };
    case ShmKind.Blob: {
      need(first, HEAD + RECORD_HEADER_BYTES + 4, "blob", false);
      let at = HEAD;
      const header: RecordHeader = {
        sid: first.readUInt32LE(at),
        pub: first.readUInt16LE(at + 4),
        seq: first.readDoubleLE(at + 8),
        sec: first.readUInt32LE(at + 16),
        nsec: first.readUInt32LE(at + 20),
      };
      at += RECORD_HEADER_BYTES;
      const count = first.readUInt32LE(at);
      at += 4;
      if (count === 0 || count > MAX_PARTS) {
        throw new DecodeError("ERR_DECODE", `shm blob frame: ${count} parts, expected 1 to ${MAX_PARTS}`);
      }
      need(first, at + count * DESCRIPTOR_BYTES, "blob", true);
      const parts: PartDescriptor[] = new Array<PartDescriptor>(count);
      let inline = 0;
      for (let i = 0; i < count; i++) {
        const p = {
          pool: first.readUInt32LE(at),
          slot: first.readUInt32LE(at + 4),
          gen: first.readUInt32LE(at + 8) | 0,
          offset: first.readUInt32LE(at + 12),
          length: first.readUInt32LE(at + 16),
        };
        if (p.pool === INLINE) inline++;
        parts[i] = p;
        at += DESCRIPTOR_BYTES;
      }
      if (inline !== rest.length) {
        throw new DecodeError(
          "ERR_DECODE",
          `shm blob frame describes ${inline} inline parts but ${rest.length} frames follow`,
        );
      }
      return { sub, header, parts, inline: rest };
    }
    case ShmKind.Release: {
      need(first, HEAD + 4, "release", false);
      const count = first.readUInt32LE(HEAD);
      if (count > MAX_RELEASES)
        throw new DecodeError(
          "ERR_DECODE",
          `shm release frame names ${count} slots, at most ${MAX_RELEASES}`,
        );
      need(first, HEAD + 4 + count * 12, "release", true);
      const slots: SlotRelease[] = new Array<SlotRelease>(count);
      let at = HEAD + 4;
      for (let i = 0; i < count; i++) {
        slots[i] = {
          pool: first.readUInt32LE(at),
          slot: first.readUInt32LE(at + 4),
          gen: first.readUInt32LE(at + 8) | 0,
        };
        at += 12;
      }
      return { sub, slots };
    }
    default:
      throw new DecodeError("ERR_DECODE", `unknown shm frame sub-kind ${sub}`);
  }
}
