/** The transports nodes and hubs use when their options name none. */
import type { Transports } from "./transport.js";
import { zmqTransport } from "./zmq/zmq-transport.js";

/** ZeroMQ for `ipc://` (one host) and `tcp://` (across hosts). */
export const DEFAULT_TRANSPORTS: Transports = Object.freeze({ ipc: zmqTransport, tcp: zmqTransport });
