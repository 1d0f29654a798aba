/**
 * Spreading calls of one service client across the service's replicas, sans-IO: the node
 * passes the live replicas and the time, the balancer picks one and keeps per-replica state
 * (calls outstanding, a circuit breaker, whether the last failure was a timeout or a lost link).
 *
 * Which replicas are eligible: not already tried by this call, link not known to be down,
 * breaker closed (or half-open with its probe free). Among them, replicas whose last attempt
 * timed out or lost its link ("suspect") are used only when no other is left, until they answer
 * again or `openMs` passes. Locality: replicas the caller marks `preferred` (those on its own host)
 * are taken while any of them is healthy (eligible and not suspect); the others only when none is.
 * So the order is: healthy preferred, healthy other, suspect preferred, suspect other. Within that
 * first non-empty group the policy picks: `round-robin` (in turn) or `least-outstanding` (fewest
 * calls waiting for a reply from this client, ties in turn).
 */
import { MyelinError } from "../errors.js";
import {
  CircuitBreaker,
  resolveBreakerOptions,
  type BreakerOptions,
  type BreakerState,
} from "./circuit-breaker.js";

/** How a client spreads calls across replicas. */
export type BalancePolicy = "round-robin" | "least-outstanding";

/** Every BalancePolicy. */
export const BALANCE_POLICIES: readonly BalancePolicy[] = ["round-robin", "least-outstanding"];

/**
 * How an attempt on a replica ended, as the balancer counts it:
 * - `ok`: the replica answered (also with an error that is the request's fault, e.g. validation);
 * - `fault`: the replica answered with a failure of its own (the handler threw, storage error);
 * - `timeout`: no answer within the attempt's time;
 * - `unreachable`: the link to the replica was lost or fell silent while the call was out;
 * - `cancelled`: the attempt was abandoned for a reason unrelated to the replica.
 */
export type AttemptOutcome = "ok" | "fault" | "timeout" | "unreachable" | "cancelled";

/** A replica as the node offers it to `pick`. */
export interface Candidate {
  /** Node id of the replica. */
  readonly id: string;
  /** Node name of the replica (for events and messages). */
  readonly name: string;
  /** True when the link to it is known to be down (connection lost or refused). */
  readonly down: boolean;
  /** True for a replica to take first while it is healthy (one on the caller's host); default false. */
  readonly preferred?: boolean;
}

/** What `pick` chose: a replica, or why none could be used. */
export type Pick =
  | { readonly ok: true; readonly id: string }
  | {
      readonly ok: false;
      /** `tried`: every replica was tried by this call; `down`: links down; `open`: breakers open. */
      readonly reason: "tried" | "down" | "open";
      /** For `open`: ms until the first breaker lets a probe through. */
      readonly retryInMs: number;
    };

/** What a client knows of one replica; see ServiceClient.replicas(). */
export interface ReplicaStats {
  /** Node id. */
  id: string;
  /** Node name. */
  name: string;
  /** Calls sent to it and not answered yet. */
  outstanding: number;
  /** Attempts sent to it. */
  calls: number;
  /** Attempts that failed because of it (fault, timeout, unreachable). */
  failures: number;
  /** Its circuit breaker's state ("closed" when breakers are off). */
  breaker: BreakerState;
  /** True while it is passed over after a timeout or a lost link. */
  suspect: boolean;
}

/** Options of a Balancer. */
export interface BalancerOptions {
  policy: BalancePolicy;
  /** Breaker options, or false for no circuit breaker. */
  breaker: BreakerOptions | false;
}

/** A breaker state change of one replica. */
export interface BreakerEvent {
  /** Node id of the replica. */
  id: string;
  /** Node name of the replica. */
  name: string;
  state: BreakerState;
}

interface ReplicaState {
  id: string;
  name: string;
  outstanding: number;
  calls: number;
  failures: number;
  breaker: CircuitBreaker | undefined;
  /** Passed over until this time (ms), after a timeout or a lost link; 0 when not. */
  suspectUntil: number;
}

/** How long a replica stays suspect when breakers are off, in ms. */
const SUSPECT_MS_WITHOUT_BREAKER = 5000;

/**
 * Checks a balance policy name.
 * @throws MyelinError ERR_INVALID_ARGUMENT for an unknown policy
 */
export function resolveBalancePolicy(policy: unknown, where: string): BalancePolicy {
  if (policy === undefined) return "round-robin";
  if (typeof policy === "string" && (BALANCE_POLICIES as readonly string[]).includes(policy)) {
    return policy as BalancePolicy;
  }
  throw new MyelinError(
    "ERR_INVALID_ARGUMENT",
    `${where}: balance must be one of ${BALANCE_POLICIES.map((p) => `"${p}"`).join(", ")}, got ${JSON.stringify(policy)}`,
  );
}

/** The per-client balancing state. */
export class Balancer {
  readonly policy: BalancePolicy;
  readonly #breaker: BreakerOptions | false;
  readonly #onBreaker: ((e: BreakerEvent) => void) | undefined;
  readonly #replicas = new Map<string, ReplicaState>();
  #rr = 0;

