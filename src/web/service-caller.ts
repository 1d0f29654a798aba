/**
 * Calls the hub's internal services (`/_supervisor/*`, `/_store/*`, `/_gateway/status`, …) and any
 * service by name from the dashboard's node, one client per service, and tells whether a service is
 * on the graph at all, so a view can say "no supervisor" rather than wait for a timeout.
 */
import { fromJson } from "../codec/index.js";
import { ServiceError } from "../errors.js";
import { lookupService, type ServiceType } from "../msgs/index.js";
import type { GraphSnapshot, Node, ServiceClient } from "../node/index.js";

/** A client per service name, made on first use. */
export class ServiceCaller {
  readonly #node: Node;
  readonly #clients = new Map<string, ServiceClient<unknown, unknown>>();

  constructor(node: Node) {
    this.#node = node;
  }

  /** The type name of `service` on `graph`, or undefined when no node serves it. */
  static typeOf(graph: GraphSnapshot | undefined, service: string): string | undefined {
    for (const n of graph?.nodes ?? []) {
      const s = n.services.find((x) => x.service === service);
      if (s !== undefined) return s.type;
    }
    return undefined;
  }

  /**
   * Calls `service` with `req` (a request of `type`), within `timeoutMs`.
   * @throws ServiceError ERR_NO_SERVER, TimeoutError ERR_TIMEOUT, or the server's error
   */
  call<Req, Res>(service: string, type: ServiceType<Req, Res>, req: Req, timeoutMs = 3000): Promise<Res> {
    const key = `${service} ${type.name}`;
    let c = this.#clients.get(key) as ServiceClient<Req, Res> | undefined;
    if (c === undefined) {
      c = this.#node.createClient(service, type, { timeoutMs, breaker: false });
      this.#clients.set(key, c);
    }
    return c.call(req, { timeoutMs });
  }

  /**
   * Calls `service` by the type name the graph gives it (for services whose types the hub knows by
   * name only, such as the twins'). `req` is JSON, checked and completed with defaults.
   * @throws ServiceError ERR_NO_SERVER when no node serves it or its type is not known here
   */
  callByName(
    graph: GraphSnapshot | undefined,
    service: string,
    req: unknown,
    timeoutMs = 3000,
  ): Promise<unknown> {
    const typeName = ServiceCaller.typeOf(graph, service);
    const type = typeName === undefined ? undefined : lookupService(typeName);
    if (type === undefined) {
      throw new ServiceError(
        "ERR_NO_SERVER",
        typeName === undefined
          ? `no node serves ${service}`
          : `${service} has type ${typeName}, which this hub does not know`,
      );
    }
    // Missing fields get their defaults, as a request typed by a person does.
    return this.call(service, type, fromJson(type.request, req, `request to ${service}`), timeoutMs);
  }

  /** Closes every client. */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
