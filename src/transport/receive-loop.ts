/**
 * The one receive loop every Myelin listener and connection runs: read messages until the
 * iteration ends (closed), hand each to `handle`, and turn anything `handle` throws into a call of
 * `onError` — a bad message from a peer is dropped and reported, never the end of the loop.
 */

/** Runs until `source` ends. */
export async function receiveLoop<M>(
  source: AsyncIterable<M>,
  handle: (msg: M) => void,
  onError: (err: Error, msg: M) => void,
): Promise<void> {
  try {
    for await (const msg of source) {
      try {
        handle(msg);
      } catch (err) {
        onError(err instanceof Error ? err : new Error(String(err)), msg);
      }
    }
  } catch {
    // the carrier failed while closing: the loop ends as on close
  }
}
