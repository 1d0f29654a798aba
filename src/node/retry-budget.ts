/**
 * A retry budget, sans-IO: a token bucket that bounds retries to a fraction of calls, so that a
 * failing service is not hit by a storm of retries on top of its normal load. Each call
 * deposits `ratio` tokens (up to `burst`); each retry takes one whole token.
 */
import { MyelinError } from "../errors.js";

/** Options of a retry budget. */
export interface RetryBudgetOptions {
  /** Tokens each call earns: retries are bounded to about this fraction of calls (0..1). */
  ratio: number;
  /** Most tokens kept, and the tokens at start: retries allowed in a burst (integer >= 0). */
  burst: number;
}

/** Defaults of RetryBudgetOptions: retries up to 20 % of calls, bursts of 10. */
export const RETRY_BUDGET_DEFAULTS: Readonly<RetryBudgetOptions> = { ratio: 0.2, burst: 10 };

/**
 * Checks retry-budget options and fills in the defaults; never mutates `opts`.
 * @throws MyelinError ERR_INVALID_ARGUMENT for an option out of range
 */
export function resolveRetryBudgetOptions(
  opts: Partial<RetryBudgetOptions> | undefined,
  where: string,
): RetryBudgetOptions {
  const o = { ...RETRY_BUDGET_DEFAULTS, ...(opts ?? {}) };
  if (typeof o.ratio !== "number" || !(o.ratio >= 0 && o.ratio <= 1)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: retryBudget.ratio must be a number from 0 to 1, got ${String(o.ratio)}`,
    );
  }
  if (!Number.isInteger(o.burst) || o.burst < 0) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: retryBudget.burst must be an integer >= 0, got ${String(o.burst)}`,
    );
  }
  return { ratio: o.ratio, burst: o.burst };
}

/** A token bucket of retries. */
export class RetryBudget {
  readonly #opts: RetryBudgetOptions;
  #tokens: number;
  /** Retries refused because the budget was spent. */
  refused = 0;

  constructor(opts: RetryBudgetOptions) {
    this.#opts = opts;
    this.#tokens = opts.burst;
  }

  /** Tokens left (a retry needs 1). */
  get tokens(): number {
    return this.#tokens;
  }

  /** A call was made: earns `ratio` tokens. */
  deposit(): void {
    this.#tokens = Math.min(this.#opts.burst, this.#tokens + this.#opts.ratio);
  }

  /** Takes one token for a retry; false (and counted in `refused`) when the budget is spent. */
  withdraw(): boolean {
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.refused++;
    return false;
  }
}
