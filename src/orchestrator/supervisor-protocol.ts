/**
 * The supervisor's protocol and its client. The supervisor (`supervisor.ts`, on the hidden node
 * `_supervisor` of the hub process) serves {@link SUPERVISOR_PROTOCOL}; `myelin up`, `down`, `ps`,
 * `logs`, `scale` and `restart` call it through {@link supervisorClient}.
 */
import { myelin_msgs } from "../msgs/index.js";
import {
  defineProtocol,
  protocolClient,
  type ClientOptions,
  type Node,
  type ProtocolClient,
} from "../node/index.js";

/** The supervisor's services. */
export const SUPERVISOR_PROTOCOL = defineProtocol({
  /** Runs a resolved launch spec, waiting for readiness. */
  apply: { service: "/_supervisor/apply", type: myelin_msgs.SupervisorApply },
  /** The supervised processes. */
  ps: { service: "/_supervisor/ps", type: myelin_msgs.SupervisorPs },
  /** Sets the number of replicas of a node. */
  scale: { service: "/_supervisor/scale", type: myelin_msgs.SupervisorControl },
  /** Restarts a node's processes one replica at a time. */
  restart: { service: "/_supervisor/restart", type: myelin_msgs.SupervisorControl },
  /** Stops every supervised process (and the hub, if asked). */
  down: { service: "/_supervisor/down", type: myelin_msgs.SupervisorDown },
  /** The last log lines of a node's processes. */
  logs: { service: "/_supervisor/logs", type: myelin_msgs.SupervisorLogs },
});

/** The supervisor's protocol type. */
export type SupervisorProtocol = typeof SUPERVISOR_PROTOCOL;

/** A typed client of the supervisor. */
export type SupervisorClient = ProtocolClient<SupervisorProtocol>;

/**
 * A client of the supervisor of the hub `node` talks to: `await sup.ps({})`. Calls wait
 * `opts.timeoutMs` (default 5000 ms) unless a call says otherwise.
 * @throws MyelinError ERR_INVALID_ARGUMENT for an option out of range
 */
export function supervisorClient(node: Node, opts: ClientOptions = {}): SupervisorClient {
  return protocolClient(node, SUPERVISOR_PROTOCOL, opts);
}
