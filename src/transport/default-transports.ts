/** The transports nodes and hubs use when their options name none. */
import { MyelinError } from "../errors.js";
import type { Transport, Transports } from "./transport.js";
import { unixTransport, zmqTransport } from "./carriers.js";

/**
 * The carrier of `ipc://`: the plain Unix-socket transport by default (a 64 B round trip of
 * 1.2–1.3× a raw socket's, against 3.5× over ZeroMQ's I/O threads; level with ZeroMQ's bulk
 * throughput on a quiet host, behind it on a saturated one: docs/performance.md), or ZeroMQ when
 * `MYELIN_IPC_TRANSPORT=zeromq`. Every process of a host must use the same one; a connection to a
 * listener on the other carrier goes down saying so (`isCarrierMismatch`).
 */
function ipcTransport(): Transport {
  const v = process.env["MYELIN_IPC_TRANSPORT"] ?? "";
  if (v === "" || v === "unix") return unixTransport;
  if (v === "zeromq") return zmqTransport;
  throw new MyelinError(
    "ERR_INVALID_ARGUMENT",
    `MYELIN_IPC_TRANSPORT must be unix (the default) or zeromq, got '${v}'`,
  );
}

/** ZeroMQ for `tcp://` (across hosts, CURVE); for `ipc://` (one host) see `MYELIN_IPC_TRANSPORT`. */
export const DEFAULT_TRANSPORTS: Transports = Object.freeze({ ipc: ipcTransport(), tcp: zmqTransport });
