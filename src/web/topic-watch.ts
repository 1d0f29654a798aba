/**
 * A topic the page is looking at: the dashboard's hidden node subscribes to it (best-effort, so a
 * slow page never slows a publisher) and measures it the way `myelin topic hz` and `bw` do — rate
 * and bandwidth over the last messages — and counts the messages lost on the way (gaps in the
 * publishers' sequence numbers). The last message is kept for the page to sample.
 */
import type { MessageInfo, Node, Subscription } from "../node/index.js";

/** A topic's figures now. */
export interface TopicStats {
  /** Messages per second over the last messages (0 once none arrived for 2 s or twice the period). */
  hz: number;
  /** Bytes per second over the same window (in-process messages, never encoded, count 0). */
  bytesPerSec: number;
  /** Messages lost on the way here since the watch began. */
  drops: number;
  /** Messages received since the watch began. */
  received: number;
  /** When the last message arrived (ms since the epoch), 0 before the first. */
  lastAt: number;
}

/** How many arrivals the rate is computed over. */
const WINDOW = 100;
/** Arrivals older than this are out of the window, in ms (long enough for a topic at 0.2 Hz). */
const WINDOW_MS = 10000;

/** One watched topic. Start with {@link TopicWatch.start}; `close()` when the page looks away. */
export class TopicWatch {
  readonly topic: string;
  readonly typeName: string;
  readonly #times = new Float64Array(WINDOW);
  readonly #sizes = new Float64Array(WINDOW);
  #head = 0;
  #n = 0;
  #received = 0;
  #sub: Subscription<unknown> | undefined;
  #last: { msg: unknown; at: number; seen: boolean } | undefined;

  private constructor(topic: string, typeName: string) {
    this.topic = topic;
    this.typeName = typeName;
  }

  /**
   * Subscribes `node` to `topic` of type `typeName`.
   * @throws TypeMismatchError when the topic changed type meanwhile
   */
  static async start(node: Node, topic: string, typeName: string): Promise<TopicWatch> {
    const w = new TopicWatch(topic, typeName);
    w.#sub = await node.createSubscription(topic, typeName, (msg, info) => w.#onMessage(msg, info), {
      qos: { reliability: "best-effort", depth: 1 },
      validate: false,
    });
    return w;
  }

  #onMessage(msg: unknown, info: MessageInfo): void {
    const now = Date.now();
    this.#times[this.#head] = now;
    this.#sizes[this.#head] = info.bytes ?? 0;
    this.#head = (this.#head + 1) % WINDOW;
    if (this.#n < WINDOW) this.#n++;
    this.#received++;
    this.#last = { msg, at: now, seen: false };
  }

  /** The figures at `now` (ms since the epoch). */
  stats(now: number): TopicStats {
    const drops = this.#sub?.stats().dropped ?? 0;
    let first = -1;
    let bytes = 0;
    let count = 0;
    for (let i = 0; i < this.#n; i++) {
      const k = (this.#head - 1 - i + WINDOW) % WINDOW;
      const t = this.#times[k]!;
      if (now - t > WINDOW_MS) break;
      first = t;
      bytes += this.#sizes[k]!;
      count++;
    }
    const lastAt = this.#last?.at ?? 0;
    if (count < 2 || first < 0) {
      return { hz: 0, bytesPerSec: 0, drops, received: this.#received, lastAt };
    }
    const span = (lastAt - first) / 1000;
    const hz = span > 0 ? (count - 1) / span : 0;
    const quiet = now - lastAt > Math.max(2000, hz > 0 ? 2000 / hz : 0);
    return {
      hz: quiet ? 0 : hz,
      bytesPerSec: quiet ? 0 : bytes / Math.max((now - first) / 1000, 0.001),
      drops,
      received: this.#received,
      lastAt,
    };
  }

  /** The last message not taken yet (each message is taken at most once), or undefined. */
  takeLatest(): { msg: unknown; at: number } | undefined {
    const l = this.#last;
    if (l === undefined || l.seen) return undefined;
    l.seen = true;
    return { msg: l.msg, at: l.at };
  }

  /** Unsubscribes. */
  close(): void {
    this.#sub?.close();
    this.#sub = undefined;
  }
}
