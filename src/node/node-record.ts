/**
 * How a node presents itself: the record it registers with the hub (its endpoint as other hosts
 * reach it, its declarations, readiness), and its answer to a remote subscriber.
 */
import { hostname } from "node:os";
import type { RemoteSubscriber } from "../transport/data-server.js";
import type { ErrorBody } from "../transport/frame.js";
import type { AccessPolicy } from "./access-policy.js";
import type { NodeRecord, TopicDecl, UnreachablePeer } from "./control-protocol.js";
import type { Publisher } from "./publisher.js";
import type { Qos } from "./qos.js";
import type { ServiceServer } from "./service.js";
import type { Subscription } from "./subscription.js";

/** The endpoint other hosts reach: a tcp socket bound to every interface gets this host's name. */
export function advertisedEndpoint(ep: string, advertiseHost: string | undefined): string {
  const m = /^tcp:\/\/(0\.0\.0\.0|\*|\[::\]):(\d+)$/.exec(ep);
  if (m === null) return ep;
  return `tcp://${advertiseHost ?? hostname()}:${m[2]}`;
}

/** What a node tells the hub about itself. */
export function nodeRecord(n: {
  id: string;
  name: string;
  /** The host's name in the site (its hub's, or `$MYELIN_HOST`; see `Node.host`). */
  host: string;
  processId: string;
  endpoint: string;
  remoteEndpoint: string | undefined;
  unreachable: readonly UnreachablePeer[];
  startedAt: number;
  publishers: Iterable<Publisher<unknown>>;
  subscriptions: Iterable<Subscription<unknown>>;
  services: Iterable<ServiceServer<unknown, unknown>>;
  ready: boolean;
  /** The host's CURVE public key when the data endpoint is tcp with CURVE. */
  key?: string;
}): NodeRecord {
  const decl = (topic: string, type: string, q: Qos): TopicDecl => ({
    topic,
    type,
    qos: { reliability: q.reliability, durability: q.durability, depth: q.depth },
  });
  return {
    id: n.id,
    name: n.name,
    pid: process.pid,
    host: n.host,
    process: n.processId,
    endpoint: n.endpoint,
    ...(n.remoteEndpoint !== undefined ? { remoteEndpoint: n.remoteEndpoint } : {}),
    ...(n.unreachable.length > 0 ? { unreachable: [...n.unreachable] } : {}),
    startedAt: n.startedAt,
    pubs: [...n.publishers].map((p) => decl(p.topic, p.type.name, p.qos)),
    subs: [...n.subscriptions].map((s) =>
      s.group === undefined
        ? decl(s.topic, s.typeName, s.qos)
        : { ...decl(s.topic, s.typeName, s.qos), group: s.group },
    ),
    services: [...n.services].map((s) => ({
      service: s.name,
      type: s.type.name,
      ...(s.idempotent ? { idempotent: true } : {}),
    })),
    ready: n.ready,
    ...(process.env["MYELIN_INSTANCE"] ? { instance: process.env["MYELIN_INSTANCE"] } : {}),
    ...(n.key !== undefined ? { key: n.key } : {}),
  };
}

/**
 * A remote subscriber asks for a topic of this node: refused when no publisher has it or the type
 * differs; else every publisher of the topic serves it (with its history when asked).
 */
export function acceptRemoteSubscriber(
  nodeName: string,
  publishers: Iterable<Publisher<unknown>>,
  r: RemoteSubscriber,
  access: AccessPolicy,
): ErrorBody | undefined {
  const pubs = [...publishers].filter((p) => p.topic === r.topic);
  if (pubs.length === 0) {
    return { code: "ERR_UNKNOWN_TOPIC", message: `node ${nodeName} does not publish ${r.topic}` };
  }
  const d = access.check(r.identity, "subscribe", r.topic);
  if (!d.allowed) {
    for (const p of pubs) p.noteSubscriberRefused();
    return { code: "ERR_NOT_AUTHORIZED", message: `node ${nodeName} refused the subscription: ${d.reason}` };
  }
  const wrong = pubs.find((p) => p.type.name !== r.body.type);
  if (wrong !== undefined) {
    return {
      code: "ERR_TYPE_MISMATCH",
      message: `topic ${r.topic} has type ${wrong.type.name} (node ${nodeName}); the subscriber used ${r.body.type}`,
    };
  }
  for (const p of pubs) {
    p.addRemote(r);
    if (r.body.history > 0) p.replayTo(r, r.body.history);
    p.matched();
  }
  return undefined;
}

/**
 * A publisher created while subscribers of its topic are already connected to this node (they
 * subscribed to an earlier publisher of the topic, since closed, or to another one still open)
 * takes them on: they would otherwise never hear from it, as their subscription is already up.
 */
export function adoptRemoteSubscribers(
  pub: Publisher<unknown>,
  subscribers: Iterable<RemoteSubscriber>,
  access: AccessPolicy,
): void {
  let any = false;
  for (const r of subscribers) {
    if (r.body.type !== pub.type.name || !access.check(r.identity, "subscribe", r.topic).allowed) continue;
    pub.addRemote(r);
    any = true;
  }
  if (any) pub.matched();
}
