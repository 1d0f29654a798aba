/**
 * A token bucket shared by the forwarders of one uplink: it bounds the catch-up rate (messages
 * and bytes per second) so that a backlog after a cut does not starve live traffic on the link.
 */

/** Limits; 0 means no limit. */
export interface RateLimits {
  messagesPerSecond: number;
  bytesPerSecond: number;
}

/** Waits until sending `bytes` more is within the limits. One second of burst at most. */
export class RateLimiter {
  readonly #limits: RateLimits;
  #msgTokens: number;
  #byteTokens: number;
  #at = performance.now();
  /** Takes turns, so forwarders are served in the order they asked. */
  #queue: Promise<void> = Promise.resolve();

  constructor(limits: RateLimits) {
    this.#limits = { ...limits };
    this.#msgTokens = limits.messagesPerSecond;
    this.#byteTokens = limits.bytesPerSecond;
  }

  #refill(): void {
    const now = performance.now();
    const dt = (now - this.#at) / 1000;
    this.#at = now;
    const { messagesPerSecond: m, bytesPerSecond: b } = this.#limits;
    if (m > 0) this.#msgTokens = Math.min(m, this.#msgTokens + dt * m);
    if (b > 0) this.#byteTokens = Math.min(b, this.#byteTokens + dt * b);
  }

  /** How long to wait before `bytes` may go, in ms (0: now), taking the tokens when 0. */
  #take(bytes: number): number {
    this.#refill();
    const { messagesPerSecond: m, bytesPerSecond: b } = this.#limits;
    let waitMs = 0;
    if (m > 0 && this.#msgTokens < 1) waitMs = Math.max(waitMs, ((1 - this.#msgTokens) / m) * 1000);
    const need = Math.min(bytes, b);
    if (b > 0 && this.#byteTokens < need) waitMs = Math.max(waitMs, ((need - this.#byteTokens) / b) * 1000);
    if (waitMs > 0) return waitMs;
    if (m > 0) this.#msgTokens -= 1;
    if (b > 0) this.#byteTokens -= bytes;
    return 0;
  }

  /** Resolves when a message of `bytes` may be sent (at once when there is no limit). */
  acquire(bytes: number): Promise<void> | undefined {
    if (this.#limits.messagesPerSecond === 0 && this.#limits.bytesPerSecond === 0) return undefined;
    const first = this.#take(bytes);
    if (first === 0) return undefined;
    const turn = this.#queue.then(async () => {
      for (let w = this.#take(bytes); w > 0; w = this.#take(bytes)) {
        await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(w))));
      }
    });
    this.#queue = turn;
    return turn;
  }
}