  /** @param onBreaker called when a replica's breaker changes state */
  constructor(opts: BalancerOptions, onBreaker?: (e: BreakerEvent) => void) {
    this.policy = opts.policy;
    this.#breaker = opts.breaker === false ? false : resolveBreakerOptions(opts.breaker, "balancer");
    this.#onBreaker = onBreaker;
  }

  /**
   * Picks a replica for one attempt at `now` and counts the attempt as outstanding; report its
   * end with `done()`. `exclude` holds the replicas this call already tried. Give candidates in
   * a stable order (round-robin walks that order).
   */
  pick(candidates: readonly Candidate[], exclude: ReadonlySet<string>, now: number): Pick {
    const n = candidates.length;
    if (this.#replicas.size > n * 2 + 8) this.#prune(candidates);
    // Groups, best first: healthy preferred, healthy other, suspect preferred, suspect other.
    const best = [-1, -1, -1, -1];
    const bestLoad = [Infinity, Infinity, Infinity, Infinity];
    let anyOpen = false;
    let anyDown = false;
    let reopen = Infinity;
    const start = this.#rr % Math.max(1, n);
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const c = candidates[i]!;
      if (exclude.has(c.id)) continue;
      if (c.down) {
        anyDown = true;
        continue;
      }
      const st = this.#state(c);
      if (st.breaker !== undefined && !st.breaker.available(now)) {
        anyOpen = true;
        const at = st.breaker.reopensAt;
        if (at > 0) reopen = Math.min(reopen, at);
        continue;
      }
      const load = this.policy === "least-outstanding" ? st.outstanding : 0;
      const group = (st.suspectUntil > now ? 2 : 0) + (c.preferred === true ? 0 : 1);
      if (load < bestLoad[group]!) {
        best[group] = i;
        bestLoad[group] = load;
        // Round-robin takes the first in turn; nothing can beat a healthy preferred one.
        if (this.policy === "round-robin" && group === 0) break;
      }
    }
    const chosen = best.find((i) => i >= 0) ?? -1;
    if (chosen < 0) {
      if (anyOpen)
        return { ok: false, reason: "open", retryInMs: reopen === Infinity ? 0 : Math.max(0, reopen - now) };
      return { ok: false, reason: anyDown ? "down" : "tried", retryInMs: 0 };
    }
    this.#rr = chosen + 1;
    const c = candidates[chosen]!;
    const st = this.#state(c);
    st.breaker?.acquire(now);
    st.outstanding++;
    st.calls++;
    return { ok: true, id: c.id };
  }

  /** Reports how an attempt picked at an earlier `pick()` ended, at `now`. */
  done(id: string, outcome: AttemptOutcome, now: number): void {
    const st = this.#replicas.get(id);
    if (st === undefined) return;
    if (st.outstanding > 0) st.outstanding--;
    switch (outcome) {
      case "ok":
        st.suspectUntil = 0;
        st.breaker?.success();
        return;
      case "fault":
        st.failures++;
        st.breaker?.failure(now);
        return;
      case "timeout":
        st.failures++;
        st.suspectUntil = now + this.#suspectMs();
        st.breaker?.failure(now);
        return;
      case "unreachable":
        st.failures++;
        st.suspectUntil = now + this.#suspectMs();
        // A lost link is not a guess: stop sending there until a probe gets through.
        st.breaker?.trip(now);
        return;
      case "cancelled":
        st.breaker?.release();
        return;
    }
  }

  /** What this client knows of each replica it has called, at `now`. */
  stats(now: number): ReplicaStats[] {
    return [...this.#replicas.values()].map((st) => ({
      id: st.id,
      name: st.name,
      outstanding: st.outstanding,
      calls: st.calls,
      failures: st.failures,
      breaker: st.breaker?.state(now) ?? "closed",
      suspect: st.suspectUntil > now,
    }));
  }

  #suspectMs(): number {
    return this.#breaker === false ? SUSPECT_MS_WITHOUT_BREAKER : this.#breaker.openMs;
  }

  #state(c: Candidate): ReplicaState {
    let st = this.#replicas.get(c.id);
    if (st === undefined) {
      const id = c.id;
      const name = c.name;
      st = {
        id,
        name,
        outstanding: 0,
        calls: 0,
        failures: 0,
        breaker:
          this.#breaker === false
            ? undefined
            : new CircuitBreaker(this.#breaker, (state) => this.#onBreaker?.({ id, name, state })),
        suspectUntil: 0,
      };
      this.#replicas.set(id, st);
    }
    return st;
  }

  /** Forgets replicas that are no longer candidates and have nothing outstanding. */
  #prune(candidates: readonly Candidate[]): void {
    const live = new Set(candidates.map((c) => c.id));
    for (const [id, st] of this.#replicas)
      if (!live.has(id) && st.outstanding === 0) this.#replicas.delete(id);
  }
}
