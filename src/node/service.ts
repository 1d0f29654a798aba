/**
 * Services: request/reply with a timeout on every call. A server registers a handler under a
 * name; a client calls by name, and the node finds a live server through the graph (in memory
 * when the server is in this process, over the server node's data socket otherwise).
 *
 * Several nodes may serve one name (replicas). Each client spreads its calls across the live,
 * ready replicas (see Balancer), passes over a replica whose link is down or whose circuit
 * breaker is open, and retries a call on another replica when the service is idempotent and
 * the first replica died, fell silent or timed out (bounded by `retries` and a RetryBudget).
 */
import { EventEmitter } from "node:events";
import { ClosedError, ServiceError, TimeoutError, MyelinError } from "../errors.js";
import type { ServiceType } from "../msgs/index.js";
import {
  Balancer,
  resolveBalancePolicy,
  type BalancePolicy,
  type BreakerEvent,
  type ReplicaStats,
} from "./balancer.js";
import { resolveBreakerOptions, type BreakerOptions } from "./circuit-breaker.js";
import { RetryBudget, resolveRetryBudgetOptions, type RetryBudgetOptions } from "./retry-budget.js";

/** What a handler gets besides the request. */
export interface ServiceContext {
  /** Node id of the caller ("" when unknown). */
  caller: string;
  /**
   * The caller's identity as its link authenticated it: `local`, `anonymous`, `curve:<key>`, or
   * `process` for a caller in this node's own process. Already checked against the policy's `call`
   * grants (internal services: admins only) before the handler runs.
   */
  identity: string;
  /** Milliseconds the caller waits for the reply. */
  timeoutMs: number;
}

/** A service handler; throw to reply with an error (its message goes to the caller). */
export type ServiceHandler<Req, Res> = (req: Req, ctx: ServiceContext) => Res | Promise<Res>;

/** A service this node serves; create with `node.createService()`. */
export class ServiceServer<Req, Res> {
  readonly name: string;
  readonly type: ServiceType<Req, Res>;
  /** @internal */ readonly handler: ServiceHandler<Req, Res>;
  /** Declared idempotent: clients may retry a call on another replica. */
  readonly idempotent: boolean;
  readonly #onClose: () => void;
  #closed = false;
  /** Requests answered. */
  served = 0;
  /** Requests that failed (handler threw, or the request was invalid). */
  failed = 0;
  /** Requests refused because the policy does not grant the caller's identity this service. */
  refused = 0;

  /** @internal */
  constructor(
    name: string,
    type: ServiceType<Req, Res>,
    handler: ServiceHandler<Req, Res>,
    onClose: () => void,
    idempotent = false,
  ) {
    this.name = name;
    this.type = type;
    this.handler = handler;
    this.idempotent = idempotent;
    this.#onClose = onClose;
  }

