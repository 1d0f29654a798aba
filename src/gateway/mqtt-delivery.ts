/**
 * Delivery of messages to one MQTT client of the embedded broker: each published packet once, at
 * the highest QoS among the client's subscriptions that match its topic (MQTT-3.3.5-1).
 *
 * aedes delivers a packet to a client only if its broker counter is above the last counter that
 * client received (a dedupe meant for clustered brokers). Counters are given when a publish is
 * accepted, but packets reach clients in another order whenever one waits for storage first: the
 * gateway stores a QoS 1 publish before its PUBACK, aedes stores a retained message before routing
 * it. A QoS 0 message numbered later but routed sooner then made aedes discard an acknowledged
 * QoS 1 message; for a persistent session it also cleared a queued message it had never sent.
 * Here a packet is skipped only when this client already got that very packet (same broker id
 * and counter), which is what overlapping subscriptions need, and nothing queued is cleared.
 */
import { topicMatches, unshare } from "./mqtt-auth.js";
import { canCoalesce, PublishWriter } from "./mqtt-publish-writer.js";

type Deliver = (packet: DeliveredPacket, cb: () => void) => void;

/** The fields of an aedes packet that delivery reads. */
interface DeliveredPacket {
  topic: string;
  qos: number;
  brokerId?: string | null;
  brokerCounter?: number;
  [k: string]: unknown;
}

/** The internals of an aedes client that delivery replaces (set in its constructor) or reads. */
interface ClientInternals {
  deliver0: Deliver;
  deliverQoS: Deliver;
  duplicates: Record<string, number>;
  subscriptions: Record<string, { qos: number } | undefined>;
  broker?: {
    id?: string;
    authorizeForward?: (client: unknown, packet: DeliveredPacket) => DeliveredPacket | null | undefined;
  };
  conn?: unknown;
  id?: string;
  clean?: boolean;
  connected?: boolean;
  closed?: boolean;
  errored?: boolean;
  _nextId?: number;
}

/** How many recently delivered packets a client remembers to skip a second copy. */
const RECENT = 256;

/** The highest QoS among the client's subscriptions matching `topic`, or -1 when none matches. */
function maxMatchingQos(subs: ClientInternals["subscriptions"], topic: string): number {
  let best = -1;
  for (const filter in subs) {
    const s = subs[filter];
    if (s === undefined || s.qos <= best) continue;
    // '$' is 36: only a `$share/` filter needs unsharing.
    const f = filter.charCodeAt(0) === 36 ? unshare(filter).filter : filter;
    if (topicMatches(f, topic)) best = s.qos;
  }
  return best;
}

/** Packets a client was given recently, by broker id and counter, to skip a second copy. */
class RecentPackets {
  readonly #ownId: string | undefined;
  /** Counters of packets of the broker itself (nearly all of them). */
  readonly #own = new Set<number>();
  /** `brokerId:counter` of packets of other brokers (a restored session's queue). */
  readonly #other = new Set<string>();

  constructor(ownId: string | undefined) {
    this.#ownId = ownId;
  }

  /** Records the packet; false if it was recorded already. */
  add(id: string, counter: number | undefined): boolean {
    if (id === this.#ownId && typeof counter === "number") return remember(this.#own, counter);
    return remember(this.#other, `${id}:${counter}`);
  }
}

function remember<T>(set: Set<T>, key: T): boolean {
  if (set.has(key)) return false;
  set.add(key);
  if (set.size > RECENT) set.delete(set.values().next().value!);
  return true;
}

/** The next packet id of an aedes client (as aedes' QoSPacket takes it). */
function nextMessageId(c: ClientInternals): number {
  const id = c._nextId!;
  c._nextId = id >= 65535 ? 1 : id + 1;
  return id;
}

/**
 * Replaces the delivery functions of a client just created by `aedes.handle()`, before it
 * subscribes to anything (aedes binds them into each subscription).
 *
 * A client with a clean session gets its packets through a {@link PublishWriter}: written at once
 * into its corked connection, one `writev` per turn of the event loop, where aedes writes each
 * in an immediate of its own. That is all aedes does for such a client (it stores nothing of
 * what it sends to a clean session). A persistent session's packets go through aedes, which
 * stores each QoS 1 and 2 packet before writing it.
 */
export function deliverOncePerPacket(client: unknown, mayReceive?: (topic: string) => boolean): void {
  const c = client as ClientInternals;
  const deliver0 = c.deliver0;
  const deliverQoS = c.deliverQoS;
  const recent = new RecentPackets(c.broker?.id);
  const writer =
    canCoalesce(c.conn) && typeof c._nextId === "number" && typeof c.broker?.authorizeForward === "function"
      ? new PublishWriter(c.conn, c)
      : undefined;

  /** aedes' delivery for a clean session without its per-packet immediate; false to let aedes do it. */
  const direct = (packet: DeliveredPacket, cb: () => void, qos: number): boolean => {
    if (
      writer === undefined ||
      c.clean !== true ||
      c.connected !== true ||
      c.closed === true ||
      c.errored === true
    )
      return false;
    if (packet["properties"] !== undefined || typeof packet.topic !== "string") return false; // MQTT 5: aedes' encoder
    if (packet["nl"] === true && packet["clientId"] === c.id) {
      setImmediate(cb); // no-local (MQTT 5) as aedes
      return true;
    }
    const fwd = c.broker!.authorizeForward!(c, packet);
    if (!fwd) {
      setImmediate(cb);
      return true;
    }
    const payload = fwd["payload"];
    const written = writer.write(
      {
        topic: fwd.topic,
        payload: typeof payload === "string" || Buffer.isBuffer(payload) ? payload : Buffer.alloc(0),
        qos: qos as 0 | 1 | 2,
        retain: fwd["retain"] === true,
        dup: fwd["dup"] === true,
        messageId:
          qos === 0
            ? 0
            : typeof fwd["messageId"] === "number" && fwd["messageId"] > 0
              ? fwd["messageId"]
              : nextMessageId(c),
      },
      cb,
    );
    return written;
  };

  const deliver = (packet: DeliveredPacket, cb: () => void, viaQos: boolean): void => {
    // Refused here rather than by aedes' authorizeForward, which for a persistent session would
    // also clear a queued message (the first one without a message id, not this one).
    if (mayReceive !== undefined && !mayReceive(packet.topic)) {
      setImmediate(cb);
      return;
    }
    const id = packet.brokerId;
    if (typeof id === "string" && id !== "" && !recent.add(id, packet.brokerCounter)) {
      setImmediate(cb); // the same packet through an overlapping subscription
      return;
    }
    let qos = maxMatchingQos(c.subscriptions, packet.topic);
    if (qos < 0) qos = viaQos ? packet.qos : 0; // not through a subscription of this client
    qos = Math.min(qos, packet.qos);
    if (direct(packet, cb, qos)) return;
    // aedes' own check compares with the highest counter seen; this packet is new to the client.
    if (typeof id === "string" && id !== "") c.duplicates[id] = 0;
    if (qos === 0) deliver0(packet, cb);
    else deliverQoS(qos === packet.qos ? packet : { ...packet, qos }, cb);
  };
  c.deliver0 = (packet, cb) => deliver(packet, cb, false);
  c.deliverQoS = (packet, cb) => deliver(packet, cb, true);
}
