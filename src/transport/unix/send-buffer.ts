/**
 * The kernel send buffer of a Unix-carrier socket, enlarged so that what a sender writes in one
 * busy stretch lands in the kernel rather than in Node's write queue.
 *
 * A Unix stream socket holds at most its send buffer in flight (`net.core.wmem_default`, 208 KiB
 * on Linux). The carrier writes on the event loop, so once the kernel is full the rest waits in the
 * process until the event loop polls again, which a publisher busy in a loop does only every few
 * milliseconds, and the subscriber runs dry meanwhile and its credit comes back late
 * (docs/performance.md). With a few MiB, a subscription's credit window of small messages fits in
 * the kernel: the receiver reads it whenever it runs, whatever the sender is doing.
 *
 * The buffer is set through the native addon (native/shm, `setsockopt(SO_SNDBUF)`); without it the
 * socket keeps the host's default and everything works as before, with less in flight. It is a
 * bound, not an allocation: the kernel uses memory only for bytes actually in flight.
 */
import type { Socket } from "node:net";
import { nativeAddon } from "../shm/shm-addon.js";

/**
 * Send buffer asked for, in bytes. Linux doubles it for its bookkeeping and caps the request at
 * `net.core.wmem_max` (often 4 MiB, sometimes 208 KiB: then nothing changes).
 */
export const SEND_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Asks for {@link SEND_BUFFER_BYTES} of kernel send buffer on a connected socket; returns the
 * buffer the kernel granted in bytes, or 0 when it could not be set (no addon, no descriptor).
 */
export function enlargeSendBuffer(sock: Socket): number {
  const addon = nativeAddon();
  if (addon?.socketBuffers === undefined) return 0;
  // Node keeps the descriptor on its internal handle; a socket without one is left as it is.
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return 0;
  const got = addon.socketBuffers(fd, SEND_BUFFER_BYTES);
  return got > 0 ? got : 0;
}
