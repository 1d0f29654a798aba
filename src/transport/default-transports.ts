/** The transports nodes and hubs use when their options name none. */
import { MyelinError } from "../errors.js";
import type { Transport, Transports } from "./transport.js";
import { unixTransport, zmqTransport } from "./carriers.js";

/**
 * The carrier of `ipc://` by default: ZeroMQ, or the plain Unix-socket transport when
 * `MYELIN_IPC_TRANSPORT=unix` (a round trip of 1.2–1.3× a raw socket's at moderate load, but a
 * lower bulk throughput on a busy host: docs/performance.md). Every process of a host must use the same one;
 * a connection to a listener on the other carrier goes down saying so (`isCarrierMismatch`).
 */
function ipcTransport(): Transport {
  const v = process.env["MYELIN_IPC_TRANSPORT"] ?? "";
  if (v === "" || v === "zeromq") return zmqTransport;
  if (v === "unix") return unixTransport;
  throw new MyelinError(
    "ERR_INVALID_ARGUMENT",
    `MYELIN_IPC_TRANSPORT must be zeromq (the default) or unix, got '${v}'`,
  );
}

/** ZeroMQ for `tcp://` (across hosts); for `ipc://` (one host) see `MYELIN_IPC_TRANSPORT`. */
export const DEFAULT_TRANSPORTS: Transports = Object.freeze({ ipc: ipcTransport(), tcp: zmqTransport });
