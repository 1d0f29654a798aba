/**
 * The dashboard's flow alarms, from the nodes' status snapshots (`/_status/<node>`): a
 * subscription silent past its QoS deadline (missed deadline), a reliable subscriber whose backlog
 * makes its publisher wait (slow subscriber), a best-effort subscriber its publisher drops messages
 * for, or whose own queue overflows (dropping subscriber). Pure: the snapshots and the time are
 * passed in, and what must be remembered between two polls (the counters seen, when they last rose)
 * is in a {@link FlowMemory} the caller keeps.
 */
import type { NodeStatus } from "../node/index.js";
import type { AlarmCondition } from "./alarms.js";

/** Thresholds of the flow alarms. */
export interface FlowAlarmOptions {
  /** A reliable subscriber with at least this many messages parked for its credit is slow (default 100). */
  slowBacklog: number;
  /** How long an alarm raised by a rising counter (drops, waits) lasts after its last rise, in ms (default 10000). */
  holdMs: number;
}

/** Defaults of {@link FlowAlarmOptions}. */
export const FLOW_ALARM_DEFAULTS: FlowAlarmOptions = { slowBacklog: 100, holdMs: 10000 };

/** One remote subscriber of a publisher, for the topics view. */
export interface FlowSubscriberRow {
  /** The subscriber's node name (its id when the graph does not know it). */
  subscriber: string;
  reliable: boolean;
  group: string;
  backlog: number;
  backlogBytes: number;
  waits: number;
  dropped: number;
  /** `slow`, `dropping` or `ok`, as the alarms judge it now. */
  state: "ok" | "slow" | "dropping";
}

/** One publisher of a topic, for the topics view. */
export interface FlowPublisherRow {
  /** `<node name>#<index>`. */
  publisher: string;
  published: number;
  subscribers: FlowSubscriberRow[];
}

/** One subscription of a topic, for the topics view. */
export interface FlowSubscriptionRow {
  node: string;
  received: number;
  dropped: number;
  pending: number;
  deadlineMs: number;
  deadlinesMissed: number;
  silentMs: number;
  /** True while the topic has been silent longer than the deadline. */
  late: boolean;
}

/** What the topics view shows per topic. */
export interface TopicFlow {
  publishers: FlowPublisherRow[];
  subscriptions: FlowSubscriptionRow[];
}

/** Counters seen at the previous poll and when they last rose (ms); keep one per feed. */
export type FlowMemory = Map<string, { value: number; roseAt: number }>;

/**
 * Whether the counter `key` rose within `holdMs` before `now`. The first sight of a counter only
 * records it: what was lost before the dashboard looked does not raise an alarm.
 */
function rising(
  mem: FlowMemory,
  seen: Set<string>,
  key: string,
  value: number,
  now: number,
  holdMs: number,
): boolean {
  seen.add(key);
  const m = mem.get(key);
  if (m === undefined) {
    mem.set(key, { value, roseAt: 0 });
    return false;
  }
  if (value > m.value) m.roseAt = now;
  m.value = value;
  return m.roseAt > 0 && now - m.roseAt < holdMs;
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`;

/**
 * Judges the snapshots `statuses` taken at `now` (ms): returns the alarm conditions and the flow of
 * each topic. `nameOf` turns a node id into its name (from the graph); `ignore` names subscriber
 * nodes whose trouble is not news (the dashboard's own watcher). `mem` is updated in place; entries
 * of subscribers and subscriptions gone from the snapshots are forgotten.
 */
export function flowAlarms(
  statuses: readonly NodeStatus[],
  nameOf: (id: string) => string | undefined,
  mem: FlowMemory,
  now: number,
  opts: Partial<FlowAlarmOptions> = {},
  ignore: (nodeName: string) => boolean = () => false,
): { conditions: AlarmCondition[]; topics: Record<string, TopicFlow> } {
  const o = { ...FLOW_ALARM_DEFAULTS, ...opts };
  const conditions: AlarmCondition[] = [];
  const topics: Record<string, TopicFlow> = {};
  const seen = new Set<string>();
  const flow = (topic: string): TopicFlow => (topics[topic] ??= { publishers: [], subscriptions: [] });
  for (const st of statuses) {
    for (const s of st.subscriptions) {
      if (ignore(st.node)) continue;
      const late = s.deadlineMs > 0 && s.silentMs > s.deadlineMs;
      flow(s.topic).subscriptions.push({
        node: st.node,
        received: s.received,
        dropped: s.dropped,
        pending: s.pending,
        deadlineMs: s.deadlineMs,
        deadlinesMissed: s.deadlinesMissed,
        silentMs: s.silentMs,
        late,
      });
      if (late) {
        conditions.push({
          kind: "deadline-missed",
          subject: `${s.topic} → ${st.node}`,
          severity: "warning",
          message: `${st.node} has had nothing on ${s.topic} for ${(s.silentMs / 1000).toFixed(1)} s, past its deadline of ${s.deadlineMs} ms (${plural(s.deadlinesMissed, "deadline")} missed so far)`,
        });
      }
      const key = `sub|${st.id}|${s.topic}|${s.group}`;
      if (rising(mem, seen, key, s.dropped, now, o.holdMs)) {
        conditions.push({
          kind: "dropping-subscriber",
          subject: `${s.topic} → ${st.node}`,
          severity: "warning",
          message: `${st.node} is losing messages of ${s.topic}: ${plural(s.dropped, "message")} dropped by its queue or missing from the sequence so far (it reads slower than the topic's rate)`,
        });
      }
    }
    for (const p of st.publishers) {
      const row: FlowPublisherRow = { publisher: p.id, published: p.published, subscribers: [] };
      for (const r of p.subscribers) {
        const name = nameOf(r.node) ?? r.node;
        if (ignore(name)) continue;
        const key = `pub|${st.id}|${p.id}|${r.node}|${r.group}`;
        const dropping = !r.reliable && rising(mem, seen, `${key}|dropped`, r.dropped, now, o.holdMs);
        const waited = r.reliable && rising(mem, seen, `${key}|waits`, r.waits, now, o.holdMs);
        const slow = r.reliable && (r.backlog >= o.slowBacklog || waited);
        row.subscribers.push({
          subscriber: name,
          reliable: r.reliable,
          group: r.group,
          backlog: r.backlog,
          backlogBytes: r.backlogBytes,
          waits: r.waits,
          dropped: r.dropped,
          state: slow ? "slow" : dropping ? "dropping" : "ok",
        });
        const subject = `${p.topic} ${p.id} → ${name}`;
        if (slow) {
          conditions.push({
            kind: "slow-subscriber",
            subject,
            severity: "warning",
            message: `${name} is slow on ${p.topic}: ${plural(r.backlog, "message")} (${r.backlogBytes} bytes) wait for its credit at publisher ${p.id}, which had to wait ${plural(r.waits, "time")} for it`,
          });
        }
        if (dropping) {
          conditions.push({
            kind: "dropping-subscriber",
            subject,
            severity: "warning",
            message: `publisher ${p.id} dropped ${plural(r.dropped, "message")} of ${p.topic} for ${name} so far: it is best-effort and out of credit (it reads slower than the topic's rate)`,
          });
        }
      }
      flow(p.topic).publishers.push(row);
    }
  }
  for (const k of mem.keys()) if (!seen.has(k)) mem.delete(k);
  return { conditions, topics };
}
