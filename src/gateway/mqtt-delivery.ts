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

type Deliver = (packet: DeliveredPacket, cb: () => void) => void;

/** The fields of an aedes packet that delivery reads. */
interface DeliveredPacket {
  topic: string;
  qos: number;
  brokerId?: string | null;
  brokerCounter?: number;
  [k: string]: unknown;
}

/** The internals of an aedes client that delivery replaces (set in its constructor). */
interface ClientInternals {
  deliver0: Deliver;
  deliverQoS: Deliver;
  duplicates: Record<string, number>;
  subscriptions: Record<string, { qos: number } | undefined>;
}

/** How many recently delivered packets a client remembers to skip a second copy. */
const RECENT = 256;

/** The highest QoS among the client's subscriptions matching `topic`, or -1 when none matches. */
function maxMatchingQos(subs: ClientInternals["subscriptions"], topic: string): number {
  let best = -1;
  for (const filter in subs) {
    const s = subs[filter];
    if (s === undefined || s.qos <= best) continue;
    if (topicMatches(unshare(filter).filter, topic)) best = s.qos;
  }
  return best;
}

/**
 * Replaces the delivery functions of a client just created by `aedes.handle()`, before it
 * subscribes to anything (aedes binds them into each subscription).
 */
export function deliverOncePerPacket(client: unknown, mayReceive?: (topic: string) => boolean): void {
  const c = client as ClientInternals;
  const deliver0 = c.deliver0;
  const deliverQoS = c.deliverQoS;
  const recent = new Set<string>();

  const deliver = (packet: DeliveredPacket, cb: () => void, viaQos: boolean): void => {
    // Refused here rather than by aedes' authorizeForward, which for a persistent session would
    // also clear a queued message (the first one without a message id, not this one).
    if (mayReceive !== undefined && !mayReceive(packet.topic)) {
      setImmediate(cb);
      return;
    }
    const id = packet.brokerId;
    if (typeof id === "string" && id !== "") {
      const key = `${id}:${packet.brokerCounter}`;
      if (recent.has(key)) {
        setImmediate(cb); // the same packet through an overlapping subscription
        return;
      }
      recent.add(key);
      if (recent.size > RECENT) recent.delete(recent.values().next().value!);
      // aedes' own check compares with the highest counter seen; this packet is new to the client.
      delete c.duplicates[id];
    }
    let qos = maxMatchingQos(c.subscriptions, packet.topic);
    if (qos < 0) qos = viaQos ? packet.qos : 0; // not through a subscription of this client
    qos = Math.min(qos, packet.qos);
    if (qos === 0) {
      deliver0(packet, cb);
      return;
    }
    deliverQoS(qos === packet.qos ? packet : { ...packet, qos }, cb);
  };
  c.deliver0 = (packet, cb) => deliver(packet, cb, false);
  c.deliverQoS = (packet, cb) => deliver(packet, cb, true);
}
