/**
 * Service protocols: a named set of services (each a service name and a `ServiceType` from the
 * message schemas) that one side serves and the other calls, typed end to end.
 *
 * ```ts
 * const ARM = defineProtocol({
 *   home: { service: "/arm/home", type: std_srvs.Trigger },
 *   enable: { service: "/arm/enable", type: std_srvs.SetBool, idempotent: true },
 * });
 * await serveProtocol(node, ARM, {
 *   home: () => ({ success: true, message: "" }),
 *   enable: (req) => ({ success: true, message: req.data ? "on" : "off" }),
 * });
 * const arm = protocolClient(node, ARM, { timeoutMs: 2000 });
 * const { message } = await arm.enable({ data: true }); // typed from std_srvs/SetBool
 * ```
 *
 * An internal service (the store, the supervisor, the gateway's status, the bridges' status, the
 * hub's info, a node's parameters) defines its protocol once, in its own module; the server and
 * every client use that definition, so no other module names its services.
 */
import { ClosedError, DecodeError, MyelinError } from "../errors.js";
import type { RequestOf, ResponseOf, ServiceType, std_srvs } from "../msgs/index.js";
import type { GraphSnapshot } from "./control-protocol.js";
import type { Node } from "./node.js";
import type { CallOptions, ClientOptions, ServiceClient, ServiceHandler, ServiceServer } from "./service.js";

/** One service of a protocol: the name it is served under and its type. */
export interface ProtocolService<S extends ServiceType<any, any> = ServiceType<any, any>> {
  /** The service name, e.g. `/_store/append`. */
  readonly service: string;
  /** The request and reply types. */
  readonly type: S;
  /** The server declares the service idempotent (clients may retry a call on another replica). */
  readonly idempotent?: boolean;
}

/** Names a protocol's methods may not take: the client object uses them. */
export const RESERVED_METHODS = ["close", "waitForServer", "serviceOf"] as const;

/** A method name the client object uses itself. */
export type ReservedMethod = (typeof RESERVED_METHODS)[number];

/** The methods of a protocol, by name. */
export type ProtocolSpec = { readonly [method: string]: ProtocolService } & {
  readonly [K in ReservedMethod]?: never;
};

/** The request of method `K` of protocol `P`. */
export type ProtocolRequest<P extends ProtocolSpec, K extends keyof P> = RequestOf<P[K]["type"]>;

/** The reply of method `K` of protocol `P`. */
export type ProtocolResponse<P extends ProtocolSpec, K extends keyof P> = ResponseOf<P[K]["type"]>;

/** One handler per method of `P`, typed from the method's service type. */
export type ProtocolHandlers<P extends ProtocolSpec> = {
  readonly [K in keyof P]: ServiceHandler<ProtocolRequest<P, K>, ProtocolResponse<P, K>>;
};

/**
 * Defines a protocol: checks each method's service name and type once, and freezes the result.
 * @throws MyelinError ERR_INVALID_ARGUMENT for a reserved method name, a service name that is not
 *   an absolute name, a missing service type, or a service named twice
 */
export function defineProtocol<const P extends ProtocolSpec>(spec: P): P {
  const seen = new Map<string, string>();
  const out: Record<string, ProtocolService> = {};
  for (const [method, s] of Object.entries(spec) as [string, ProtocolService | undefined][]) {
    const where = `protocol method ${method}`;
    if ((RESERVED_METHODS as readonly string[]).includes(method)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${where}: the name is reserved by the client object (${RESERVED_METHODS.join(", ")}); rename the method`,
      );
    }
    if (typeof s?.service !== "string" || !/^(\/[A-Za-z0-9_.~-]+)+$/.test(s.service)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${where}: service ${JSON.stringify(s?.service)} is not an absolute service name such as /arm/home`,
      );
    }
    if (s.type?.kind !== "service") {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${where} (${s.service}): type must be a service type made by defineService()`,
      );
    }
    const other = seen.get(s.service);
    if (other !== undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${where}: service ${s.service} is already the service of method ${other}; each method needs its own service`,
      );
    }
    seen.set(s.service, method);
    out[method] = Object.freeze({ ...s });
  }
  return Object.freeze(out) as P;
}

/** True if some node of `graph` serves the protocol service `s`. */
export function graphServes(graph: GraphSnapshot | undefined, s: ProtocolService): boolean {
  return (graph?.nodes ?? []).some((n) => n.services.some((d) => d.service === s.service));
}

/** The servers of a protocol on one node; `close()` stops serving all of them. */
export interface ProtocolServer {
  /** One server per method, in the protocol's order. */
  readonly servers: readonly ServiceServer<unknown, unknown>[];
  /** Stops serving every method. */
  close(): void;
}

/**
 * Serves every method of `protocol` on `node` with `handlers` (registered together; resolves once
 * the hub confirmed them all). Requests and replies are validated against each method's type.
 * @throws TypeMismatchError ERR_TYPE_MISMATCH if a service exists with another type; the methods
 *   already served are stopped again
 * @throws MyelinError ERR_INVALID_ARGUMENT if a method has no handler or the node serves one already
 */
