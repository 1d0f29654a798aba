/**
 * The graph view's model: nodes grouped by host and process, topics (grouped by namespace when
 * there are many), and a layered layout from publishers to subscribers. Pure, so it is cheap to
 * recompute when the graph changes.
 */
import type { GraphSnapshot, NodeRecord } from "./types";

/** A box on the graph: one node, or every node of a process when processes are collapsed. */
export interface GraphBox {
  id: string;
  label: string;
  host: string;
  process: string;
  pid: number;
  nodes: string[];
  services: string[];
  ready: boolean;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** A topic, or a namespace of topics when grouped. */
export interface GraphTopic {
  id: string;
  label: string;
  /** The topics it stands for (one unless grouped). */
  topics: string[];
  type: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  /** The topic the edge carries (the first, for a namespace). */
  topic: string;
  /** `durable`: from a durable topic to one of its named consumers (from the store's status). */
  kind: "pub" | "sub" | "durable";
  /** Durable edges: messages the consumer has not acknowledged yet. */
  lag?: number;
}

export interface HostBand {
  host: string;
  y: number;
  h: number;
}

export interface ProcessFrame {
  label: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface GraphLayout {
  boxes: GraphBox[];
  topics: GraphTopic[];
  edges: GraphEdge[];
  bands: HostBand[];
  frames: ProcessFrame[];
  width: number;
  height: number;
  /** Whether processes and topics ended up grouped. */
  collapsedProcesses: boolean;
  groupedTopics: boolean;
}

export interface LayoutOptions {
  showInternal: boolean;
  /** Collapse each process into one box: "auto" does so above 60 nodes. */
  processes: "auto" | "expand" | "collapse";
  /** Group topics by namespace: "auto" does so above 120 topics. */
  topics: "auto" | "expand" | "group";
  /** Namespaces shown expanded despite grouping. */
  expanded: ReadonlySet<string>;
  /** Durable topics and their consumers with their lag (the store's status), drawn as edges. */
  durable?: readonly DurableConsumers[];
}

/** A durable topic's named consumers and how far behind each is, in messages. */
export interface DurableConsumers {
  topic: string;
  type: string;
  consumers: readonly string[];
  lags: readonly number[];
}

/** The id of the box of durable consumer `name` of `topic`. */
export const consumerBoxId = (topic: string, name: string): string => `c:${topic} ${name}`;

const BOX_W = 170;
const TOPIC_W = 190;
const COL_GAP = 50;
const ROW = 14;
const PAD = 10;

/** True for the runtime's own nodes (`_store`, `_dashboard`, tools). */
export const isHiddenNode = (n: NodeRecord): boolean => n.name.startsWith("_");
/** True for the runtime's own topics (`/_gateway/errors`, `/myelin/logs`). */
export const isInternalTopic = (t: string): boolean => t.startsWith("/_") || t.startsWith("/myelin/");

/** The namespace a topic is grouped under: its first two segments (`/sim/n12`), or its first. */
export function namespaceOf(topic: string): string {
  const parts = topic.split("/").filter((p) => p !== "");
  return parts.length > 2 ? `/${parts[0]}/${parts[1]}` : parts.length === 2 ? `/${parts[0]}` : topic;
}

/** Lays the graph out. */
export function layoutGraph(g: GraphSnapshot | undefined, opts: LayoutOptions): GraphLayout {
  const nodes = (g?.nodes ?? []).filter((n) => opts.showInternal || !isHiddenNode(n));
  const collapse = opts.processes === "collapse" || (opts.processes === "auto" && nodes.length > 60);
  // ---- boxes
  const boxOf = new Map<string, GraphBox>(); // node id -> box
  const boxes: GraphBox[] = [];
  for (const n of [...nodes].sort(
    (a, b) =>
      a.host.localeCompare(b.host) || a.process.localeCompare(b.process) || a.name.localeCompare(b.name),
  )) {
    const id = collapse ? `p:${n.host}:${n.process}` : `n:${n.id}`;
    let b = boxes.find((x) => x.id === id);
    if (b === undefined) {
      b = {
        id,
        label: n.name,
        host: n.host,
        process: n.process,
        pid: n.pid,
        nodes: [],
        services: [],
        ready: true,
        x: 0,
        y: 0,
        w: BOX_W,
        h: 0,
      };
      boxes.push(b);
    }
    b.nodes.push(n.name);
    b.ready &&= n.ready !== false;
    for (const s of n.services) {
      if (/\/(list_parameters|set_parameter)$/.test(s.service)) continue;
      if (opts.showInternal || !s.service.startsWith("/_")) b.services.push(s.service);
    }
    boxOf.set(n.id, b);
  }
  // ---- durable consumers: one box each, fed by its topic
  const consumersOf = new Map<string, { box: GraphBox; lag: number }[]>();
  for (const d of opts.durable ?? []) {
    if (!opts.showInternal && isInternalTopic(d.topic)) continue;
    d.consumers.forEach((name, i) => {
      const box: GraphBox = {
        id: consumerBoxId(d.topic, name),
        label: `⛁ ${name}`,
        host: "",
        process: "",
        pid: 0,
        nodes: [],
        services: [],
        ready: true,
        x: 0,
        y: 0,
        w: BOX_W,
        h: 0,
      };
      boxes.push(box);
      consumersOf.set(d.topic, [...(consumersOf.get(d.topic) ?? []), { box, lag: d.lags[i] ?? 0 }]);
    });
  }
  for (const b of boxes) {
    if (b.id.startsWith("c:")) {
      b.h = 34;
      continue;
    }
    if (b.nodes.length > 1) b.label = `${b.nodes.length} nodes, pid ${b.pid}`;
    const svcLines = Math.min(b.services.length, 3);
    b.h = 34 + (b.nodes.length > 1 ? Math.min(b.nodes.length, 4) * ROW : 0) + svcLines * ROW;
  }
  // ---- topics
  const topicType = new Map<string, string>();
  const pubsOf = new Map<string, Set<GraphBox>>();
  const subsOf = new Map<string, Set<GraphBox>>();
  const add = (m: Map<string, Set<GraphBox>>, t: string, b: GraphBox): void => {
    let s = m.get(t);
    if (s === undefined) m.set(t, (s = new Set()));
    s.add(b);
  };
  for (const n of nodes) {
    const b = boxOf.get(n.id)!;
    for (const d of n.pubs) {
      if (!opts.showInternal && isInternalTopic(d.topic)) continue;
      topicType.set(d.topic, d.type);
      add(pubsOf, d.topic, b);
    }
    for (const d of n.subs) {
      if (!opts.showInternal && isInternalTopic(d.topic)) continue;
      if (!topicType.has(d.topic)) topicType.set(d.topic, d.type);
      add(subsOf, d.topic, b);
    }
  }
  for (const d of opts.durable ?? []) {
    if (consumersOf.has(d.topic) && !topicType.has(d.topic)) topicType.set(d.topic, d.type);
  }
  const allTopics = [...topicType.keys()].sort();
  const group = opts.topics === "group" || (opts.topics === "auto" && allTopics.length > 120);
  const topicGroups = new Map<string, GraphTopic>();
  const groupOf = new Map<string, GraphTopic>();
  for (const t of allTopics) {
    const ns = namespaceOf(t);
    const key = group && !opts.expanded.has(ns) && ns !== t ? `ns:${ns}` : `t:${t}`;
    let gt = topicGroups.get(key);
    if (gt === undefined) {
      gt = {
        id: key,
        label: key.startsWith("ns:") ? `${ns}/*` : t,
        topics: [],
        type: topicType.get(t)!,
        x: 0,
        y: 0,
        w: TOPIC_W,
        h: 30,
      };
      topicGroups.set(key, gt);
    }
    gt.topics.push(t);
    groupOf.set(t, gt);
  }
  for (const gt of topicGroups.values()) {
    if (gt.topics.length > 1) {
      gt.label = `${gt.label} (${gt.topics.length} topics)`;
      gt.type = "";
    }
  }
  // ---- edges, deduplicated per (box, group)
  const edges: GraphEdge[] = [];
  const seen = new Set<string>();
  for (const t of allTopics) {
    const gt = groupOf.get(t)!;
    for (const b of pubsOf.get(t) ?? []) {
      const k = `${b.id}>${gt.id}`;
      if (seen.has(k)) continue;
      edges.push({ from: b.id, to: gt.id, topic: t, kind: "pub" });
      seen.add(k);
    }
    for (const b of subsOf.get(t) ?? []) {
      const k = `${gt.id}>${b.id}`;
      if (seen.has(k)) continue;
      edges.push({ from: gt.id, to: b.id, topic: t, kind: "sub" });
      seen.add(k);
    }
    for (const c of consumersOf.get(t) ?? []) {
      edges.push({ from: gt.id, to: c.box.id, topic: t, kind: "durable", lag: c.lag });
    }
  }
  // a consumer box sits on the host of its topic's first publisher (or the first host)
  const firstHost = boxes.find((b) => b.host !== "")?.host ?? "";
  for (const [t, cs] of consumersOf) {
    const pub = [...(pubsOf.get(t) ?? [])][0];
    for (const c of cs) c.box.host = pub?.host ?? firstHost;
  }
  // ---- ranks: a box sits one layer after the boxes whose topics it reads
  const rank = new Map<string, number>(boxes.map((b) => [b.id, 0]));
  const inputs = new Map<string, string[]>(); // box -> publisher boxes
  const topicPubs = new Map<string, string[]>();
  for (const e of edges) if (e.kind === "pub") topicPubs.set(e.to, [...(topicPubs.get(e.to) ?? []), e.from]);
  for (const e of edges) {
    if (e.kind === "pub") continue;
    for (const p of topicPubs.get(e.from) ?? [])
      if (p !== e.to) inputs.set(e.to, [...(inputs.get(e.to) ?? []), p]);
  }
  for (let i = 0, changed = true; changed && i < 12; i++) {
    changed = false;
    for (const b of boxes) {
      let r = 0;
      for (const p of inputs.get(b.id) ?? []) r = Math.max(r, (rank.get(p) ?? 0) + 1);
      r = Math.min(r, 10);
      if (r > rank.get(b.id)!) {
        rank.set(b.id, r);
        changed = true;
      }
    }
  }
  const topicRank = new Map<string, number>();
  for (const gt of topicGroups.values()) {
    const pubs = topicPubs.get(gt.id) ?? [];
    const r = pubs.length > 0 ? Math.min(...pubs.map((p) => rank.get(p) ?? 0)) : -1;
    topicRank.set(gt.id, r);
  }
  // ---- host bands and positions
  const hosts = [...new Set(boxes.map((b) => b.host))].sort();
  const hostOfTopic = (gt: GraphTopic): string => {
    const pub = (topicPubs.get(gt.id) ?? [])[0];
    const any = pub ?? edges.find((e) => e.from === gt.id)?.to;
    return boxes.find((b) => b.id === any)?.host ?? hosts[0] ?? "";
  };
  const colX = (col: number): number => PAD + 40 + col * ((BOX_W + TOPIC_W) / 2 + COL_GAP);
  const bands: HostBand[] = [];
  const frames: ProcessFrame[] = [];
  let y0 = PAD;
  let maxX = 0;
  for (const host of hosts.length > 0 ? hosts : [""]) {
    const colY = new Map<number, number>();
    const place = (col: number, h: number): number => {
      const y = colY.get(col) ?? y0 + 26;
      colY.set(col, y + h + 24);
      return y;
    };
    let lastFrame: { proc: string; col: number; frame: ProcessFrame } | undefined;
    for (const b of boxes
      .filter((x) => x.host === host)
      .sort((a, c) => rank.get(a.id)! - rank.get(c.id)! || a.process.localeCompare(c.process))) {
      const col = rank.get(b.id)! * 2 + 1;
      b.x = colX(col);
      b.y = place(col, b.h);
      maxX = Math.max(maxX, b.x + b.w);
      if (!collapse) {
        if (lastFrame !== undefined && lastFrame.proc === b.process && lastFrame.col === col) {
          lastFrame.frame.h = b.y + b.h + 4 - lastFrame.frame.y;
          if (!frames.includes(lastFrame.frame)) frames.push(lastFrame.frame);
        } else {
          lastFrame = {
            proc: b.process,
            col,
            frame: { label: `process ${b.pid}`, x: b.x - 6, y: b.y - 16, w: b.w + 12, h: b.h + 20 },
          };
        }
      }
    }
    for (const gt of [...topicGroups.values()].filter((t) => hostOfTopic(t) === host)) {
      const col = (topicRank.get(gt.id) ?? -1) * 2 + 2;
      gt.x = colX(col);
      gt.y = place(col, gt.h);
      maxX = Math.max(maxX, gt.x + gt.w);
    }
    const bottom = Math.max(y0 + 60, ...colY.values());
    bands.push({ host, y: y0, h: bottom - y0 });
    y0 = bottom + 16;
  }
  return {
    boxes,
    topics: [...topicGroups.values()],
    edges,
    bands,
    frames,
    width: maxX + PAD + 40,
    height: y0,
    collapsedProcesses: collapse,
    groupedTopics: group,
  };
}
