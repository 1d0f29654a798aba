/**
 * Bridges as programs see them: `startBridge` and the `BridgeHost` class. The bridge engine, the
 * offline queue and the four broker links are in bridge-host.ts (and the modules it imports),
 * which both load on first use: a program that imports the package to make nodes never evaluates
 * them (docs/performance.md, "the idle node's footprint").
 */
import type { BridgeConfig } from "./bridge-config.js";
import type { Bridge, BridgeStatus } from "./bridge.js";
import type { BridgeHostOptions, StartBridgeOptions } from "./bridge-host.js";

/**
 * Starts one bridge (any kind) on `opts.node`. It connects in the background: see
 * `bridge.waitConnected()` and `bridge.status()`.
 * @throws MyelinError ERR_BAD_CONFIG for a bad mapping or a missing data directory; ERR_STORAGE if
 * the offline queue cannot be opened.
 */
export async function startBridge(config: BridgeConfig, opts: StartBridgeOptions): Promise<Bridge> {
  const { startBridge: start } = await import("./bridge-host.js");
  return start(config, opts);
}

/** Every bridge of a configuration, run in one process, with the status service. */
export abstract class BridgeHost {
  /** Only `BridgeHostRunner` (bridge-host.ts) is a bridge host: create one with `BridgeHost.start()`. */
  protected constructor() {}

  /**
   * Starts every bridge and serves their status (the bridges' protocol), loading the bridges'
   * modules on the first call.
   * @throws MyelinError ERR_BAD_CONFIG for an invalid configuration (nothing is left running)
   */
  static async start(opts: BridgeHostOptions): Promise<BridgeHost> {
    const { BridgeHostRunner } = await import("./bridge-host.js");
    return BridgeHostRunner.start(opts);
  }

  /** The running bridges. */
  abstract get bridges(): readonly Bridge[];

  /** Status of every bridge, in configuration order. */
  abstract status(): BridgeStatus[];

  /** Stops every bridge and leaves the hub. Idempotent. */
  abstract close(): Promise<void>;

  /** `await using`: {@link close}. */
  abstract [Symbol.asyncDispose](): Promise<void>;
}
