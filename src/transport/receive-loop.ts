/**
 * The one receive loop every Myelin listener and connection runs: read messages until the
 * iteration ends (closed), hand each to `handle`, and turn anything `handle` throws into a call of
 * `onError` — a bad message from a peer is dropped and reported, never the end of the loop.
 *
 * While messages keep arriving, the next one is ready at once, as a microtask, and the loop would
 * keep the event loop from ever reaching timers and I/O callbacks (heartbeats, file writes, a
 * recorder's chunk timer). The loop therefore steps aside for one turn of the event loop every
 * {@link YIELD_EVERY_MS} ms.
 *
 * A carrier that offers push mode (`consume`, the Unix carrier) is read that way instead: each
 * message is handled in the carrier's read callback, with no promise per message, and timers and
 * I/O get their turns between reads.
 */
import type { Pumpable } from "./transport.js";

/** The longest stretch the loop runs without letting timers and I/O callbacks through, in ms. */
export const YIELD_EVERY_MS = 10;

/** Runs until `source` ends. */
export async function receiveLoop<M>(
  source: AsyncIterable<M> & Pumpable<M>,
  handle: (msg: M) => void,
  onError: (err: Error, msg: M) => void,
): Promise<void> {
  if (source.consume !== undefined) {
    try {
      await source.consume((msg) => {
        try {
          handle(msg);
        } catch (err) {
          onError(err instanceof Error ? err : new Error(String(err)), msg);
        }
      });
    } catch {
      // the carrier failed while closing: the loop ends as on close
    }
    return;
  }
  let since = performance.now();
  try {
    for await (const msg of source) {
      try {
        handle(msg);
      } catch (err) {
        onError(err instanceof Error ? err : new Error(String(err)), msg);
      }
      if (performance.now() - since >= YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
  } catch {
    // the carrier failed while closing: the loop ends as on close
  }
}
