/**
 * Wiring subscriptions to the graph: each subscription gets one RemoteSource per remote publisher
 * of its topic (a subscription over that node's link, with its credit window), loses those the
 * graph no longer shows, and hears when a publisher's liveliness changes.
 */
import { MyelinError } from "../errors.js";
import type { MessageType } from "../msgs/index.js";
import type { PeerLink } from "../transport/peer-link.js";
import type { SubBody } from "../transport/frame.js";
import type { GraphSnapshot, NodeRecord } from "./control-protocol.js";
import { RemoteSource } from "./remote-source.js";
import type { Subscription } from "./subscription.js";

const CREDIT_MSGS = 16384;
const GROUP_CREDIT_MSGS = 1024;
const CREDIT_BYTES = 32 * 1024 * 1024;

/** A subscription of a node and its remote sources, by publisher node id. */
export interface SubState {
  sub: Subscription<unknown>;
  /** Read with for-await (the queue bounds the credit window) rather than a callback. */
  iterator: boolean;
  type: MessageType<unknown> | undefined;
  validate: boolean;
  /** Credit window asked for with the subscription's `window` option, if any. */
  window?: { messages?: number; bytes?: number } | undefined;
  sources: Map<string, RemoteSource>;
}

/**
 * The `window` option of a subscription, checked: whole numbers from 1 to 2^31 - 1.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the subscription and the bad value
 */
export function checkWindow(
  w: { messages?: number; bytes?: number } | undefined,
  topic: string,
): { messages?: number; bytes?: number } | undefined {
  if (w === undefined) return undefined;
  for (const [k, v] of Object.entries(w)) {
    if ((k !== "messages" && k !== "bytes") || !Number.isInteger(v) || v < 1 || v > 0x7fffffff) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `subscription to ${topic}: window.${k} must be a whole number from 1 to 2147483647, got ${String(v)}`,
      );
    }
  }
  return { ...w };
}

/**
 * Connects `st` to every remote publisher of its topic; with `authoritative`, drops the rest. A
 * publisher whose link cannot be opened (`link` throws, e.g. no CURVE key for it) is skipped and
 * reported to `onUnreachable`.
 */
export function reconcileSubscription(
  st: SubState,
  g: GraphSnapshot,
  authoritative: boolean,
  processId: string,
  link: (n: NodeRecord) => PeerLink,
  reachable: (n: NodeRecord) => boolean = () => true,
  onUnreachable?: (n: NodeRecord, err: Error) => void,
): void {
  const sub = st.sub;
  const want = new Map<string, NodeRecord>();
  for (const n of g.nodes) {
    if (n.process === processId || !reachable(n)) continue;
    if (n.pubs.some((p) => p.topic === sub.topic && p.type === sub.typeName)) want.set(n.id, n);
  }
  for (const [id, n] of want) {
    const have = st.sources.get(id);
    if (have !== undefined && have.sid !== 0) {
      // Subscribed or asking: a refusal still on its way answers the record before this one.
      have.recordChanged = true;
      continue;
    }
    // A for-await reader that blocks takes credit only as it reads: the window is its queue.
    const block = st.iterator && sub.overflow === "block";
    // A group member keeps a smaller window, so a busy member is passed over sooner.
    const full = sub.group === undefined ? CREDIT_MSGS : GROUP_CREDIT_MSGS;
    const windowMsgs = block ? Math.max(16, Math.min(sub.queueSize, full)) : (st.window?.messages ?? full);
    const windowBytes = st.window?.bytes ?? CREDIT_BYTES;
    let l: PeerLink;
    try {
      l = link(n);
    } catch (err) {
      onUnreachable?.(n, err as Error);
      continue;
    }
    const src =
      have ??
      new RemoteSource(
        sub,
        st.type,
        st.validate,
        l,
        id,
        n.name,
        windowMsgs,
        windowBytes,
        sub.group !== undefined,
      );
    const body: Omit<SubBody, "sid"> = {
      topic: sub.topic,
      type: sub.typeName,
      reliable: sub.qos.reliability === "reliable",
      history: sub.qos.durability === "transient-local" && sub.group === undefined ? sub.qos.depth : 0,
      creditMsgs: windowMsgs,
      creditBytes: windowBytes,
    };
    if (sub.group !== undefined) body.group = sub.group;
    src.request = body;
    src.recordChanged = false;
    src.sid = l.subscribe(body, src);
    st.sources.set(id, src);
  }
  if (!authoritative) return;
  for (const [id, src] of st.sources) {
    if (want.has(id)) continue;
    st.sources.delete(id);
    if (src.sid !== 0) src.link.unsubscribe(src.sid);
  }
}

/**
 * The hub removed nodes `ids`: their sources leave every subscription (a publisher that was alive
 * is reported gone) and their subscriptions on the links end.
 */
export function dropRemovedSources(subs: Iterable<SubState>, ids: Iterable<string>): void {
  for (const id of ids) {
    for (const st of subs) {
      const src = st.sources.get(id);
      if (src === undefined) continue;
      st.sources.delete(id);
      if (src.alive) st.sub.livelinessChanged(src.publisherName, false);
      if (src.sid !== 0) src.link.unsubscribe(src.sid);
    }
  }
}

/** Tells each subscription whether its publishers are alive under its liveliness lease. */
export function checkLiveliness(subs: Iterable<SubState>): void {
  const now = Date.now();
  for (const st of subs) {
    const lease = st.sub.qos.livelinessLeaseMs;
    if (lease === 0) continue;
    for (const src of st.sources.values()) {
      const alive = src.link.lastSeen !== 0 && now - src.link.lastSeen < lease;
      if (src.link.lastSeen === 0) continue;
      if (alive !== src.alive) {
        src.alive = alive;
        st.sub.livelinessChanged(src.publisherName, alive);
      }
    }
  }
}
