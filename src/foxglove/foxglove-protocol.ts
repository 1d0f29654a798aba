/**
 * The Foxglove server's protocol, its server and its client. A hub running the Foxglove server
 * serves its status on the hidden node `_foxglove`, as one JSON {@link FoxgloveStatus} in the
 * message of a std_srvs/Trigger reply; `myelin foxglove status` and `myelin doctor` read it
 * through {@link fetchFoxgloveStatus}.
 */
import { DecodeError } from "../errors.js";
import { std_srvs } from "../msgs/index.js";
import {
  defineProtocol,
  fetchJsonStatus,
  serveProtocol,
  type CallOptions,
  type Node,
  type ProtocolServer,
} from "../node/index.js";
import type { ClientStatus } from "./session.js";
import type { RateCap } from "./rate-cap.js";

/** What `myelin foxglove status` shows. */
export interface FoxgloveStatus {
  /** The address clients connect to, without the token. */
  url: string;
  host: string;
  port: number;
  tls: boolean;
  startedAt: number;
  capabilities: string[];
  sendBudgetBytes: number;
  maxHz: RateCap[];
  channels: number;
  services: number;
  /** Topics and services clients cannot see, with why. */
  notAdvertised: { name: string; reason: string }[];
  refused: { noToken: number; badToken: number; badRequest: number; tooMany: number };
  clients: ClientStatus[];
}

/** The Foxglove server's services. */
export const FOXGLOVE_PROTOCOL = defineProtocol({
  /** The server's status: address, channels, clients, drops per client and topic (JSON in the message). */
  status: { service: "/_foxglove/status", type: std_srvs.Trigger },
});

/** The Foxglove server's protocol type. */
export type FoxgloveProtocol = typeof FOXGLOVE_PROTOCOL;

/** Serves the Foxglove server's status on `node`; `status` is asked on each call. */
export function serveFoxgloveStatus(node: Node, status: () => FoxgloveStatus): Promise<ProtocolServer> {
  return serveProtocol(node, FOXGLOVE_PROTOCOL, {
    status: () => ({ success: true, message: JSON.stringify(status()) }),
  });
}

/**
 * Asks the hub's Foxglove server for its status, through `node`.
 * @throws ServiceError ERR_NO_SERVER when no Foxglove server runs; TimeoutError ERR_TIMEOUT when it
 *   did not answer within `opts.timeoutMs` (default 5000 ms)
 * @throws DecodeError ERR_DECODE when the reply is not a Foxglove status
 */
export async function fetchFoxgloveStatus(node: Node, opts: CallOptions = {}): Promise<FoxgloveStatus> {
  const st = await fetchJsonStatus(node, FOXGLOVE_PROTOCOL.status, opts);
  const where = `the reply of ${FOXGLOVE_PROTOCOL.status.service}`;
  const o = st as Partial<FoxgloveStatus> | null;
  if (typeof o !== "object" || o === null || typeof o.url !== "string" || !Array.isArray(o.clients)) {
    throw new DecodeError(
      "ERR_DECODE",
      `${where} is not a Foxglove server status; is the hub of another Myelin version?`,
    );
  }
  return o as FoxgloveStatus;
}
