/**
 * The Unix carrier's wire (sans-IO): the greeting, the framing of a message, cutting a byte range
 * into messages, and telling a ZeroMQ peer's greeting from ours.
 *
 * A message is `u32 length` (of what follows), `u16 frame count`, and per frame `u32 length`, then
 * the frames' bytes one after the other, all big-endian (docs/wire-format.md).
 */
import type { Frames } from "../transport.js";

/**
 * What each side sends first: `MYELIN-UNIX/2` padded with zeros to 16 bytes. The connecting side
 * sends it on connect, and nothing more until the listener has answered with the same 16 bytes.
 *
 * Waiting matters when a ZeroMQ listener is on the path (a process with the other carrier): libzmq
 * takes our first byte (`M`) for the length of a ZMTP 1.0 identity (77 bytes) and waits for it,
 * sending its own signature (`0xFF` …) meanwhile, which the connecting side recognises. Had
 * messages followed the greeting at once, libzmq would have read them as that identity, and it
 * can abort its whole process on an identity it cannot hand to its session.
 */
export const GREETING: Buffer = Buffer.alloc(16);
GREETING.write("MYELIN-UNIX/2", "latin1");

/** Bytes of a message's header before its frames: length, count, one length per frame. */
export function headerBytes(frameCount: number): number {
  return 6 + 4 * frameCount;
}

/**
 * True when `b` starts like a ZeroMQ (ZMTP 3) greeting: `0xFF`, 8 bytes, `0x7F`. A peer that sends
 * it uses ZeroMQ for this `ipc://` endpoint where this process uses the Unix carrier.
 */
export function looksLikeZmtp(b: Buffer): boolean {
  return b.length >= 10 && b[0] === 0xff && b[9] === 0x7f;
}

/**
 * A ZMTP 3.0 greeting naming a security mechanism no ZeroMQ peer uses (`MYELIN-UNIX`): sent to a
 * ZeroMQ peer that connected to a Unix-carrier listener, so its handshake fails with a mechanism
 * mismatch (which it reports) instead of a silent reconnect loop.
 */
export const ZMTP_REFUSAL: Buffer = (() => {
  const g = Buffer.alloc(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3; // version 3.0
  g[11] = 0;
  g.write("MYELIN-UNIX", 12, "latin1");
  return g;
})();

/** Why a byte stream is not valid carrier framing (the connection must be reset). */
export class FramingError extends Error {}

/**
 * Checks a message's declared length (what follows its 4-byte prefix).
 * @throws FramingError when it cannot be a message within `maxMessageBytes`
 */
export function checkTotal(total: number, maxMessageBytes: number): number {
  if (total > maxMessageBytes + 2 + 4 * 65535 || total < 2) {
    throw new FramingError(`a message of ${total} bytes is over the limit of ${maxMessageBytes}`);
  }
  return total;
}

/**
 * Delivers the whole messages in `buf[start, end)` to `onMessage`, frames as views into `buf` (no
 * copy), and returns the offset of the first byte not consumed (the start of a message still
 * arriving). Stops early, returning `end`, when `onMessage` returns false (the reader was closed).
 * @throws FramingError when a message is malformed or over `maxMessageBytes`
 */
export function cutMessages(
  buf: Buffer,
  start: number,
  end: number,
  maxMessageBytes: number,
  onMessage: (frames: Frames) => boolean,
): number {
  let off = start;
  while (end - off >= 4) {
    const total = checkTotal(buf.readUInt32BE(off), maxMessageBytes);
    if (end - off - 4 < total) break;
    const s = off + 4;
    const count = buf.readUInt16BE(s);
    const frames: Frames = new Array<Buffer>(count);
    let p = s + 2 + 4 * count;
    if (p > s + total) throw new FramingError(`a message declares ${count} frames in ${total} bytes`);
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const n = buf.readUInt32BE(s + 2 + 4 * i);
      if (p + n > s + total) throw new FramingError(`frame ${i} overruns its message`);
      frames[i] = buf.subarray(p, p + n);
      p += n;
      bytes += n;
    }
    if (p !== s + total) throw new FramingError(`a message has ${s + total - p} bytes after its frames`);
    if (bytes > maxMessageBytes) {
      throw new FramingError(`a message of ${bytes} bytes is over the limit of ${maxMessageBytes}`);
    }
    off = s + total;
    if (!onMessage(frames)) return end;
  }
  return off;
}
