/**
 * Service calls from a node: the server in this process if there is one (a function call), else
 * a replica from the graph chosen by the call's balancer, with a timeout per attempt, retries on
 * another replica when the call may be repeated, and replies decoded into the right error class.
 */
import { SAME_PROCESS_IDENTITY } from "./access-policy.js";
import {
  DecodeError,
  isErrorCode,
  MyelinError,
  myelinError,
  ServiceError,
  TimeoutError,
  TypeMismatchError,
  ValidationError,
} from "../errors.js";
import { decodeFrames, encodeFrames } from "../codec/index.js";
import type { PeerLink } from "../transport/peer-link.js";
import type { AttemptOutcome } from "./balancer.js";
import type { GraphSnapshot, NodeRecord } from "./control-protocol.js";
import type { CallPlan, CallRouter, ServiceServer } from "./service.js";

/** What the caller needs from its node. */
export interface CallerContext {
  /** The calling node's id. */
  readonly id: string;
  /**
   * This host's name, now (it may change when the node adopts its hub's host): the hub's internal
   * services (`/_…`) are called on this host only.
   */
  host(): string;
  /** This process's id: replicas in this process are called directly, not over a link. */
  readonly processId: string;
  /** Binary fields at least this large travel as separate frames, in bytes. */
  readonly blobThreshold: number;
  /** A server of `name` in this process, if any. */
  localService(name: string): ServiceServer<unknown, unknown> | undefined;
  /** The graph as last heard from the hub. */
  graph(): GraphSnapshot | undefined;
  waitForGraph(pred: (g: GraphSnapshot) => boolean, timeoutMs: number): Promise<GraphSnapshot>;
  /** The node's link to node `n`, at the endpoint reachable from this host (opened on first use). */
  link(n: NodeRecord): PeerLink;
  /** False when node `n` is on another host and has no endpoint for other hosts yet. */
  reachable(n: NodeRecord): boolean;
  /** True when the link to node `n` exists and is known to be down. */
  linkDown(n: NodeRecord): boolean;
}

/** Routes a node's service calls; the node's `CallRouter`. */
export class ServiceCaller implements CallRouter {
  readonly #ctx: CallerContext;

  constructor(ctx: CallerContext) {
    this.#ctx = ctx;
  }

