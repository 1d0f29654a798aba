/**
 * The carriers of `ipc://` and `tcp://`, each loaded on its first use (lazy-transport.ts): a process
 * whose `ipc://` goes over the Unix carrier and that never uses `tcp://` or CURVE does not load
 * zeromq.js (its addon and its I/O threads, about 3.4 MiB), and one using ZeroMQ does not load the
 * Unix carrier.
 */
import { lazyTransport } from "./lazy-transport.js";
import type { Transport } from "./transport.js";

/** ZeroMQ (`ipc://`, `tcp://`, CURVE), loaded on first use; see zmq/zmq-transport.ts. */
export const zmqTransport: Transport = lazyTransport(
  "zeromq",
  async () => (await import("./zmq/zmq-transport.js")).zmqTransport,
);

/** The plain Unix-socket carrier (`ipc://`), loaded on first use; see unix/unix-transport.ts. */
export const unixTransport: Transport = lazyTransport(
  "unix",
  async () => (await import("./unix/unix-transport.js")).unixTransport,
);
