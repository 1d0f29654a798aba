/**
 * Per-topic rate caps of the Foxglove server: a cap says "at most HZ messages a second of the
 * topics matching PATTERN" (`*` one level, `**` any number), given in the server's config or by
 * a client in its URL (`?maxHz=/camera/**:5`). A client's cap may only lower the server's.
 * Enforced per client and subscription by a token bucket of two tokens (a burst of two), so an
 * input at 15 Hz capped at 5 Hz passes every third message and capped at 10 Hz two of three.
 * Time is passed in (ms).
 */
import { MyelinError } from "../errors.js";
import { topicMatches } from "../store/topic-config.js";

/** One cap: topics matching `pattern` at most `hz` messages a second. */
export interface RateCap {
  pattern: string;
  hz: number;
}

const PATTERN_RE = /^(\/(\*\*|\*|[A-Za-z0-9_.~-]+))+$/;

/**
 * Checks a topic pattern (`/camera/*`, `/**`).
 * @throws MyelinError ERR_INVALID_ARGUMENT saying what a pattern looks like
 */
export function checkTopicPattern(pattern: string, where: string): string {
  if (typeof pattern !== "string" || !PATTERN_RE.test(pattern)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: ${JSON.stringify(pattern)} is not a topic pattern: use a topic name, with * for one level and ** for any number of levels, e.g. /camera/** or /scan`,
    );
  }
  return pattern;
}

/**
 * Parses `PATTERN:HZ` (e.g. `/camera/**:5`, `/scan:0.5`).
 * @throws MyelinError ERR_INVALID_ARGUMENT naming `where` and what is expected
 */
export function parseRateCap(text: string, where: string): RateCap {
  const i = text.lastIndexOf(":");
  const hzText = i < 0 ? "" : text.slice(i + 1);
  const hz = Number(hzText);
  if (i < 0 || hzText.trim() === "" || !Number.isFinite(hz) || hz <= 0) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: ${JSON.stringify(text)} is not a rate cap: write TOPIC_PATTERN:HZ with HZ > 0, e.g. /camera/**:5`,
    );
  }
  return { pattern: checkTopicPattern(text.slice(0, i), where), hz };
}

/** The lowest cap matching `topic` among `caps`, in Hz, or undefined when none matches. */
export function capFor(topic: string, ...caps: readonly (readonly RateCap[])[]): number | undefined {
  let hz: number | undefined;
  for (const list of caps) {
    for (const c of list) {
      if (topicMatches(c.pattern, topic) && (hz === undefined || c.hz < hz)) hz = c.hz;
    }
  }
  return hz;
}

/** A token bucket of two tokens: `take(nowMs)` says whether a message may pass now. */
export class RateGate {
  readonly hz: number;
  #tokens = 1;
  #last: number | undefined;

  constructor(hz: number) {
    this.hz = hz;
  }

  /** True if a message arriving at `nowMs` passes the cap (and uses the token). */
  take(nowMs: number): boolean {
    if (this.#last !== undefined) {
      this.#tokens = Math.min(2, this.#tokens + ((nowMs - this.#last) * this.hz) / 1000);
    }
    this.#last = nowMs;
    // A small tolerance, so a steady input at a multiple of the cap is not thrown off by jitter.
    if (this.#tokens >= 0.95) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }
}