export async function serveProtocol<P extends ProtocolSpec>(
  node: Node,
  protocol: P,
  handlers: ProtocolHandlers<P>,
): Promise<ProtocolServer> {
  const methods = Object.keys(protocol) as (keyof P & string)[];
  for (const m of methods) {
    if (typeof handlers[m] !== "function") {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `serving ${protocol[m]!.service} on node ${node.name}: no handler for method ${m}`,
      );
    }
  }
  const settled = await Promise.allSettled(
    methods.map((m) => {
      const s = protocol[m]!;
      return node.createService(
        s.service,
        s.type as ServiceType<unknown, unknown>,
        handlers[m] as ServiceHandler<unknown, unknown>,
        s.idempotent === true ? { idempotent: true } : {},
      );
    }),
  );
  const servers: ServiceServer<unknown, unknown>[] = [];
  let failure: Error | undefined;
  for (const r of settled) {
    if (r.status === "fulfilled") servers.push(r.value);
    else failure ??= r.reason instanceof Error ? r.reason : new Error(String(r.reason));
  }
  const close = (): void => {
    for (const s of servers) s.close();
  };
  if (failure !== undefined) {
    close();
    throw failure;
  }
  return { servers, close };
}

/** What a protocol client offers besides its methods. */
export interface ProtocolClientControls<P extends ProtocolSpec> {
  /** Resolves true once a server of `method` is known, false after `timeoutMs`. */
  waitForServer(method: keyof P & string, timeoutMs: number): Promise<boolean>;
  /** The service client behind `method` (created on first use), for its stats and events. */
  serviceOf<K extends keyof P & string>(
    method: K,
  ): ServiceClient<ProtocolRequest<P, K>, ProtocolResponse<P, K>>;
  /** Stops the client: later calls fail with ERR_CLOSED (calls under way still get their reply). */
  close(): void;
}

/**
 * A typed client of a protocol: one method per service, taking the request and per-call options
 * and resolving with the reply (errors as `ServiceClient.call` throws them).
 */
export type ProtocolClient<P extends ProtocolSpec> = {
  readonly [K in keyof P & string]: (
    req: ProtocolRequest<P, K>,
    opts?: CallOptions,
  ) => Promise<ProtocolResponse<P, K>>;
} & ProtocolClientControls<P>;

/**
 * A client of `protocol` through `node`. Each method's `ServiceClient` is created on its first
 * call, with the shared `opts` (timeout, breaker, retries…), checked here at once.
 * @throws MyelinError ERR_INVALID_ARGUMENT for an option out of range
 */
export function protocolClient<P extends ProtocolSpec>(
  node: Node,
  protocol: P,
  opts: ClientOptions = {},
): ProtocolClient<P> {
  const methods = Object.keys(protocol) as (keyof P & string)[];
  const clients = new Map<string, ServiceClient<unknown, unknown>>();
  let closed = false;
  const serviceOf = (method: string): ServiceClient<unknown, unknown> => {
    const s = protocol[method];
    if (s === undefined) throw noSuchMethod(method, methods);
    if (closed) throw new ClosedError("ERR_CLOSED", `client of ${s.service} is closed`);
    let c = clients.get(method);
    if (c === undefined) {
      c = node.createClient(s.service, s.type as ServiceType<unknown, unknown>, opts);
      clients.set(method, c);
    }
    return c;
  };
  // The options are checked now, by the first method's client, rather than at the first call.
  if (methods[0] !== undefined) serviceOf(methods[0]);
  const client: Record<string, unknown> = {
    waitForServer: (method: string, timeoutMs: number): Promise<boolean> => {
      const s = protocol[method];
      if (s === undefined) return Promise.reject(noSuchMethod(method, methods));
      return node.waitForServer(s.service, timeoutMs, opts.host);
    },
    serviceOf,
    close: (): void => {
      closed = true;
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
  for (const m of methods) {
    // async: a closed client rejects rather than throwing synchronously.
    client[m] = async (req: unknown, callOpts?: CallOptions): Promise<unknown> =>
      await serviceOf(m).call(req, callOpts);
  }
  return Object.freeze(client) as ProtocolClient<P>;
}

/** The error for a method name the protocol does not have (a caller that went around the types). */
function noSuchMethod(method: string, methods: readonly string[]): MyelinError {
  return new MyelinError(
    "ERR_INVALID_ARGUMENT",
    `the protocol has no method ${method}; it has: ${methods.join(", ")}`,
  );
}

/**
 * Calls a status service answering `std_srvs/Trigger` with JSON in its message (the bridges', the
 * Foxglove server's) and returns the parsed JSON; the caller checks its shape.
 * @throws ServiceError ERR_NO_SERVER when nobody serves it; TimeoutError ERR_TIMEOUT when it did
 *   not answer within `opts.timeoutMs` (default 5000 ms)
 * @throws DecodeError ERR_DECODE when the message is not JSON
 */
export async function fetchJsonStatus(
  node: Node,
  status: ProtocolService<typeof std_srvs.Trigger>,
  opts: CallOptions = {},
): Promise<unknown> {
  const client = node.createClient(status.service, status.type, opts);
  let r;
  try {
    r = await client.call({});
  } finally {
    client.close();
  }
  try {
    return JSON.parse(r.message) as unknown;
  } catch (err) {
    throw new DecodeError(
      "ERR_DECODE",
      `the reply of ${status.service} is not JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
