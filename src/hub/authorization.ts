/**
 * What the hub allows a control message to do, given the connection and identity it came on:
 *
 * - **Ownership.** A node id belongs to the connection that first registered it. A `register`,
 *   `heartbeat` or `bye` for that id from another connection is refused (and logged) unless it is
 *   a `register` carrying the node's secret: the same node, reconnected. The secret is sent only
 *   to the hub and never appears in the graph, so knowing a node id (everyone does) is not enough.
 *   A restarted process is a new node instance with a new id: nothing to take over.
 * - **Identity.** The link's identity (`local`, `anonymous`, `curve:<key>`), raised to `hub` for a
 *   node on a local link that presents this process's credential (one of the hub's plugins).
 * - **Declarations.** Each publication, subscription and service is checked against the policy;
 *   a service under `/_` is served only by the hub's own nodes. What is not granted is removed from
 *   the record and refused with an `ERR_NOT_AUTHORIZED` naming the identity, the permission and
 *   the name.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AccessPolicy, HUB_IDENTITY, isReservedService, type Permission } from "../node/access-policy.js";
import { statusProtocol } from "../node/status-service.js";
import type { NodeRecord, Refusal } from "../node/control-protocol.js";
import { PROCESS_CREDENTIAL } from "../node/process-credential.js";
import { LOCAL_IDENTITY } from "../transport/transport.js";

/** What the hub keeps to recognise a node's owner. */
export interface Ownership {
  /** The identity the node registered with. */
  identity: string;
  /** SHA-256 of the node's secret (empty: the node sent none, only its connection proves it). */
  secretHash: Buffer;
}

/** The outcome of a check: allowed, or refused with a message for the log and the sender. */
export type Verdict = { ok: true } | { ok: false; message: string };

function hash(secret: string | undefined): Buffer {
  return secret === undefined ? Buffer.alloc(0) : createHash("sha256").update(secret).digest();
}

/** The hub's checks of control messages; counts what it refuses. */
export class Authorization {
  /** The policy in force; replaced whole by a reload (`Hub.reloadPolicy`). */
  policy: AccessPolicy;
  /** Control messages refused for ownership (bye, heartbeat or register for another's node). */
  ownershipRefusals = 0;
  /** Declarations refused by the policy. */
  declarationRefusals = 0;

  constructor(policy: AccessPolicy) {
    this.policy = policy;
  }

  /** The identity of a registration: the link's, or `hub` for a node of this very process. */
  identityOf(linkIdentity: string, credential: string | undefined): string {
    if (linkIdentity !== LOCAL_IDENTITY || credential === undefined) return linkIdentity;
    const a = Buffer.from(credential);
    const b = Buffer.from(PROCESS_CREDENTIAL);
    return a.length === b.length && timingSafeEqual(a, b) ? HUB_IDENTITY : linkIdentity;
  }

  /** The ownership record of a newly registered node. */
  own(identity: string, secret: string | undefined): Ownership {
    return { identity, secretHash: hash(secret) };
  }

  /**
   * May a `register` for an id already registered on another connection take it over? Only the
   * same node (same secret, same identity), reconnected.
   */
  mayReconnect(owner: Ownership, identity: string, secret: string | undefined, what: string): Verdict {
    const h = hash(secret);
    const same =
      owner.secretHash.length > 0 &&
      h.length === owner.secretHash.length &&
      timingSafeEqual(h, owner.secretHash) &&
      owner.identity === identity;
    if (same) return { ok: true };
    this.ownershipRefusals++;
    return {
      ok: false,
      message: `refused: ${what} is registered on another connection (identity '${owner.identity}'), and this registration (identity '${identity}') does not prove it is the same node; a node can only update its own registration (a restarted node registers under a new id)`,
    };
  }

  /** A `bye` or `heartbeat` for a node registered on another connection: always refused. */
  notOwner(kind: "bye" | "heartbeat", owner: Ownership, identity: string, what: string): Verdict {
    this.ownershipRefusals++;
    return {
      ok: false,
      message: `refused ${kind} for ${what}: it is registered on another connection (identity '${owner.identity}'), this one is '${identity}'; a node can only remove or refresh its own registration`,
    };
  }

  /**
   * Removes from `node` the declarations `identity` may not make, and returns them as refusals.
   * Called before the type checks, so a refused declaration never claims a topic's type.
   */
  filterDeclarations(node: NodeRecord, identity: string): Refusal[] {
    const refused: Refusal[] = [];
    const keep =
      <T>(kind: Refusal["kind"], permission: Permission, name: (d: T) => string) =>
      (d: T): boolean => {
        const n = name(d);
        // Every node serves its own flow status (`/_status/<its name>`); calling it stays admin-only.
        if (kind === "service" && n === statusProtocol(node.name).status.service) return true;
        if (kind === "service" && isReservedService(n) && identity !== HUB_IDENTITY) {
          refused.push({
            kind,
            name: n,
            code: "ERR_NOT_AUTHORIZED",
            message: `identity '${identity}' may not serve ${n}: services under /_ are served only by the hub's own plugins (store, supervisor, gateway, bridges), never by another process; rename the service`,
          });
          return false;
        }
        const v = this.policy.check(identity, permission, n);
        if (v.allowed) return true;
        refused.push({ kind, name: n, code: "ERR_NOT_AUTHORIZED", message: v.reason });
        return false;
      };
    node.pubs = node.pubs.filter(keep("pub", "publish", (d) => d.topic));
    node.subs = node.subs.filter(keep("sub", "subscribe", (d) => d.topic));
    node.services = node.services.filter(keep("service", "serve", (d) => d.service));
    this.declarationRefusals += refused.length;
    return refused;
  }
}
