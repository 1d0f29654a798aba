/**
 * The receive queue of a listener or connection: a FIFO read by one async iterator (the receive
 * loop), ended on close. Carriers hook it to pause and resume their producers.
 */

/** Hooks of an {@link Inbox}. */
export interface InboxHooks {
  /** After each item is handed to the reader (in a microtask): there is room again. */
  onTake?: () => void;
  /** When the last queued item was handed to the reader. */
  onEmpty?: () => void;
}

/** A FIFO consumed by one async iterator. */
export class Inbox<T> implements AsyncIterator<T> {
  #items: T[] = [];
  #head = 0;
  #waiter: ((r: IteratorResult<T>) => void) | undefined;
  #ended = false;
  readonly #hooks: InboxHooks;

  constructor(hooks: InboxHooks = {}) {
    this.#hooks = hooks;
  }

  /** Items queued and not yet read. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Queues an item, or hands it straight to a waiting reader. Ignored once ended. */
  push(item: T): void {
    if (this.#ended) return;
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      w({ value: item, done: false });
      this.#taken();
      return;
    }
    this.#items.push(item);
  }

  /** Takes every queued item at once, oldest first (for a reader that switches to push mode). */
  takeQueued(): T[] {
    const out = this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    return out;
  }

  /** Ends the iteration; what is queued is dropped. */
  end(): void {
    this.#ended = true;
    this.#items = [];
    this.#head = 0;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head]!;
      this.#items[this.#head] = undefined as never;
      this.#head++;
      if (this.#head === this.#items.length) {
        this.#items = [];
        this.#head = 0;
        this.#hooks.onEmpty?.();
      }
      this.#taken();
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  #taken(): void {
    const f = this.#hooks.onTake;
    if (f !== undefined) queueMicrotask(f);
  }
}
