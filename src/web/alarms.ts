/**
 * Alarms: conditions that need a person's attention (a process down or crash-looping, a topic
 * dropping messages, a store near full, a bridge down, a durable consumer far behind), raised when
 * a source first reports them and cleared when it stops, with a bounded history. Pure: time is
 * passed in, so the dashboard's tests and the browser see the same book.
 */

/** How bad an alarm is. */
export type AlarmSeverity = "warning" | "error";

/** A condition a source reports as true now. */
export interface AlarmCondition {
  /** What kind of trouble, e.g. `process-down`, `crash-loop`, `topic-drops`, `store-full`, `bridge-down`. */
  kind: string;
  /** What it is about, e.g. `detector#1`, `/camera/front/image`, `site-broker`. */
  subject: string;
  severity: AlarmSeverity;
  /** One line for a person: what is wrong and, where known, why. */
  message: string;
}

/** An alarm, raised at `since` (ms since the epoch) and, once over, cleared at `clearedAt`. */
export interface Alarm extends AlarmCondition {
  /** `<source>:<kind>:<subject>`, stable while the condition lasts. */
  id: string;
  source: string;
  since: number;
  clearedAt?: number;
}

/** The active alarms and the last `historySize` ones that cleared. */
export class AlarmBook {
  readonly #active = new Map<string, Alarm>();
  readonly #history: Alarm[] = [];
  readonly #historySize: number;

  /** @param historySize how many cleared alarms to keep (default 200) */
  constructor(historySize = 200) {
    this.#historySize = historySize;
  }

  /**
   * Takes every condition `source` reports as true at `now` (ms): new ones are raised, those it no
   * longer reports are cleared. Returns true if anything changed.
   */
  update(source: string, conditions: readonly AlarmCondition[], now: number): boolean {
    let changed = false;
    const seen = new Set<string>();
    for (const c of conditions) {
      const id = `${source}:${c.kind}:${c.subject}`;
      seen.add(id);
      const a = this.#active.get(id);
      if (a === undefined) {
        this.#active.set(id, { ...c, id, source, since: now });
        changed = true;
      } else if (a.message !== c.message || a.severity !== c.severity) {
        a.message = c.message;
        a.severity = c.severity;
        changed = true;
      }
    }
    for (const [id, a] of this.#active) {
      if (a.source !== source || seen.has(id)) continue;
      this.#active.delete(id);
      this.#history.unshift({ ...a, clearedAt: now });
      if (this.#history.length > this.#historySize) this.#history.length = this.#historySize;
      changed = true;
    }
    return changed;
  }

  /** The alarms now, oldest first. */
  active(): Alarm[] {
    return [...this.#active.values()].sort((a, b) => a.since - b.since);
  }

  /** The cleared alarms, the most recently cleared first. */
  history(): Alarm[] {
    return [...this.#history];
  }
}
