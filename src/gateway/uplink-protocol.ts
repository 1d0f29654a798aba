/**
 * The uplink's status service and its client. A hub running an uplink serves its status (see
 * {@link UplinkStatus}) as JSON in the message of a std_srvs/Trigger reply on the hidden node
 * `_uplink`; `myelin uplink status` reads it through {@link fetchUplinkStatus}.
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
import type { ForwarderStatus } from "./uplink-forwarder.js";
import type { IngestStatus } from "./uplink-ingest.js";

/** The uplink's services. */
export const UPLINK_PROTOCOL = defineProtocol({
  /** The status of the uplink (JSON in the message). */
  status: { service: "/_uplink/status", type: std_srvs.Trigger },
});

/** What `myelin uplink status` shows. */
export interface UplinkStatus {
  role: "site" | "cloud";
  site: string;
  /** The NATS servers (without credentials). */
  servers: string[];
  state: "connecting" | "connected" | "disconnected" | "closed";
  /** Since when, in ms since the epoch. */
  since: number;
  connects: number;
  disconnects: number;
  /** Volatile messages published on core NATS. */
  volatileSent: number;
  /** Volatile messages dropped because NATS was unreachable (a cut costs these). */
  volatileDropped: number;
  /** One per forwarded durable topic. */
  forwarders: ForwarderStatus[];
  /** One per consumed stream. */
  ingests: IngestStatus[];
  /**
   * Exported durable topics the uplink refuses to forward, with why: work queues, whose
   * consumers' acknowledgements may remove messages before they are forwarded. Absent from hubs
   * older than this field.
   */
  refused?: { topic: string; reason: string }[];
  /**
   * True when a forwarder's backlog is at 80 % of its topic's retention or more, or an exported
   * topic is refused.
   */
  alarm: boolean;
  lastError?: string;
}

/** Serves the uplink's status on `node`; `status` is asked on each call. */
export function serveUplinkStatus(node: Node, status: () => UplinkStatus): Promise<ProtocolServer> {
  return serveProtocol(node, UPLINK_PROTOCOL, {
    status: () => ({ success: true, message: JSON.stringify(status()) }),
  });
}

/**
 * Asks the hub's uplink for its status, through `node`.
 * @throws ServiceError ERR_NO_SERVER when no uplink runs; TimeoutError ERR_TIMEOUT when it did not
 *   answer within `opts.timeoutMs` (default 5000 ms)
 * @throws DecodeError ERR_DECODE when the reply is not an uplink status
 */
export async function fetchUplinkStatus(node: Node, opts: CallOptions = {}): Promise<UplinkStatus> {
  const s = await fetchJsonStatus(node, UPLINK_PROTOCOL.status, opts);
  const o = s as Partial<UplinkStatus> | null;
  if (o === null || typeof o !== "object" || typeof o.site !== "string" || !Array.isArray(o.forwarders)) {
    throw new DecodeError(
      "ERR_DECODE",
      `the reply of ${UPLINK_PROTOCOL.status.service} is not an uplink status; is the hub of another Myelin version?`,
    );
  }
  return o as UplinkStatus;
}
