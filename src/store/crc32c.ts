/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven, slicing by 8. This is the
 * checksum of every store segment record and file header (docs/store-format.md). Check value:
 * `crc32c("123456789") === 0xe3069283`.
 */

const POLY = 0x82f63b78;

/** Eight 256-entry tables: T[0] is the classic byte table, T[k] advances k more zero bytes. */
const TABLE = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i]!;
    for (let k = 1; k < 8; k++) {
      c = (t[c & 0xff]! ^ (c >>> 8)) >>> 0;
      t[k * 256 + i] = c;
    }
  }
  return t;
})();

/**
 * CRC-32C of `bytes[start, end)`, as an unsigned 32-bit integer. Pass a previous result as
 * `crc` to continue a checksum over several ranges.
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  const t = TABLE;
  let c = ~crc | 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c ^= bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    c =
      t[1792 + (c & 0xff)]! ^
      t[1536 + ((c >>> 8) & 0xff)]! ^
      t[1280 + ((c >>> 16) & 0xff)]! ^
      t[1024 + (c >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
