/**
 * Rate limit of the hub's refusal lines, so a hostile peer cannot fill the log with one line per
 * refused message. Per (peer, reason): the first refusal of a window is logged; the others of the
 * window are only counted, and when the window ends one summary line says how many were
 * suppressed ("suppressed 998 similar refusals from curve:… in the last 10 s: …"). Counters of
 * refusals are kept by their owners and stay exact; this only decides what is written.
 *
 * Pure state with time passed in (ms): the hub calls {@link RefusalLog.report} for each refusal
 * and {@link RefusalLog.flush} now and then (its sweep timer).
 */

/** What a hub refused since it started, by kind (exact counts), for `site status` and `/_hub/info`. */
export interface RefusalCounts {
  /** CURVE handshakes and connections refused (untrusted or revoked key, plain text, bad proof). */
  handshakes: number;
  /** Control messages for a node registered on another connection (register, bye). */
  ownership: number;
  /** Declarations the policy refused. */
  declarations: number;
  /** Control messages dropped as malformed. */
  malformed: number;
  /** Hub-to-hub messages from a link that proved no trusted key, or malformed. */
  peerMessages: number;
  /** Refusal lines not written to the log (summarized instead). */
  logLinesSuppressed: number;
}

/** Options of a RefusalLog. */
export interface RefusalLogOptions {
  /** Length of a window, in ms (default 10,000). */
  windowMs?: number;
  /** Distinct (peer, reason) pairs kept; past it, new pairs share one overflow entry (default 1,000). */
  maxKeys?: number;
  /** Where lines go. */
  log: (line: string) => void;
}

interface Window {
  start: number;
  suppressed: number;
  /** The last suppressed line, for the summary. */
  last: string;
  peer: string;
}

/** Pairs beyond `maxKeys` share this entry. */
const OVERFLOW = "\u0000overflow";

/** The rate limit of refusal lines; see the file comment. */
export class RefusalLog {
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #log: (line: string) => void;
  readonly #windows = new Map<string, Window>();
  /** Lines not written since the start (exact). */
  suppressed = 0;
  /** Refusals reported since the start (exact). */
  reported = 0;

  constructor(opts: RefusalLogOptions) {
    this.#windowMs = opts.windowMs ?? 10_000;
    this.#maxKeys = opts.maxKeys ?? 1000;
    this.#log = opts.log;
  }

  /**
   * One refusal: writes `line` unless a line for the same `peer` and `reason` was written less
   * than a window ago (then it is counted for the summary).
   * @param peer who was refused (an address, an identity), as the summary names it
   * @param reason a short, stable kind of refusal (not the full message)
   * @param now the time, in ms
   */
  report(peer: string, reason: string, line: string, now: number): void {
    this.reported++;
    let key = `${peer}\u0000${reason}`;
    let w = this.#windows.get(key);
    if (w !== undefined && now - w.start >= this.#windowMs) {
      this.#summarize(w);
      this.#windows.delete(key);
      w = undefined;
    }
    if (w === undefined && this.#windows.size >= this.#maxKeys) {
      key = OVERFLOW;
      w = this.#windows.get(key);
      if (w === undefined) {
        w = { start: now, suppressed: 0, last: line, peer: "many peers" };
        this.#windows.set(key, w);
        this.#log(
          `${line} (more than ${this.#maxKeys} distinct refused peers: similar lines are summarized every ${this.#windowMs / 1000} s)`,
        );
        return;
      }
    }
    if (w === undefined) {
      this.#windows.set(key, { start: now, suppressed: 0, last: line, peer });
      this.#log(line);
      return;
    }
    w.suppressed++;
    w.last = line;
    this.suppressed++;
  }

  /** Writes the summaries of the windows that ended by `now` and forgets them. */
  flush(now: number): void {
    for (const [key, w] of this.#windows) {
      if (now - w.start < this.#windowMs) continue;
      this.#summarize(w);
      this.#windows.delete(key);
    }
  }

  #summarize(w: Window): void {
    if (w.suppressed === 0) return;
    this.#log(
      `suppressed ${w.suppressed} similar refusal${w.suppressed === 1 ? "" : "s"} from ${w.peer} in the last ${Math.round(this.#windowMs / 1000)} s; the last: ${w.last}`,
    );
  }
}
