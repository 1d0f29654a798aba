/**
 * Reading the records a raw fetch of the store returns (`myelin_msgs/StoreFetch` with `raw`):
 * records of the store's segment format (docs/store-format.md), back to back. The store checked
 * their checksums when it read them; this walks them and hands out each one's seq, timestamp and
 * payload, a view of the bytes (no copy).
 */
import { DecodeError } from "../errors.js";

/** Bytes of a record before its header bytes: length, CRC, seq, timestamp, header length. */
const RECORD_OVERHEAD_BYTES = 26;
/** Bytes of the fixed part of a record body (seq, timestamp, header length). */
const RECORD_BODY_FIXED_BYTES = 18;
const TWO_32 = 0x1_0000_0000;

/**
 * Calls `fn` for each record of `bytes`, in order, with its index, seq, timestamp (ms since the
 * Unix epoch) and payload (a view of `bytes`); returns how many there were.
 * @throws DecodeError ERR_DECODE when a record's length or header length runs past its end
 */
export function forEachStoredRecord(
  bytes: Uint8Array,
  fn: (index: number, seq: number, timestamp: number, payload: Uint8Array) => void,
): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  let n = 0;
  for (let at = 0; at < end; n++) {
    const body = at + 8 <= end ? dv.getUint32(at, true) : -1;
    const next = at + 8 + body;
    const hlen = body >= RECORD_BODY_FIXED_BYTES && next <= end ? dv.getUint16(at + 24, true) : -1;
    if (hlen < 0 || RECORD_BODY_FIXED_BYTES + hlen > body) {
      throw new DecodeError(
        "ERR_DECODE",
        `stored record ${n} at byte ${at} of ${end} is cut short or malformed; the store and this node may run different Myelin versions`,
      );
    }
    const seq = dv.getUint32(at + 8, true) + dv.getUint32(at + 12, true) * TWO_32;
    const start = at + RECORD_OVERHEAD_BYTES + hlen;
    fn(
      n,
      seq,
      dv.getFloat64(at + 16, true),
      new Uint8Array(bytes.buffer, bytes.byteOffset + start, next - start),
    );
    at = next;
  }
  return n;
}
