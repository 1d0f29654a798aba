/**
 * Watches a key directory's trust lists (trusted.yaml, the site files) so that a key revoked or
 * trusted while a process runs takes effect on the connections already up, not only on the next
 * handshake. Changes are seen through `fs.watch` of the directories (at once) and a poll of the
 * files' stamps (every `pollMs`, for file systems where `fs.watch` says nothing), and on
 * {@link TrustWatch.check} (SIGHUP in the hub).
 *
 * A subscriber is told the keys that left the trusted set and the keys that joined it. The watch
 * runs while it has subscribers and never keeps the process alive.
 */
import { watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";
import type { KeyStore } from "./key-store.js";

/** What changed in the trusted set. */
export interface TrustChange {
  /** Keys no longer trusted (Z85). */
  readonly revoked: readonly string[];
  /** Keys newly trusted (Z85). */
  readonly trusted: readonly string[];
}

/** Options of a TrustWatch. */
export interface TrustWatchOptions {
  /** How often the files' stamps are compared, in ms (default 1000). */
  pollMs?: number;
  /** Told when a list cannot be read (the keys it held count as revoked until it can). */
  onError?: (err: Error) => void;
}

/** The watch of one key store's trust lists; see the file comment. */
export class TrustWatch {
  readonly #store: KeyStore;
  readonly #pollMs: number;
  readonly #onError: ((err: Error) => void) | undefined;
  readonly #subscribers = new Set<(c: TrustChange) => void>();
  #keys: ReadonlySet<string> = new Set();
  #stamp = "";
  #timer: NodeJS.Timeout | undefined;
  #watchers: FSWatcher[] = [];

  constructor(store: KeyStore, opts: TrustWatchOptions = {}) {
    this.#store = store;
    this.#pollMs = opts.pollMs ?? 1000;
    this.#onError = opts.onError;
  }

  /**
   * Calls `fn` on each change of the trusted set, from now on.
   * @returns the unsubscribe function (the watch stops with its last subscriber)
   */
  subscribe(fn: (c: TrustChange) => void): () => void {
    if (this.#subscribers.size === 0) this.#start();
    this.#subscribers.add(fn);
    return () => {
      if (!this.#subscribers.delete(fn)) return;
      if (this.#subscribers.size === 0) this.#stop();
    };
  }

  /** Compares the lists with what was last seen now, telling subscribers of a change. */
  check(): void {
    const stamp = this.#store.trustStamp();
    if (stamp === this.#stamp) return;
    this.#stamp = stamp;
    let next: ReadonlySet<string>;
    try {
      next = this.#store.trustedKeys();
    } catch (err) {
      // A list that cannot be read trusts no one (isTrusted throws to the handshakes too).
      this.#onError?.(err as Error);
      next = new Set();
    }
    const revoked = [...this.#keys].filter((k) => !next.has(k));
    const trusted = [...next].filter((k) => !this.#keys.has(k));
    this.#keys = next;
    if (revoked.length === 0 && trusted.length === 0) return;
    for (const fn of [...this.#subscribers]) fn({ revoked, trusted });
  }

  #start(): void {
    this.#stamp = this.#store.trustStamp();
    try {
      this.#keys = this.#store.trustedKeys();
    } catch {
      this.#keys = new Set();
    }
    this.#timer = setInterval(() => this.check(), this.#pollMs);
    this.#timer.unref();
    const dirs = new Set([this.#store.dir, ...this.#store.siteFiles.map((f) => dirname(f))]);
    for (const d of dirs) {
      try {
        const w = watch(d, { persistent: false }, () => this.check());
        w.on("error", () => w.close());
        this.#watchers.push(w);
      } catch {
        // The directory does not exist (yet): the poll sees the files when they come.
      }
    }
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
  }
}
