/**
 * The `StoreService` class as programs see it: what the running store of durable topics offers,
 * and `StoreService.start()`. The store itself (the segment log, consumers, dedup, retention) is
 * `StoreServer` in service.ts, which `start()` loads on first use: a program that imports
 * the package to make nodes never evaluates it (docs/performance.md, "the idle node's footprint").
 */
import type { StoreServiceOptions, StoreTopicMetrics } from "./service.js";

/** The durable-topic service. Start with `StoreService.start()`, stop with `close()`. */
export abstract class StoreService {
  /** Only `StoreServer` is a store: create one with `StoreService.start()`. */
  protected constructor() {}

  /**
   * Opens the data directory and serves the store services through the hub (loading the store's
   * modules on the first call).
   * @throws MyelinError ERR_LOCKED when another process holds the data directory; ERR_STORAGE when
   *   it cannot be created or locked
   */
  static async start(opts: StoreServiceOptions): Promise<StoreService> {
    const { StoreServer } = await import("./service.js");
    return StoreServer.start(opts);
  }

  /** Where the store stands: its directory, free space, and a full-disk episode if one is going on. */
  abstract health(): {
    dataDir: string;
    freeBytes: number | undefined;
    diskFull: { since: number; first: string; refused: number } | undefined;
  };

  /**
   * Calls `fn` after every fsync of every topic's log with how long it took, in seconds (one
   * observer; undefined removes it). For the metrics' fsync histogram.
   */
  abstract observeFsync(fn: ((seconds: number) => void) | undefined): void;

  /**
   * The topics the store has opened since it started (a publish, a consumer, `topic info`, the
   * uplink), with their consumers, read without waiting: for the metrics. Costs one pass over the
   * open topics and their consumers.
   */
  abstract metrics(): StoreTopicMetrics[];

  /** Closes every log and state file, and leaves the hub. */
  abstract close(): Promise<void>;

  /** `await using`: {@link close}. */
  abstract [Symbol.asyncDispose](): Promise<void>;
}
