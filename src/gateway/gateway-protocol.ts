/**
 * The MQTT gateway's protocol and its client: the status service the gateway serves on its hidden
 * node (`_gateway`), and the topic where the gateway (and, by default, every bridge) reports the
 * messages it refused. `myelin gateway status` and `myelin doctor` call it through
 * {@link gatewayClient}.
 */
import { myelin_msgs } from "../msgs/index.js";
import {
  defineProtocol,
  protocolClient,
  type ClientOptions,
  type Node,
  type ProtocolClient,
} from "../node/index.js";

/** The gateway's services. */
export const GATEWAY_PROTOCOL = defineProtocol({
  /** Listeners, clients, totals, rates and rejects (myelin_msgs/GatewayStatus). */
  status: { service: "/_gateway/status", type: myelin_msgs.GatewayStatus },
});

/** The gateway's protocol type. */
export type GatewayProtocol = typeof GATEWAY_PROTOCOL;

/** A typed client of the gateway. */
export type GatewayClient = ProtocolClient<GatewayProtocol>;

/**
 * Where refused messages are reported by default (myelin_msgs/GatewayReject, best-effort), by the
 * MQTT gateway and by bridges that name no `errorTopic` of their own.
 */
export const GATEWAY_ERRORS_TOPIC = "/_gateway/errors";

/**
 * A client of the MQTT gateway of the hub `node` talks to: `await gw.status({})`.
 * @throws MyelinError ERR_INVALID_ARGUMENT for an option out of range
 */
export function gatewayClient(node: Node, opts: ClientOptions = {}): GatewayClient {
  return protocolClient(node, GATEWAY_PROTOCOL, opts);
}
