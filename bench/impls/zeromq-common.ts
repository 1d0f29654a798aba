/** Shared by the zeromq impls: a naive `for await` receive loop behind the {@link Receiver} interface. */
import type * as zmq from "zeromq";
import type { Receiver } from "../impl.js";

export function receiveLoop(sock: zmq.Subscriber | zmq.Pull): Receiver {
  let cb: (payload: Uint8Array) => void = () => undefined;
  let closed = false;
  const loop = (async () => {
    try {
      for await (const [msg] of sock) if (msg !== undefined) cb(msg);
    } catch (err) {
      if (!closed) throw err;
    }
  })();
  return {
    onMessage: (fn) => {
      cb = fn;
    },
    close: async () => {
      closed = true;
      sock.linger = 0;
      sock.close();
      await loop.catch(() => undefined);
    },
  };
}
