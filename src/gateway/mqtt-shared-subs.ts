/**
 * Shared subscriptions (`$share/<group>/<filter>`) for the embedded broker: aedes 1.x has none,
 * so the broker's message router is wrapped. Members of a group subscribe under the shared name
 * (that is what their session stores and what they unsubscribe); the wrapper listens once per
 * group on the real filter and hands each message to one member, round robin. As in MQTT 5,
 * shared subscriptions get no retained messages, and a message for a group with no member online
 * is not queued for it.
 */
import { unshare } from "./mqtt-auth.js";

type Deliver = (packet: { topic: string }, cb: () => void) => void;

/** The part of an mqemitter that aedes uses. */
export interface MessageRouter {
  on(topic: string, fn: Deliver, done?: () => void): unknown;
  removeListener(topic: string, fn: Deliver, done?: () => void): unknown;
  emit(packet: unknown, cb?: (err?: Error) => void): unknown;
  close(cb: () => void): unknown;
  [k: string]: unknown;
}

interface Group {
  filter: string;
  members: Deliver[];
  next: number;
  dispatch: Deliver;
}

/** Wraps `mq` so that `$share/<group>/<filter>` subscriptions share messages within a group. */
export function withSharedSubscriptions(mq: MessageRouter): MessageRouter & { sharedGroups(): number } {
  const groups = new Map<string, Group>();
  const on = mq.on.bind(mq);
  const off = mq.removeListener.bind(mq);
  const wrapped = Object.create(mq) as MessageRouter & { sharedGroups(): number };
  wrapped.on = (topic: string, fn: Deliver, done?: () => void): unknown => {
    const s = unshare(topic);
    if (s.group === undefined) return on(topic, fn, done);
    let g = groups.get(topic);
    if (g === undefined) {
      const group: Group = {
        filter: s.filter,
        members: [],
        next: 0,
        dispatch: (packet, cb) => {
          // '$' topics are not matched by a leading wildcard [MQTT-4.7.2-1]
          const c0 = group.filter.charCodeAt(0);
          if (packet.topic.charCodeAt(0) === 36 && (c0 === 43 || c0 === 35)) return cb();
          const n = group.members.length;
          if (n === 0) return cb();
          const m = group.members[group.next++ % n]!;
          m(packet, cb);
        },
      };
      g = group;
      groups.set(topic, g);
      g.members.push(fn);
      return on(g.filter, g.dispatch, done);
    }
    g.members.push(fn);
    done?.();
    return undefined;
  };
  wrapped.removeListener = (topic: string, fn: Deliver, done?: () => void): unknown => {
    const g = groups.get(topic);
    if (g === undefined) return off(topic, fn, done);
    const i = g.members.indexOf(fn);
    if (i >= 0) g.members.splice(i, 1);
    if (g.members.length === 0) {
      groups.delete(topic);
      return off(g.filter, g.dispatch, done);
    }
    done?.();
    return undefined;
  };
  wrapped.emit = mq.emit.bind(mq);
  wrapped.close = mq.close.bind(mq);
  wrapped.sharedGroups = () => groups.size;
  return wrapped;
}
