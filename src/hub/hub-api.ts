/**
 * The `Hub` class as programs see it: what a running hub offers, and `Hub.start()`. The hub
 * itself (the registry, federation, scouting, policy; some twenty modules) is `HubServer`
 * in hub.ts, which `start()` loads on first use: a program that imports the package to make
 * nodes never evaluates it, and keeps the memory it would hold (docs/performance.md, "the idle
 * node's footprint").
 */
import type { GraphSnapshot } from "../node/control-protocol.js";
import type { PolicyDoc } from "../node/access-policy.js";
import type { SiteStatus } from "./federation.js";
import type { RefusalCounts } from "./refusal-log.js";
import type { HubOptions, HubSecurityStatus, HubStats, PolicyReload } from "./hub.js";

/** A running hub. Create with `Hub.start()`; stop with `close()` or `await using`. */
export abstract class Hub {
  /** Id of this hub instance. */
  abstract readonly id: string;
  /** Control messages dropped because they were malformed. */
  abstract badMessages: number;
  /** Handshakes and connections refused on CURVE endpoints. */
  abstract refusedHandshakes: number;
  /** Hub-to-hub messages dropped because they came on a link that proved no trusted key. */
  abstract refusedPeerMessages: number;

  /** Only `HubServer` is a hub: create one with `Hub.start()`. */
  protected constructor() {}

  /**
   * Starts a hub on `<runtimeDir>/hub.sock` and the `listen` endpoints (loading the hub's
   * modules on the first call).
   * @throws MyelinError ERR_INVALID_ARGUMENT if another hub already runs in the runtime directory
   */
  static async start(opts: Partial<HubOptions> = {}): Promise<Hub> {
    const { HubServer } = await import("./hub.js");
    return HubServer.start(opts);
  }

  /** Control messages and declarations refused so far (ownership, policy). */
  abstract get refusals(): { ownership: number; declarations: number };

  /** Everything refused since the start, by kind (exact), and the log lines suppressed. */
  abstract refusalCounts(): RefusalCounts;

  /**
   * Reads the policy file again and, when it is valid, puts it in force: later registrations are
   * checked against it, and every node of this hub is asked to register again, which hands it the
   * new policy (its data server checks subscribers and callers with it) and re-checks its
   * declarations. A bad file changes nothing.
   * @throws MyelinError ERR_BAD_CONFIG naming the file and the entry (the old policy stays);
   *   ERR_INVALID_ARGUMENT when the hub was started without a policy file
   */
  abstract reloadPolicy(): PolicyReload;

  /** The policy in force (the default when no policy file was given). */
  abstract get policy(): PolicyDoc;

  /** This host's name in the site. */
  abstract get host(): string;

  /** The site as this hub sees it: its peers, their state, lag and versions. */
  abstract siteStatus(): SiteStatus;

  /** A node silent for this long is removed, in ms. */
  abstract get nodeTimeoutMs(): number;

  /** Endpoints the hub listens on (ipc first). */
  abstract get endpoints(): readonly string[];

  /** How the network endpoints are secured. */
  abstract security(): HubSecurityStatus;

  /** The graph's size and the refusals so far, for the metrics; costs one pass over the graph. */
  abstract stats(): HubStats;

  /** The current graph (this hub's nodes and those its peers share). */
  abstract graph(): GraphSnapshot;

  /** Stops the hub. Nodes keep running and re-register with the next hub. */
  abstract close(): void;

  /** Reads the trust lists again now (also done by a watch of the key directory and a 1 s poll). */
  abstract checkTrust(): void;

  /** `await using`: {@link close}. */
  abstract [Symbol.asyncDispose](): Promise<void>;
}
