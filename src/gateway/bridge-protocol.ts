/**
 * The bridges' protocol, its server and its client. A hub running bridges serves the status of
 * every bridge on the hidden node `_bridges`, as a JSON array of {@link BridgeStatus} in the
 * message of a std_srvs/Trigger reply; `myelin bridge status` and `myelin doctor` read it through
 * {@link fetchBridgeStatus}.
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
import type { BridgeStatus } from "./bridge.js";

/** The bridges' services. */
export const BRIDGE_PROTOCOL = defineProtocol({
  /** The status of every bridge of the hub, in configuration order (JSON in the message). */
  status: { service: "/_bridge/status", type: std_srvs.Trigger },
});

/** The bridges' protocol type. */
export type BridgeProtocol = typeof BRIDGE_PROTOCOL;

/** Serves the bridges' status on `node`; `status` is asked on each call. */
export function serveBridgeStatus(
  node: Node,
  status: () => readonly BridgeStatus[],
): Promise<ProtocolServer> {
  return serveProtocol(node, BRIDGE_PROTOCOL, {
    status: () => ({ success: true, message: JSON.stringify(status()) }),
  });
}

/**
 * Asks the hub's bridges for their status, through `node`.
 * @throws ServiceError ERR_NO_SERVER when no bridges run; TimeoutError ERR_TIMEOUT when they did
 *   not answer within `opts.timeoutMs` (default 5000 ms)
 * @throws DecodeError ERR_DECODE when the reply is not a JSON array of bridge statuses
 */
export async function fetchBridgeStatus(node: Node, opts: CallOptions = {}): Promise<BridgeStatus[]> {
  const list = await fetchJsonStatus(node, BRIDGE_PROTOCOL.status, opts);
  const where = `the reply of ${BRIDGE_PROTOCOL.status.service}`;
  const bad = Array.isArray(list)
    ? list.findIndex((b) => typeof (b as { name?: unknown } | null)?.name !== "string")
    : -2;
  if (bad !== -1) {
    throw new DecodeError(
      "ERR_DECODE",
      bad === -2
        ? `${where} is not a JSON array of bridge statuses; is the hub of another Myelin version?`
        : `${where}: entry ${bad} is not a bridge status (it has no name); is the hub of another Myelin version?`,
    );
  }
  return list as BridgeStatus[];
}
