/**
 * The one receive loop every Myelin socket runs: read messages until the socket closes, hand each
 * to `handle`, and turn anything `handle` throws into a call of `onError` — a bad message from a
 * peer is dropped and reported, never the end of the loop.
 */

/** Runs until `sock.receive()` rejects (the socket was closed). */
export async function receiveLoop(
  sock: { receive(): Promise<Buffer[]> },
  handle: (msg: Buffer[]) => void,
  onError: (err: Error, msg: Buffer[]) => void,
): Promise<void> {
  for (;;) {
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
