/**
 * A node's parameter services: the protocol (`/<node>/list_parameters` and
 * `/<node>/set_parameter`, myelin_msgs), the server every node with a declared parameter runs, and
 * the client `myelin param` uses.
 */
import { MyelinError } from "../errors.js";
import { myelin_msgs } from "../msgs/index.js";
import type { Node } from "./node.js";
import type { Parameter } from "./parameter.js";
import type { ClientOptions } from "./service.js";
import {
  defineProtocol,
  protocolClient,
  serveProtocol,
  type ProtocolClient,
  type ProtocolServer,
} from "./service-protocol.js";

/**
 * The parameter services of the node named `nodeName`.
 * @throws MyelinError ERR_INVALID_ARGUMENT if `nodeName` cannot be a node's name
 */
export function parameterProtocol(nodeName: string) {
  if (typeof nodeName !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(nodeName)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `node name ${JSON.stringify(nodeName)} is not valid: use letters, digits, '_', '-', '.', starting with a letter or '_' (as \`myelin node list\` shows it)`,
    );
  }
  return defineProtocol({
    /** Every parameter: name, kind, value (JSON), description and descriptor. */
    list: { service: `/${nodeName}/list_parameters`, type: myelin_msgs.ListParameters },
    /** Sets one parameter from JSON; replies with the value it has then, or why it refused. */
    set: { service: `/${nodeName}/set_parameter`, type: myelin_msgs.SetParameter },
  });
}

/** The parameter protocol's type (the same for every node). */
export type ParameterProtocol = ReturnType<typeof parameterProtocol>;

/** A typed client of one node's parameters. */
export type ParameterClient = ProtocolClient<ParameterProtocol>;

/**
 * A client of the parameters of the node named `nodeName`, through `node`.
 * @throws MyelinError ERR_INVALID_ARGUMENT for a name no node can have, or an option out of range
 */
export function parameterClient(node: Node, nodeName: string, opts: ClientOptions = {}): ParameterClient {
  return protocolClient(node, parameterProtocol(nodeName), opts);
}

/**
 * Serves the parameters of `node` (those in `params`, read on each call): listing them, and setting
 * one from JSON. A refused value (unknown parameter, not JSON, wrong kind, out of range, read-only)
 * is a reply with `success` false and the reason, not an error.
 */
export function serveParameters(node: Node, params: ReadonlyMap<string, Parameter>): Promise<ProtocolServer> {
  return serveProtocol(node, parameterProtocol(node.name), {
    list: () => {
      const ps = [...params.values()];
      return {
        names: ps.map((p) => p.name),
        kinds: ps.map((p) => p.spec.type),
        values_json: ps.map((p) => JSON.stringify(p.value)),
        descriptions: ps.map((p) => p.spec.description ?? ""),
        descriptors: ps.map((p) => ({
          name: p.name,
          kind: p.spec.type,
          description: p.spec.description ?? "",
          read_only: p.spec.readOnly === true,
          ...(p.spec.min !== undefined ? { min: p.spec.min } : {}),
          ...(p.spec.max !== undefined ? { max: p.spec.max } : {}),
          default_json: JSON.stringify(p.spec.default),
        })),
      };
    },
    set: (req) => {
      const p = params.get(req.name);
      if (p === undefined) {
        return { success: false, reason: `node ${node.name} has no parameter ${req.name}`, value_json: "" };
      }
      let value: unknown;
      try {
        value = JSON.parse(req.value_json);
      } catch {
        return {
          success: false,
          reason: `value ${req.value_json} is not JSON`,
          value_json: JSON.stringify(p.value),
        };
      }
      try {
        p.set(value);
      } catch (err) {
        return { success: false, reason: (err as Error).message, value_json: JSON.stringify(p.value) };
      }
      return { success: true, reason: "", value_json: JSON.stringify(p.value) };
    },
  });
}
