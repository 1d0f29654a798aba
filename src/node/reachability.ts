/**
 * Which other nodes' data endpoints this node cannot reach: a link that carries subscriptions and
 * has heard nothing from its peer for `afterMs` (never, since it opened — a wrong address, a
 * firewall, a host that is down — or since its last frame) is unreachable. The node reports the
 * list in its record, so the hub logs it and `topic info` shows it; it also warns in its own log.
 * Pure state: the caller passes the links and the time.
 */
import type { NodeRecord, UnreachablePeer } from "./control-protocol.js";
import { MAX_UNREACHABLE } from "./control-protocol.js";

/** What the check needs of a link. */
export interface LinkView {
  readonly endpoint: string;
  readonly subscriptionCount: number;
  /** Time of the last frame from the peer (0: none yet), in ms since the epoch. */
  readonly lastSeen: number;
  /** When the link was opened, in ms since the epoch. */
  readonly openedAt: number;
}

/** The unreachable endpoints of one node. */
export class Reachability {
  readonly #afterMs: number;
  readonly #list = new Map<string, UnreachablePeer>();

  /** @param afterMs silence after which a link with subscriptions is unreachable, in ms */
  constructor(afterMs: number) {
    this.#afterMs = afterMs;
  }

  /** The current list (for the node's record). */
  list(): UnreachablePeer[] {
    return [...this.#list.values()];
  }

  /**
   * Checks the links against the graph's records; returns the endpoints that became unreachable
   * and those that became reachable again since the last check.
   */
  check(
    links: Iterable<LinkView>,
    nodes: readonly NodeRecord[],
    endpointOf: (n: NodeRecord) => string,
    now: number,
  ): { lost: UnreachablePeer[]; back: UnreachablePeer[] } {
    const byEndpoint = new Map<string, NodeRecord>();
    for (const n of nodes) byEndpoint.set(endpointOf(n), n);
    const lost: UnreachablePeer[] = [];
    const back: UnreachablePeer[] = [];
    const seen = new Set<string>();
    for (const l of links) {
      seen.add(l.endpoint);
      const had = this.#list.get(l.endpoint);
      const silentMs = now - (l.lastSeen !== 0 ? l.lastSeen : l.openedAt);
      const target = byEndpoint.get(l.endpoint);
      if (l.subscriptionCount > 0 && target !== undefined && silentMs > this.#afterMs) {
        if (had !== undefined) continue;
        const u: UnreachablePeer = {
          node: target.id,
          endpoint: l.endpoint,
          reason:
            l.lastSeen === 0
              ? `no answer in ${silentMs} ms since the link opened (a wrong advertised address, a firewall, or the host is down)`
              : `silent for ${silentMs} ms (the network is cut, or the node is frozen)`,
          since: now,
        };
        if (this.#list.size >= MAX_UNREACHABLE) this.#list.delete(this.#list.keys().next().value!);
        this.#list.set(l.endpoint, u);
        lost.push(u);
      } else if (had !== undefined) {
        this.#list.delete(l.endpoint);
        back.push(had);
      }
    }
    for (const [ep, u] of this.#list) {
      if (!seen.has(ep)) {
        this.#list.delete(ep);
        back.push(u);
      }
    }
    return { lost, back };
  }
}
