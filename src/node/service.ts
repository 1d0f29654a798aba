/**
 * Services: request/reply with a timeout on every call. A server registers a handler under a
 * name; a client calls by name, and the node finds a live server through the graph (in memory
 * when the server is in this process, over the server node's data socket otherwise).
 */
import { ClosedError, ServiceError, TimeoutError, MyelinError } from "../errors.js";
import type { ServiceType } from "../msgs/index.js";

/** What a handler gets besides the request. */
export interface ServiceContext {
  /** Node id of the caller ("" when unknown). */
  caller: string;
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
  readonly #onClose: () => void;
  #closed = false;
  /** Requests answered. */
  served = 0;
  /** Requests that failed (handler threw, or the request was invalid). */
  failed = 0;

  /** @internal */
  constructor(
    name: string,
    type: ServiceType<Req, Res>,
    handler: ServiceHandler<Req, Res>,
    onClose: () => void,
  ) {
    this.name = name;
    this.type = type;
    this.handler = handler;
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

/** @internal How a client reaches servers; implemented by Node. */
export interface CallRouter {
  call(name: string, typeName: string, req: unknown, timeoutMs: number): Promise<unknown>;
  waitForServer(name: string, timeoutMs: number): Promise<boolean>;
}

/** A client of one service; create with `node.createClient()`. */
export class ServiceClient<Req, Res> {
  readonly name: string;
  readonly type: ServiceType<Req, Res>;
  readonly timeoutMs: number;
  readonly #router: CallRouter;
  #closed = false;

  /** @internal */
  constructor(name: string, type: ServiceType<Req, Res>, timeoutMs: number, router: CallRouter) {
    this.name = name;
    this.type = type;
    this.timeoutMs = timeoutMs;
    this.#router = router;
  }

  /**
   * Calls the service. The request is validated before it is sent.
   * @throws ValidationError ERR_VALIDATION for a request that does not match the type
   * @throws ServiceError ERR_NO_SERVER when no live node serves it
   * @throws TimeoutError ERR_TIMEOUT when no reply came within the timeout
   * @throws ServiceError ERR_SERVICE_FAILED when the handler threw (its message is included)
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
    return (await this.#router.call(this.name, this.type.name, req, timeoutMs)) as Res;
  }

  /** Resolves true once a server is known, false after `timeoutMs` (like ROS's wait_for_service). */
  waitForService(timeoutMs: number): Promise<boolean> {
    return this.#router.waitForServer(this.name, timeoutMs);
  }

  /** Stops using the client. */
  close(): void {
    this.#closed = true;
  }
}

export { ServiceError, TimeoutError };
