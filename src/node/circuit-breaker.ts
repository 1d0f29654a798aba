/**
 * A circuit breaker for one service replica, sans-IO: the caller passes the time and reports
 * the outcome of every call it let through; the breaker answers whether the next call may go.
 *
 * - **closed**: calls go through; `failureThreshold` failures in a row open it.
 * - **open**: no call goes through for `openMs`; then it is half-open.
 * - **half-open**: one probe call goes through at a time; a success closes the breaker, a
 *   failure opens it again for another `openMs`.
 */
import { MyelinError } from "../errors.js";

/** Options of a circuit breaker. */
export interface BreakerOptions {
  /** Failures in a row that open the breaker (integer >= 1). */
  failureThreshold: number;
  /** How long an open breaker refuses calls before it lets a probe through, in ms (> 0). */
  openMs: number;
}

/** Defaults of BreakerOptions. */
export const BREAKER_DEFAULTS: Readonly<BreakerOptions> = { failureThreshold: 5, openMs: 5000 };

/** State of a circuit breaker. */
export type BreakerState = "closed" | "open" | "half-open";

/**
 * Checks breaker options and fills in the defaults; never mutates `opts`.
 * @param where names the owner in error messages, e.g. "client of /arm/home"
 * @throws MyelinError ERR_INVALID_ARGUMENT for an option out of range
 */
export function resolveBreakerOptions(
  opts: Partial<BreakerOptions> | undefined,
  where: string,
): BreakerOptions {
  const o = { ...BREAKER_DEFAULTS, ...(opts ?? {}) };
  if (!Number.isInteger(o.failureThreshold) || o.failureThreshold < 1) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: breaker.failureThreshold must be an integer >= 1, got ${String(o.failureThreshold)}`,
    );
  }
  if (typeof o.openMs !== "number" || !Number.isFinite(o.openMs) || o.openMs <= 0) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: breaker.openMs must be a number of milliseconds > 0, got ${String(o.openMs)}`,
    );
  }
  return { failureThreshold: o.failureThreshold, openMs: o.openMs };
}

/** One replica's circuit breaker. Times are milliseconds on any monotonic-enough clock. */
export class CircuitBreaker {
  readonly #opts: BreakerOptions;
  readonly #onChange: ((state: BreakerState) => void) | undefined;
  #state: BreakerState = "closed";
  #failures = 0;
  #openedAt = 0;
  #probing = false;

  /**
   * @param opts checked options (see resolveBreakerOptions)
   * @param onChange called on every state change, after it happened
   */
  constructor(opts: BreakerOptions, onChange?: (state: BreakerState) => void) {
    this.#opts = opts;
    this.#onChange = onChange;
  }

  /** The state at time `now` (an open breaker past `openMs` is half-open). */
  state(now: number): BreakerState {
    if (this.#state === "open" && now - this.#openedAt >= this.#opts.openMs) this.#set("half-open");
    return this.#state;
  }

  /** Failures in a row so far. */
  get failures(): number {
    return this.#failures;
  }

  /** When an open breaker turns half-open (ms on the caller's clock); 0 unless open. */
  get reopensAt(): number {
    return this.#state === "open" ? this.#openedAt + this.#opts.openMs : 0;
  }

  /** True if a call may go now (closed, or half-open with no probe out); does not take the probe. */
  available(now: number): boolean {
    const s = this.state(now);
    return s === "closed" || (s === "half-open" && !this.#probing);
  }

  /**
   * Takes the right to make one call at `now`: always in closed state, once at a time in
   * half-open state (the probe), never in open state. Report the outcome with `success()`,
   * `failure()` or `release()`.
   */
  acquire(now: number): boolean {
    if (!this.available(now)) return false;
    if (this.#state === "half-open") this.#probing = true;
    return true;
  }

  /** The call succeeded (the replica answered): the breaker closes. */
  success(): void {
    this.#probing = false;
    this.#failures = 0;
    if (this.#state !== "closed") this.#set("closed");
  }

  /** The call failed at `now` because of the replica; may open the breaker. */
  failure(now: number): void {
    this.#probing = false;
    this.#failures++;
    if (
      this.#state === "half-open" ||
      (this.#state === "closed" && this.#failures >= this.#opts.failureThreshold)
    ) {
      this.#open(now);
    }
  }

  /** The call ended in a way that says nothing about the replica; frees a half-open probe. */
  release(): void {
    this.#probing = false;
  }

  /** Opens the breaker at once (the replica is known to be gone). */
  trip(now: number): void {
    this.#probing = false;
    this.#failures = Math.max(this.#failures, this.#opts.failureThreshold);
    this.#open(now);
  }

  #open(now: number): void {
    this.#openedAt = now;
    if (this.#state !== "open") this.#set("open");
  }

  #set(s: BreakerState): void {
    this.#state = s;
    this.#onChange?.(s);
  }
}
