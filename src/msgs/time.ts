/** Helpers for {@link Time} and {@link Duration} values (`{ sec, nanosec }`, ROS `builtin_interfaces`). */
import { MyelinError } from "../errors.js";
import type { Duration, Time } from "./schema.js";

function split(ms: number, what: string): { sec: number; nanosec: number } {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what}: milliseconds must be a finite number, got ${String(ms)}`,
    );
  }
  const sec = Math.floor(ms / 1000);
  let nanosec = Math.round((ms - sec * 1000) * 1e6);
  let s = sec;
  if (nanosec >= 1e9) {
    s += 1;
    nanosec -= 1e9;
  }
  if (s < -0x80000000 || s > 0x7fffffff) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${what}: ${ms} ms is outside the 32-bit seconds range`);
  }
  return { sec: s, nanosec };
}

/**
 * The {@link Time} `ms` milliseconds after the Unix epoch (as from `Date.now()`); fractions of a
 * millisecond are kept to the nanosecond.
 * @throws MyelinError ERR_INVALID_ARGUMENT if `ms` is not finite or beyond the 32-bit seconds range.
 */
export function timeFromMillis(ms: number): Time {
  return split(ms, "timeFromMillis");
}

/** Milliseconds since the Unix epoch of `time` (a float; sub-millisecond digits kept). */
export function timeToMillis(time: Time): number {
  return time.sec * 1000 + time.nanosec / 1e6;
}

/**
 * The current wall-clock time as a {@link Time}, with sub-millisecond resolution: the process's
 * monotonic clock (`performance.now()`) added to the wall-clock time it started at.
 */
export function timeNow(): Time {
  return split(performance.timeOrigin + performance.now(), "timeNow");
}

/**
 * The {@link Duration} of `ms` milliseconds (may be negative: `sec` negative, `nanosec` 0..999999999).
 * @throws MyelinError ERR_INVALID_ARGUMENT if `ms` is not finite or beyond the 32-bit seconds range.
 */
export function durationFromMillis(ms: number): Duration {
  return split(ms, "durationFromMillis");
}

/** Milliseconds of `duration` (a float). */
export function durationToMillis(duration: Duration): number {
  return duration.sec * 1000 + duration.nanosec / 1e6;
}
