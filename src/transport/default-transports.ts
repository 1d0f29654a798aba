/** The transports nodes and hubs use when their options name none. */
import type { Transports } from "./transport.js";
import { unixTransport } from "./unix/unix-transport.js";
import { zmqTransport } from "./zmq/zmq-transport.js";

/**
 * A plain Unix socket for `ipc://` (one host: no I/O thread in the path), ZeroMQ for `tcp://`
 * (across hosts).
 */
export const DEFAULT_TRANSPORTS: Transports = Object.freeze({ ipc: unixTransport, tcp: zmqTransport });
