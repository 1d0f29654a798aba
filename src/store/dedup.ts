/**
 * Publisher-supplied message ids of one durable topic, remembered for a window of time so a
 * publisher that retries after a lost confirm does not store the message twice. The id travels in
 * the record header (see docs/store-format.md), so the window is rebuilt from the log after a
 * restart.
 */
import { MyelinError } from "../errors.js";

/** Largest message id, in UTF-8 bytes. */
export const MAX_MSG_ID_BYTES = 256;
/** First byte of a record header that carries a message id. */
const ID_HEADER_TAG = 0x01;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The record header of a message with id `id`: one tag byte, then the id in UTF-8.
 * @throws MyelinError ERR_INVALID_ARGUMENT for an empty id or one over MAX_MSG_ID_BYTES bytes
 */
export function encodeIdHeader(id: string): Uint8Array {
  const bytes = encoder.encode(id);
  if (bytes.length === 0 || bytes.length > MAX_MSG_ID_BYTES) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `message id must be 1 to ${MAX_MSG_ID_BYTES} bytes of UTF-8, got ${bytes.length}`,
    );
  }
  const out = new Uint8Array(bytes.length + 1);
  out[0] = ID_HEADER_TAG;
  out.set(bytes, 1);
  return out;
}

/** The message id in a record header, or undefined when the header carries none. */
export function decodeIdHeader(header: Uint8Array): string | undefined {
  if (header.length < 2 || header[0] !== ID_HEADER_TAG) return undefined;
  try {
    return decoder.decode(header.subarray(1));
  } catch {
    return undefined;
  }
}

/** Ids seen within the window, with the seq they were stored under (or the append in progress). */
export class DedupWindow {
  readonly #windowMs: number;
  readonly #maxEntries: number;
  readonly #seqs = new Map<string, { seq: number | Promise<number>; at: number }>();
  /** Ids in the order they were added, with when. */
  #order: { id: string; at: number }[] = [];
  #head = 0;

  /**
   * @param windowMs how long an id is remembered, in ms
   * @param maxEntries most ids remembered; the oldest go first beyond it (default 1,000,000)
   */
  constructor(windowMs: number, maxEntries = 1_000_000) {
    this.#windowMs = windowMs;
    this.#maxEntries = maxEntries;
  }

  /** Ids remembered now. */
  get size(): number {
    return this.#seqs.size;
  }

  /** The seq of `id` if it was stored within the window (a promise while its append runs). */
  get(id: string, now: number): number | Promise<number> | undefined {
    this.#evict(now);
    return this.#seqs.get(id)?.seq;
  }

  /** Remembers `id` as stored under `seq` (or being stored: a promise of the seq). */
  set(id: string, seq: number | Promise<number>, now: number): void {
    const known = this.#seqs.get(id);
    if (known === undefined) this.#order.push({ id, at: now });
    this.#seqs.set(id, { seq, at: known?.at ?? now });
    this.#evict(now);
  }

  /** Forgets `id` (its append failed: a retry must store it). */
  delete(id: string): void {
    this.#seqs.delete(id);
  }

  #evict(now: number): void {
    const order = this.#order;
    while (
      this.#head < order.length &&
      (order[this.#head]!.at < now - this.#windowMs || order.length - this.#head > this.#maxEntries)
    ) {
      const e = order[this.#head++]!;
      // Only the entry this order slot made (the id may have been forgotten and stored again).
      if (this.#seqs.get(e.id)?.at === e.at) this.#seqs.delete(e.id);
    }
    if (this.#head > 1024 && this.#head * 2 > order.length) {
      this.#order = order.slice(this.#head);
      this.#head = 0;
    }
  }
}
