/**
 * Time for the supervisor's sans-IO parts (the process lifecycle, the probe loop): the wall clock
 * and `setTimeout` in the hub, a manual clock in tests, so that backoff, crash-loop windows,
 * readiness and stop timeouts are tested without sleeping.
 */

/** A pending one-shot timer of a Clock. */
export interface ClockTimer {
  /** Cancels the timer; does nothing if it already fired or was cancelled. */
  cancel(): void;
}

/** Options of `Clock.setTimer`. */
export interface TimerOptions {
  /** The timer alone does not keep the process alive (Node's `unref`); default false. */
  unref?: boolean;
}

/** A source of time and one-shot timers. */
export interface Clock {
  /** The current time, in ms since the epoch. */
  now(): number;
  /** Calls `fn` once, `ms` milliseconds from now. */
  setTimer(ms: number, fn: () => void, opts?: TimerOptions): ClockTimer;
}

/** The wall clock: `Date.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn, opts) {
    const t = setTimeout(fn, ms);
    if (opts?.unref === true) t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** A duration for people: `250 ms`, `1.5 s`. */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
