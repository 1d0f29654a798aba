/**
 * A Clock (src/orchestrator/clock.ts) that moves only when a test says so: timers fire in due
 * order during `advance`, so tests of backoff, timeouts and grace periods run without sleeping.
 */
import type { Clock, ClockTimer, TimerOptions } from "../src/orchestrator/clock.js";

interface PendingTimer {
  due: number;
  seq: number;
  ms: number;
  unref: boolean;
  fn: () => void;
}

/** A pending timer as `ManualClock.pending()` lists it. */
export interface PendingInfo {
  /** The delay it was set with, in ms. */
  ms: number;
  /** Time left until it fires, in ms. */
  inMs: number;
  unref: boolean;
}

/** A manual clock; starts at `start` ms since the epoch. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: PendingTimer[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void, opts?: TimerOptions): ClockTimer {
    const t: PendingTimer = {
      due: this.#now + Math.max(0, ms),
      seq: this.#seq++,
      ms,
      unref: !!opts?.unref,
      fn,
    };
    this.#timers.push(t);
    return {
      cancel: () => {
        this.#timers = this.#timers.filter((x) => x !== t);
      },
    };
  }

  /** Pending timers, the soonest first. */
  pending(): PendingInfo[] {
    return this.#sorted().map((t) => ({ ms: t.ms, inMs: t.due - this.#now, unref: t.unref }));
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in due order (and those they
   * set, if due by then), each at its own due time.
   */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const t = this.#sorted()[0];
      if (t === undefined || t.due > end) break;
      this.#timers = this.#timers.filter((x) => x !== t);
      this.#now = t.due;
      t.fn();
    }
    this.#now = end;
  }

  /** Moves time to the next pending timer and fires it (with any due at the same time); returns the time moved, in ms. */
  next(): number {
    const t = this.#sorted()[0];
    if (t === undefined) throw new Error("ManualClock.next: no timer is pending");
    const ms = t.due - this.#now;
    this.advance(ms);
    return ms;
  }

  #sorted(): PendingTimer[] {
    return [...this.#timers].sort((a, b) => a.due - b.due || a.seq - b.seq);
  }
}
