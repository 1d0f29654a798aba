/**
 * The one place a ZeroMQ socket is written to. zeromq.js allows a single pending `send()` per
 * socket (a second one fails with EBUSY), so every writer pushes onto this queue and one loop
 * drains it. The queue is bounded by the callers' credit accounting; `length` lets them check.
 */
import type { Socket } from "zeromq";

type Sendable = Buffer | Buffer[];

/** Serialises sends on one socket. */
export class SendQueue {
  readonly #sock: { send(msg: Sendable): Promise<void> } & Pick<Socket, "closed">;
  #items: Sendable[] = [];
  #head = 0;
  #running = false;
  #onError: (err: unknown) => void;
  #idle: (() => void)[] = [];

  /** @param onError called for a send that failed (the message is dropped, the loop goes on) */
  constructor(
    sock: { send(msg: Sendable): Promise<void> } & Pick<Socket, "closed">,
    onError: (err: unknown) => void,
  ) {
    this.#sock = sock;
    this.#onError = onError;
  }

  /** Messages waiting to be handed to ZeroMQ. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Resolves when every queued message was handed to ZeroMQ, or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void> {
    if (this.length === 0 && !this.#running) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#idle.push(done);
    });
  }

  /** Queues one message (a frame or a multipart message). */
  push(msg: Sendable): void {
    this.#items.push(msg);
    if (!this.#running) void this.#run();
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#head < this.#items.length) {
        const msg = this.#items[this.#head]!;
        this.#items[this.#head] = undefined as never;
        this.#head++;
        if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        if (this.#sock.closed) continue;
        try {
          await this.#sock.send(msg);
        } catch (err) {
          if (!this.#sock.closed) this.#onError(err);
        }
      }
      this.#items = [];
      this.#head = 0;
    } finally {
      this.#running = false;
      const idle = this.#idle;
      this.#idle = [];
      for (const f of idle) f();
    }
  }
}
