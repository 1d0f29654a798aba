/**
 * A node's flow status: the protocol (`/_status/<node>`, std_srvs/Trigger with JSON in the
 * message), the snapshot every node with a publisher or a subscription serves, and its client.
 * It tells what only the two ends of a topic know: per subscription what arrived, was dropped and
 * how long the topic has been silent against its `deadline`; per publisher and per remote
 * subscriber the backlog parked for credit, how often a reliable subscriber made `publish()` wait,
 * and what a best-effort subscriber lost for lack of credit. The dashboard raises its alarms
 * (missed deadline, slow subscriber, dropping subscriber) from it.
 */
import { DecodeError, MyelinError } from "../errors.js";
import { std_srvs } from "../msgs/index.js";
import type { Node } from "./node.js";
import type { Publisher } from "./publisher.js";
import type { CallOptions } from "./service.js";
import type { Subscription } from "./subscription.js";
import { defineProtocol, fetchJsonStatus, serveProtocol, type ProtocolServer } from "./service-protocol.js";

/** One subscription of a node, as its status tells it. */
export interface SubscriptionStatus {
  topic: string;
  type: string;
  reliable: boolean;
  /** Queue group, or "" for a plain subscription. */
  group: string;
  received: number;
  /** Lost: dropped by the queue's overflow policy, or missing from a publisher's sequence. */
  dropped: number;
  /** Waiting in the queue. */
  pending: number;
  invalid: number;
  /** The QoS deadline in ms; 0 = none. */
  deadlineMs: number;
  /** Deadlines missed since the subscription began. */
  deadlinesMissed: number;
  /** Ms since the last message arrived (since the subscription began when none did). */
  silentMs: number;
}

/** One remote subscriber of a publisher, as the publisher sees it. */
export interface RemoteSubscriberStatus {
  /** Id of the subscribing node (as in the graph's node records). */
  node: string;
  reliable: boolean;
  group: string;
  /** Messages parked waiting for the subscriber's credit (reliable), and their bytes. */
  backlog: number;
  backlogBytes: number;
  /** Times `publish()` had to wait for this subscriber (reliable, its backlog at `maxPending`). */
  waits: number;
  /** Messages dropped for lack of its credit (best-effort). */
  dropped: number;
}

/** One publisher of a node and its remote subscribers. */
export interface PublisherStatus {
  topic: string;
  type: string;
  /** `<node name>#<index>`, as in every message's info. */
  id: string;
  published: number;
  subscribers: RemoteSubscriberStatus[];
}

/** What `/_status/<node>` answers. */
export interface NodeStatus {
  /** The node's name and id. */
  node: string;
  id: string;
  /** When the snapshot was taken, ms since the epoch (the node's clock). */
  at: number;
  subscriptions: SubscriptionStatus[];
  publishers: PublisherStatus[];
}

/**
 * The status service of the node named `nodeName`.
 * @throws MyelinError ERR_INVALID_ARGUMENT if `nodeName` cannot be a node's name
 */
export function statusProtocol(nodeName: string) {
  if (typeof nodeName !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(nodeName)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `node name ${JSON.stringify(nodeName)} is not valid: use letters, digits, '_', '-', '.', starting with a letter or '_' (as \`myelin node list\` shows it)`,
    );
  }
  return defineProtocol({
    /** The node's {@link NodeStatus}, as JSON in the message. */
    status: { service: `/_status/${nodeName}`, type: std_srvs.Trigger },
  });
}

/** Takes the snapshot of a node's publishers and subscriptions at `now` (ms). */
export function nodeStatus(
  node: { name: string; id: string },
  publishers: Iterable<Publisher<unknown>>,
  subscriptions: Iterable<Subscription<unknown>>,
  now: number,
): NodeStatus {
  const subs: SubscriptionStatus[] = [];
  for (const s of subscriptions) {
    const st = s.stats();
    subs.push({
      topic: s.topic,
      type: s.typeName,
      reliable: s.qos.reliability === "reliable",
      group: s.group ?? "",
      received: st.received,
      dropped: st.dropped,
      pending: st.pending,
      invalid: st.invalid,
      deadlineMs: s.qos.deadlineMs,
      deadlinesMissed: st.deadlinesMissed,
      silentMs: Math.max(0, now - s.lastMessageAt),
    });
  }
  const pubs: PublisherStatus[] = [];
  for (const p of publishers) {
    pubs.push({
      topic: p.topic,
      type: p.type.name,
      id: p.id,
      published: p.stats().published,
      subscribers: p.remoteSubscribers().map((r) => ({
        node: r.node,
        reliable: r.reliable,
        group: r.group ?? "",
        backlog: r.pending,
        backlogBytes: r.pendingBytes,
        waits: r.waits,
        dropped: r.dropped,
      })),
    });
  }
  return { node: node.name, id: node.id, at: now, subscriptions: subs, publishers: pubs };
}

/** Serves `status()` (read on each call) as the status service of `node`. */
export function serveNodeStatus(node: Node, status: () => NodeStatus): Promise<ProtocolServer> {
  return serveProtocol(node, statusProtocol(node.name), {
    status: () => ({ success: true, message: JSON.stringify(status()) }),
  });
}

/**
 * Asks the node named `nodeName` for its status, through `node`.
 * @throws ServiceError ERR_NO_SERVER when no such node serves its status (it has no publisher and
 *   no subscription, or is of an older version); TimeoutError ERR_TIMEOUT after `opts.timeoutMs`
 * @throws DecodeError ERR_DECODE when the reply is not a node status
 */
export async function fetchNodeStatus(
  node: Node,
  nodeName: string,
  opts: CallOptions = {},
): Promise<NodeStatus> {
  const proto = statusProtocol(nodeName);
  const s = (await fetchJsonStatus(node, proto.status, opts)) as Partial<NodeStatus> | null;
  if (
    typeof s !== "object" ||
    s === null ||
    !Array.isArray(s.subscriptions) ||
    !Array.isArray(s.publishers) ||
    typeof s.node !== "string"
  ) {
    throw new DecodeError(
      "ERR_DECODE",
      `the reply of ${proto.status.service} is not a node status; is that node of another Myelin version?`,
    );
  }
  return s as NodeStatus;
}
