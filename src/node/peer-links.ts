/**
 * A node's links to other nodes: one per remote data endpoint, opened on first use (by a
 * subscription or a call), shared by everything of this node towards that node, and closed once
 * the graph no longer shows the node and nothing uses the link.
 */
import { MyelinError } from "../errors.js";
import type { HelloBody } from "../transport/frame.js";
import { PeerLink } from "../transport/peer-link.js";
import { isCarrierMismatch, type Transports, type TransportSecurity } from "../transport/transport.js";
import type { GraphSnapshot, NodeRecord } from "./control-protocol.js";

/** What every link of a node is opened with. */
export interface PeerLinksOptions {
  transports: Transports;
  hello: HelloBody;
  maxMessageBytes: number;
  /** A link dropped a bad frame. */
  onWarning: (err: MyelinError) => void;
  /**
   * The security of a link to `endpoint` (CURVE with the remote host's key on tcp).
   * @throws MyelinError when the link cannot be secured (no key known for it)
   */
  securityFor?: (endpoint: string) => TransportSecurity | undefined;
}

/** The links of one node, by endpoint. */
export class PeerLinks {
  readonly #links = new Map<string, PeerLink>();
  /** Endpoints that refused this host's CURVE key (warned once each). */
  readonly #refusedBy = new Set<string>();
  readonly #opts: PeerLinksOptions;

  constructor(opts: PeerLinksOptions) {
    this.#opts = opts;
  }

  /** The link to `endpoint`, opened now if there is none. */
  get(endpoint: string): PeerLink {
    let link = this.#links.get(endpoint);
    if (link === undefined) {
      const security = this.#opts.securityFor?.(endpoint);
      link = new PeerLink({
        endpoint,
        ...(security !== undefined ? { security } : {}),
        transports: this.#opts.transports,
        onDown: (why) => {
          // A peer that refused this host's key will not admit it by retrying: say so, once.
          if (/refused this host's CURVE key/.test(why) && !this.#refusedBy.has(endpoint)) {
            this.#refusedBy.add(endpoint);
            this.#opts.onWarning(new MyelinError("ERR_NOT_AUTHORIZED", `node at ${why}`));
          } else if (isCarrierMismatch(why) && !this.#refusedBy.has(endpoint)) {
            this.#refusedBy.add(endpoint);
            this.#opts.onWarning(new MyelinError("ERR_CARRIER_MISMATCH", `node at ${why}`));
          }
        },
        hello: this.#opts.hello,
        maxMessageBytes: this.#opts.maxMessageBytes,
        pingIntervalMs: 500,
        onBadFrame: (err) =>
          this.#opts.onWarning(
            new MyelinError("ERR_PROTOCOL", `dropped a bad frame from ${endpoint}: ${err.message}`, {
              cause: err,
            }),
          ),
      });
      this.#links.set(endpoint, link);
    }
    return link;
  }

  /** True when a link to `endpoint` exists and is known to be down. */
  isDown(endpoint: string): boolean {
    return this.#links.get(endpoint)?.down === true;
  }

  /** Fails the calls waiting on the link to `endpoint`, if there is one. */
  failCalls(endpoint: string, why: string): void {
    this.#links.get(endpoint)?.failCalls(why);
  }

  /** Once the graph is settled, closes the links to nodes that are gone and carry nothing. */
  closeIdle(g: GraphSnapshot, endpointOf: (n: NodeRecord) => string): void {
    if (!g.settled) return;
    const live = new Set(g.nodes.map(endpointOf));
    for (const [ep, link] of this.#links) {
      if (!live.has(ep) && link.subscriptionCount === 0 && link.pendingCalls === 0) {
        link.close();
        this.#links.delete(ep);
      }
    }
  }

  /** The open links. */
  links(): IterableIterator<PeerLink> {
    return this.#links.values();
  }

  /** Closes every link; calls waiting on them fail with ERR_CLOSED. */
  closeAll(): void {
    for (const l of this.#links.values()) l.close();
    this.#links.clear();
  }
}
