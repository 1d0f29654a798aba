/**
 * MCAP timestamps (u64 nanoseconds since the Unix epoch) kept as two numbers, whole seconds and
 * nanoseconds, so that the per-message path of a recording allocates no BigInt: a BigInt is a heap
 * object, and a chunk's index holding tens of thousands of them outlives the young generation. Exact
 * for seconds in [0, 2^32) (until the year 2106); other values take the BigInt path. No I/O.
 */

/** Seconds below this are written without BigInt (2^32: u32 seconds, as ROS times are). */
const FAST_SECONDS = 4_294_967_296;
const NS_PER_S = 1_000_000_000;
const TWO_32 = 4_294_967_296;

/** A time in whole seconds and nanoseconds (0 ≤ nsec < 1e9). */
export interface SecNsec {
  sec: number;
  nsec: number;
}

/** `ns` (bigint nanoseconds since the epoch) as seconds and nanoseconds. */
export function timeFromBigint(ns: bigint): SecNsec {
  const s = ns / 1_000_000_000n;
  let sec = Number(s);
  let nsec = Number(ns - s * 1_000_000_000n);
  if (nsec < 0) {
    sec -= 1;
    nsec += NS_PER_S;
  }
  return { sec, nsec };
}

/** Seconds and nanoseconds as bigint nanoseconds since the epoch. */
export function timeToBigint(sec: number, nsec: number): bigint {
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
}

/** True if (aSec, aNsec) is earlier than (bSec, bNsec). */
export function timeBefore(aSec: number, aNsec: number, bSec: number, bNsec: number): boolean {
  return aSec < bSec || (aSec === bSec && aNsec < bNsec);
}

/**
 * Writes (sec, nsec) as a little-endian u64 of nanoseconds at `o`: without BigInt when sec is a whole
 * number in [0, 2^32) and nsec a whole number in [0, 2^32), which covers every real clock.
 * @throws RangeError when the time is not a u64 of nanoseconds (negative, or beyond it).
 */
export function writeTimeLE(b: Uint8Array, o: number, sec: number, nsec: number): void {
  if (
    !(sec >= 0 && sec < FAST_SECONDS && nsec >= 0 && nsec < TWO_32) ||
    sec !== Math.floor(sec) ||
    nsec !== Math.floor(nsec)
  ) {
    slowWrite(b, o, sec, nsec);
    return;
  }
  // sec * 1e9 = (sec * 1953125) * 2^9, and sec * 1953125 < 2^53: exact.
  const m = sec * 1_953_125;
  let hi = Math.floor(m / 8_388_608); // 2^23
  let lo = (m - hi * 8_388_608) * 512 + nsec; // < 2^33
  if (lo >= TWO_32) {
    lo -= TWO_32;
    hi += 1;
  }
  b[o] = lo;
  b[o + 1] = lo >>> 8;
  b[o + 2] = lo >>> 16;
  b[o + 3] = lo >>> 24;
  b[o + 4] = hi;
  b[o + 5] = hi >>> 8;
  b[o + 6] = hi >>> 16;
  b[o + 7] = hi >>> 24;
}

function slowWrite(b: Uint8Array, o: number, sec: number, nsec: number): void {
  const ns = BigInt(Math.trunc(sec)) * 1_000_000_000n + BigInt(Math.trunc(nsec));
  if (ns < 0n || ns > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`time ${sec} s ${nsec} ns is not a u64 of nanoseconds since the epoch`);
  }
  new DataView(b.buffer, b.byteOffset, b.byteLength).setBigUint64(o, ns, true);
}