  /** Calls `name`; see ClientOptions for the plan. */
  async call(
    name: string,
    typeName: string,
    req: unknown,
    timeoutMs: number,
    plan: CallPlan,
  ): Promise<unknown> {
    const local = this.#here(plan.host) ? this.#ctx.localService(name) : undefined;
    if (local !== undefined) {
      if (local.type.name !== typeName) {
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `service ${name} has type ${local.type.name}; the client used ${typeName}`,
        );
      }
      return this.#withTimeout(
        Promise.resolve(
          local.handler(req, { caller: this.#ctx.id, identity: SAME_PROCESS_IDENTITY, timeoutMs }),
        ),
        name,
        timeoutMs,
        () => {},
      );
    }
    const deadline = Date.now() + timeoutMs;
    if (this.#ctx.graph() === undefined) {
      await this.#ctx.waitForGraph(() => true, timeoutMs).catch(() => undefined);
    }
    const tried = new Set<string>();
    let lastErr: Error | undefined;
    let retries = 0;
    plan.budget.deposit();
    for (;;) {
      const servers = this.servers(name, plan.host);
      if (servers.length === 0) {
        if (lastErr !== undefined) throw lastErr;
        // Fail after one turn of the event loop: a caller retrying in a loop must not starve
        // timers and I/O (the graph update that brings a server arrives through them).
        await new Promise((resolve) => setImmediate(resolve));
        const known = new Set<string>();
        for (const n of this.#ctx.graph()?.nodes ?? []) for (const s of n.services) known.add(s.service);
        throw new ServiceError(
          "ERR_NO_SERVER",
          this.#ctx.graph() === undefined
            ? `no node serves ${name}: no hub answered, so no server can be found; start one with \`myelin hub\``
            : plan.host !== undefined && known.has(name)
              ? `no node on host ${plan.host} serves ${name} (or none there is reachable from here); hosts serving it: ${this.#hostsServing(name).join(", ")}`
              : `no node serves ${name}; services now: ${[...known].sort().join(", ") || "none"}`,
        );
      }
      const candidates = servers.map((n) => ({
        id: n.id,
        name: n.name,
        down: this.#ctx.linkDown(n),
        preferred: plan.locality && n.host === this.#ctx.host(),
      }));
      const now = Date.now();
      const pick = plan.balancer.pick(candidates, tried, now);
      if (!pick.ok) {
        if (lastErr !== undefined) throw lastErr;
        throw new ServiceError(
          "ERR_UNAVAILABLE",
          pick.reason === "open"
            ? `service ${name}: all ${servers.length} replica(s) failed repeatedly and their circuit breakers are open; the next try goes through in ${pick.retryInMs} ms`
            : `service ${name}: the links to all ${servers.length} replica(s) are down (their nodes stopped or crashed); start a server, or retry once the hub shows one`,
        );
      }
      const target = servers.find((n) => n.id === pick.id)!;
      const decl = target.services.find((s) => s.service === name)!;
      if (decl.type !== typeName) {
        plan.balancer.done(target.id, "cancelled", now);
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `service ${name} has type ${decl.type} (node ${target.name}); the client used ${typeName}`,
        );
      }
      const remaining = Math.max(1, deadline - now);
      const attemptMs = Math.max(1, Math.min(remaining, plan.attemptTimeoutMs ?? remaining));
      const r = await this.#attempt(
        target,
        name,
        typeName,
        req,
        attemptMs,
        attemptMs === remaining ? timeoutMs : attemptMs,
      );
      plan.balancer.done(target.id, r.outcome, Date.now());
      if (r.ok) return r.res;
      const err = r.err instanceof Error ? r.err : new Error(String(r.err));
      lastErr = err;
      tried.add(target.id);
      // ERR_NO_SERVER from the replica: it did not run the call, so repeating it is always safe.
      const notRun = err instanceof MyelinError && err.code === "ERR_NO_SERVER";
      const transient = notRun || r.outcome === "timeout" || r.outcome === "unreachable";
      const mayRepeat = notRun || (plan.idempotent ?? decl.idempotent === true);
      if (
        !transient ||
        !mayRepeat ||
        retries >= plan.retries ||
        deadline - Date.now() <= 1 ||
        !plan.budget.withdraw()
      ) {
        throw err;
      }
      retries++;
    }
  }

  /** One attempt of a call on one replica; never throws, says how it ended. */
  async #attempt(
    target: NodeRecord,
    name: string,
    typeName: string,
    req: unknown,
    attemptMs: number,
    reportedMs: number,
  ): Promise<
    { ok: true; res: unknown; outcome: AttemptOutcome } | { ok: false; err: unknown; outcome: AttemptOutcome }
  > {
    const fail = (err: unknown, outcome: AttemptOutcome) => ({ ok: false as const, err, outcome });
    let r: Awaited<ReturnType<PeerLink["request"]>["reply"]>;
    try {
      const link = this.#ctx.link(target);
      const { id, reply } = link.request(
        { service: name, type: typeName, timeoutMs: attemptMs },
        encodeFrames(req, this.#ctx.blobThreshold),
      );
      r = await this.#withTimeout(reply, name, attemptMs, () => link.cancel(id), target.name, reportedMs);
    } catch (err) {
      const code = err instanceof MyelinError ? err.code : "";
      if (code === "ERR_TIMEOUT") return fail(err, "timeout");
      if (code === "ERR_UNAVAILABLE") {
        return fail(
          new ServiceError(
            "ERR_UNAVAILABLE",
            `service ${name} on node ${target.name}: ${(err as Error).message}`,
            {
              cause: err,
            },
          ),
          "unreachable",
        );
      }
      return fail(err, "cancelled");
    }
    if (!r.header.ok) {
      const e = r.header.error ?? {
        code: "ERR_SERVICE_FAILED",
        message: "the server reported an error without details",
      };
      // Errors that are the request's fault say nothing about the replica: it answered.
      if (e.code === "ERR_TYPE_MISMATCH")
        return fail(new TypeMismatchError("ERR_TYPE_MISMATCH", e.message), "ok");
      if (e.code === "ERR_NO_SERVER") return fail(new ServiceError("ERR_NO_SERVER", e.message), "cancelled");
      if (e.code === "ERR_VALIDATION")
        return fail(new ValidationError("ERR_VALIDATION", `${name} refused the request: ${e.message}`), "ok");
      if (e.code === "ERR_DECODE")
        return fail(new DecodeError("ERR_DECODE", `${name} on node ${target.name}: ${e.message}`), "ok");
      if (e.code !== "ERR_SERVICE_FAILED" && isErrorCode(e.code)) {
        return fail(myelinError(e.code, `${name} on node ${target.name}: ${e.message}`), "fault");
      }
      return fail(
        new ServiceError("ERR_SERVICE_FAILED", `${name} on node ${target.name} failed: ${e.message}`),
        "fault",
      );
    }
    try {
      return { ok: true, res: decodeFrames(r.parts), outcome: "ok" };
    } catch (err) {
      return fail(
        new DecodeError(
          "ERR_DECODE",
          `reply of ${name} from node ${target.name} could not be decoded: ${(err as Error).message}`,
          { cause: err },
        ),
        "fault",
      );
    }
  }

  /**
   * Resolves true once a server of `name` is known (in this process or in the graph; only on
   * `host`, if given), false after `timeoutMs`.
   */
  async waitForServer(name: string, timeoutMs: number, host?: string): Promise<boolean> {
    const inProcess = (): boolean => this.#here(host) && this.#ctx.localService(name) !== undefined;
    if (inProcess()) return true;
    try {
      // A server in this process is called directly; the graph update of its node says it is there.
      await this.#ctx.waitForGraph(() => inProcess() || this.servers(name, host).length > 0, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  #withTimeout<R>(
    p: Promise<R>,
    name: string,
    timeoutMs: number,
    onTimeout: () => void,
    server?: string,
    reportedMs = timeoutMs,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        onTimeout();
        reject(
          new TimeoutError(
            "ERR_TIMEOUT",
            `service ${name}${server ? ` on node ${server}` : ""} did not answer within ${reportedMs} ms`,
          ),
        );
      }, timeoutMs);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(
            err instanceof MyelinError
              ? err
              : new ServiceError(
                  "ERR_SERVICE_FAILED",
                  `${name} failed: ${(err as Error)?.message ?? String(err)}`,
                  { cause: err },
                ),
          );
        },
      );
    });
  }

  /**
   * Replicas of service `name` that may take calls: in the graph (so live), in another process,
   * and ready (`ready` absent counts as ready); on `host` when given. This is the one place that
   * decides it.
   */
  servers(name: string, host?: string): NodeRecord[] {
    // In a site, every host's hub serves its own store, supervisor, gateway…: a node uses its own,
    // unless the call names another host.
    const only = host ?? (name.startsWith("/_") ? this.#ctx.host() : undefined);
    return (this.#ctx.graph()?.nodes ?? []).filter(
      (n) =>
        n.process !== this.#ctx.processId &&
        n.ready !== false &&
        (only === undefined || n.host === only) &&
        this.#ctx.reachable(n) &&
        n.services.some((s) => s.service === name),
    );
  }

  /** True when a call aimed at `host` may be served in this process (no host, or this one). */
  #here(host: string | undefined): boolean {
    return host === undefined || host === this.#ctx.host();
  }

  /** The hosts whose nodes serve `name`, for messages. */
  #hostsServing(name: string): string[] {
    const hosts = new Set<string>();
    for (const n of this.#ctx.graph()?.nodes ?? [])
      if (n.services.some((s) => s.service === name)) hosts.add(n.host);
    return [...hosts].sort();
  }
}
