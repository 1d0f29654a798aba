/**
 * The connection graph as the Foxglove protocol shows it: which nodes publish and subscribe each
 * topic and serve each service. Hidden nodes (tools, the hub's own) and hidden names are left
 * out, and topics off the allow-list are not shown. `diffGraph` gives the update a client needs
 * to go from what it was sent to what is now.
 */
import type { ConnectionGraphUpdate } from "@foxglove/ws-protocol";
import type { GraphSnapshot } from "../node/index.js";

/** Topic and service names to the node names on them. */
export interface GraphState {
  published: Map<string, string[]>;
  subscribed: Map<string, string[]>;
  services: Map<string, string[]>;
}

/** The graph state of `g`, keeping topics for which `topicVisible` holds and services for which `serviceVisible` holds. */
export function graphState(
  g: GraphSnapshot,
  topicVisible: (topic: string) => boolean,
  serviceVisible: (service: string) => boolean,
): GraphState {
  const st: GraphState = { published: new Map(), subscribed: new Map(), services: new Map() };
  const add = (m: Map<string, string[]>, k: string, node: string): void => {
    const l = m.get(k);
    if (l === undefined) m.set(k, [node]);
    else if (!l.includes(node)) l.push(node);
  };
  for (const n of g.nodes) {
    if (n.name.startsWith("_")) continue;
    for (const p of n.pubs) if (topicVisible(p.topic)) add(st.published, p.topic, n.name);
    for (const s of n.subs) if (topicVisible(s.topic)) add(st.subscribed, s.topic, n.name);
    for (const s of n.services) if (serviceVisible(s.service)) add(st.services, s.service, n.name);
  }
  for (const m of [st.published, st.subscribed, st.services]) for (const l of m.values()) l.sort();
  return st;
}

const same = (a: string[] | undefined, b: string[]): boolean =>
  a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);

/** The update from `before` (undefined: nothing sent yet) to `now`, or undefined when nothing changed. */
export function diffGraph(
  before: GraphState | undefined,
  now: GraphState,
): ConnectionGraphUpdate | undefined {
  const u: ConnectionGraphUpdate = {
    op: "connectionGraphUpdate",
    publishedTopics: [],
    subscribedTopics: [],
    advertisedServices: [],
    removedTopics: [],
    removedServices: [],
  };
  for (const [name, ids] of now.published)
    if (!same(before?.published.get(name), ids)) u.publishedTopics.push({ name, publisherIds: ids });
  for (const [name, ids] of now.subscribed)
    if (!same(before?.subscribed.get(name), ids)) u.subscribedTopics.push({ name, subscriberIds: ids });
  for (const [name, ids] of now.services)
    if (!same(before?.services.get(name), ids)) u.advertisedServices.push({ name, providerIds: ids });
  if (before !== undefined) {
    const topicsNow = new Set([...now.published.keys(), ...now.subscribed.keys()]);
    for (const t of new Set([...before.published.keys(), ...before.subscribed.keys()]))
      if (!topicsNow.has(t)) u.removedTopics.push(t);
    for (const s of before.services.keys()) if (!now.services.has(s)) u.removedServices.push(s);
    // A topic that lost all its publishers (or subscribers) but not the other side: an empty list.
    for (const t of before.published.keys())
      if (topicsNow.has(t) && !now.published.has(t)) u.publishedTopics.push({ name: t, publisherIds: [] });
    for (const t of before.subscribed.keys())
      if (topicsNow.has(t) && !now.subscribed.has(t)) u.subscribedTopics.push({ name: t, subscriberIds: [] });
  }
  const empty =
    u.publishedTopics.length +
      u.subscribedTopics.length +
      u.advertisedServices.length +
      u.removedTopics.length +
      u.removedServices.length ===
    0;
  return empty && before !== undefined ? undefined : u;
}