  /** Stops serving. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/** Options of a call. */
export interface CallOptions {
  /** How long to wait for the reply, in ms. */
  timeoutMs?: number;
}

/** Options of createService. */
export interface ServiceOptions {
  /**
   * The service is idempotent: calling it twice with one request does no more harm than once.
   * Travels with the service's declaration, so clients retry a call on another replica when the
   * replica they called dies, falls silent or times out. Default false.
   */
  idempotent?: boolean;
}

/** Options of createClient; every field has a default. */
export interface ClientOptions {
  /** Default timeout of each call, all attempts included, in ms (default 5000). */
  timeoutMs?: number;
  /** How calls are spread across replicas (default "round-robin"). */
  balance?: BalancePolicy;
  /**
   * Retries of one call on other replicas, when the call may be repeated (default 2). A call is
   * retried only if the service is idempotent (declared by the server, or `idempotent` here),
   * except after ERR_NO_SERVER from a replica, which did not run it.
   */
  retries?: number;
  /** Overrides the server's declaration: true makes every call retryable, false none. */
  idempotent?: boolean;
  /**
   * Longest wait for one attempt before it counts as timed out and the call moves on to another
   * replica (if it may be retried), in ms. Default: the whole call timeout.
   */
  attemptTimeoutMs?: number;
  /** Circuit breaker per replica (defaults: 5 failures in a row, open 5000 ms), or false for none. */
  breaker?: Partial<BreakerOptions> | false;
  /** Bound on retries across calls (defaults: 20 % of calls, bursts of 10). */
  retryBudget?: Partial<RetryBudgetOptions>;
  /**
   * Call only replicas on this host of the site (a host name as `myelin node list` shows it). For
   * the hub's internal services (`/_…`), which every hub serves, this picks the hub of that host
   * instead of this host's: how `myelin ps`, `up` and `down` reach every hub of a site. A server in
   * this process is used only when this is this node's own host. Default: any host (internal
   * services: this host).
   */
  host?: string;
  /**
   * Prefer replicas on this node's own host while any of them is healthy (link up, breaker closed,
   * not suspect), and fall back to the other hosts' replicas otherwise (default true; the
   * environment variable `MYELIN_LOCALITY=off` turns it off for every client of the process).
   */
  locality?: boolean;
}

/** @internal How a client spreads and retries its calls; passed to the CallRouter. */
export interface CallPlan {
  readonly balancer: Balancer;
  readonly budget: RetryBudget;
  readonly retries: number;
  readonly idempotent: boolean | undefined;
  readonly attemptTimeoutMs: number | undefined;
  /** Only replicas on this host (see ClientOptions.host). */
  readonly host: string | undefined;
  /** Prefer replicas on the caller's host while any is healthy. */
  readonly locality: boolean;
}

/** @internal How a client reaches servers; implemented by Node. */
export interface CallRouter {
  call(name: string, typeName: string, req: unknown, timeoutMs: number, plan: CallPlan): Promise<unknown>;
  /** Resolves true once a server is known (on `host`, if given), false after `timeoutMs`. */
  waitForServer(name: string, timeoutMs: number, host?: string): Promise<boolean>;
}

/** The default of ClientOptions.locality: on, unless `MYELIN_LOCALITY` is `off`, `0` or `false`. */
export function localityDefault(): boolean {
  const v = (process.env["MYELIN_LOCALITY"] ?? "").trim().toLowerCase();
  return !(v === "off" || v === "0" || v === "false");
}

/** Events of a service client. */
export interface ServiceClientEvents {
  /** A replica's circuit breaker changed state (`open`, `half-open`, `closed`). */
  breaker: [BreakerEvent];
}

/**
 * Checks client options at the boundary.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the option and what is accepted
 */
function resolvePlan(opts: ClientOptions, where: string, onBreaker: (e: BreakerEvent) => void): CallPlan {
  const retries = opts.retries ?? 2;
  if (!Number.isInteger(retries) || retries < 0) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: retries must be an integer >= 0, got ${String(retries)}`,
    );
  }
  const a = opts.attemptTimeoutMs;
  if (a !== undefined && !(typeof a === "number" && a > 0)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: attemptTimeoutMs must be a number of milliseconds > 0, got ${String(a)}`,
    );
  }
  if (opts.idempotent !== undefined && typeof opts.idempotent !== "boolean") {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${where}: idempotent must be true or false`);
  }
  if (opts.host !== undefined && !(typeof opts.host === "string" && opts.host !== "")) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: host must be a host name of the site (as \`myelin node list\` shows it), got ${JSON.stringify(opts.host)}`,
    );
  }
  if (opts.locality !== undefined && typeof opts.locality !== "boolean") {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${where}: locality must be true or false`);
  }
  const breaker = opts.breaker === false ? false : resolveBreakerOptions(opts.breaker, where);
  return {
    balancer: new Balancer({ policy: resolveBalancePolicy(opts.balance, where), breaker }, onBreaker),
    budget: new RetryBudget(resolveRetryBudgetOptions(opts.retryBudget, where)),
    retries,
    idempotent: opts.idempotent,
    attemptTimeoutMs: a,
    host: opts.host,
    locality: opts.locality ?? localityDefault(),
  };
}

/** A client of one service; create with `node.createClient()`. Emits `breaker` events. */
export class ServiceClient<Req, Res> extends EventEmitter<ServiceClientEvents> {
  readonly name: string;
  readonly type: ServiceType<Req, Res>;
  /** Default timeout of each call, in ms. */
  readonly timeoutMs: number;
  readonly #router: CallRouter;
  readonly #plan: CallPlan;
  #closed = false;

  /**
   * @internal
   * @throws MyelinError ERR_INVALID_ARGUMENT for an option out of range
   */
  constructor(name: string, type: ServiceType<Req, Res>, opts: ClientOptions, router: CallRouter) {
    super();
    this.name = name;
    this.type = type;
    const where = `client of ${name}`;
    const timeoutMs = opts.timeoutMs ?? 5000;
    if (!(typeof timeoutMs === "number" && timeoutMs > 0)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${where}: timeoutMs must be a number of milliseconds > 0, got ${String(timeoutMs)}`,
      );
    }
    this.timeoutMs = timeoutMs;
    this.#router = router;
    this.#plan = resolvePlan(opts, where, (e) => this.emit("breaker", e));
  }

  /** The balance policy in use. */
  get balance(): BalancePolicy {
    return this.#plan.balancer.policy;
  }

  /**
   * What this client knows of each replica it called: calls outstanding, failures, breaker
   * state, whether it is passed over after a timeout or a lost link.
   */
  replicas(): ReplicaStats[] {
    return this.#plan.balancer.stats(Date.now());
  }

  /** Retries refused because the retry budget was spent. */
  get retriesRefused(): number {
    return this.#plan.budget.refused;
  }

  /**
   * Calls the service. The request is validated before it is sent.
   * @throws ValidationError ERR_VALIDATION for a request that does not match the type
   * @throws ServiceError ERR_NO_SERVER when no live node serves it
   * @throws TimeoutError ERR_TIMEOUT when no reply came within the timeout
   * @throws ServiceError ERR_SERVICE_FAILED when the handler threw (its message is included)
   * @throws ServiceError ERR_UNAVAILABLE when no replica can take the call (links lost, breakers
   *   open), or the replica called was lost while the call waited and the call may not be retried
   */
  async call(req: Req, opts: CallOptions = {}): Promise<Res> {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `client of ${this.name} is closed`);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    if (!(timeoutMs > 0))
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `call ${this.name}: timeoutMs must be > 0, got ${timeoutMs}`,
      );
    this.type.request.assert(req, `request to ${this.name}`);
    return (await this.#router.call(this.name, this.type.name, req, timeoutMs, this.#plan)) as Res;
  }

  /** Resolves true once a server is known, false after `timeoutMs` (like ROS's wait_for_service). */
  waitForService(timeoutMs: number): Promise<boolean> {
    return this.#router.waitForServer(this.name, timeoutMs, this.#plan.host);
  }

  /** Stops using the client. */
  close(): void {
    this.#closed = true;
  }
}

export { ServiceError, TimeoutError };
