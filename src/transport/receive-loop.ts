/**
 * The one receive loop every Myelin socket runs: read messages until the socket closes, hand each
 * to `handle`, and turn anything `handle` throws into a call of `onError` — a bad message from a
 * peer is dropped and reported, never the end of the loop.
 *
 * While messages keep arriving, `receive()` resolves at once, as a microtask, and would keep the event
 * loop from ever reaching timers and I/O callbacks (heartbeats, file writes, a recorder's chunk timer).
 * The loop therefore steps aside for one turn of the event loop every {@link YIELD_EVERY_MS} ms.
 */

/** The longest stretch the loop runs without letting timers and I/O callbacks through, in ms. */
export const YIELD_EVERY_MS = 10;

/** Runs until `sock.receive()` rejects (the socket was closed). */
export async function receiveLoop(
  sock: { receive(): Promise<Buffer[]> },
  handle: (msg: Buffer[]) => void,
  onError: (err: Error, msg: Buffer[]) => void,
): Promise<void> {
  let since = performance.now();
  for (;;) {
    if (performance.now() - since >= YIELD_EVERY_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      since = performance.now();
    }
    let msg: Buffer[];
    try {
      msg = await sock.receive();
    } catch {
      return;
    }
    try {
      handle(msg);
    } catch (err) {
      onError(err instanceof Error ? err : new Error(String(err)), msg);
    }
  }
}
