/**
 * The page's one connection to the hub: a WebSocket at /api/live carrying everything live (graph,
 * topic figures, samples, processes, logs, durable topics, gateway, bridges, twins, alarms). Views
 * read the state with `useLive` and say which topics they show with `useWatch`; the hub measures
 * only those.
 */
import { useEffect, useState } from "preact/hooks";
import type {
  Alarm,
  BridgeStatus,
  DurableTopic,
  GatewayStatus,
  GraphSnapshot,
  LogEntry,
  ProcessRow,
  Sample,
  TopicFlow,
  TopicStats,
} from "./types";

/** Everything the page knows. */
export interface LiveState {
  connected: boolean;
  /** Why the connection is down (shown in the header). */
  problem: string;
  host: string;
  graph: GraphSnapshot | undefined;
  stats: Record<string, TopicStats>;
  /** Per topic: subscribers' backlog, waits, drops and deadlines, from the nodes' status. */
  flow: Record<string, TopicFlow>;
  samples: Record<string, Sample>;
  processes: { available: boolean; rows: ProcessRow[]; spec?: string } | undefined;
  logs: LogEntry[];
  durable: { available: boolean; topics: DurableTopic[] } | undefined;
  gateway: { available: boolean; status?: GatewayStatus } | undefined;
  bridges: { available: boolean; bridges: BridgeStatus[] } | undefined;
  twins: { available: boolean; list?: unknown; error?: string } | undefined;
  hub: Record<string, unknown> | undefined;
  alarms: { active: Alarm[]; history: Alarm[] };
  /** Messages received over the stream, for the bench's update rate. */
  updates: number;
}

const MAX_LOGS = 5000;

class LiveStore {
  state: LiveState = {
    connected: false,
    problem: "connecting…",
    host: "",
    graph: undefined,
    stats: {},
    flow: {},
    samples: {},
    processes: undefined,
    logs: [],
    durable: undefined,
    gateway: undefined,
    bridges: undefined,
    twins: undefined,
    hub: undefined,
    alarms: { active: [], history: [] },
    updates: 0,
  };
  readonly #listeners = new Set<() => void>();
  readonly #watchers = new Map<number, { topics: string[]; sample: string | undefined }>();
  #ws: WebSocket | undefined;
  #scheduled = false;
  #retryMs = 500;

  connect(): void {
    const url = new URL("api/live", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.#ws = ws;
    ws.onopen = () => {
      this.#retryMs = 500;
      this.#set({ connected: true, problem: "" });
      this.#sendWatch();
    };
    ws.onmessage = (ev) => this.#onMessage(JSON.parse(String(ev.data)) as Record<string, unknown>);
    ws.onclose = () => {
      this.#set({
        connected: false,
        problem:
          "connection to the hub lost; reconnecting… (if it keeps failing, reopen the URL the hub printed)",
      });
      setTimeout(() => this.connect(), this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, 5000);
    };
  }

  #set(patch: Partial<LiveState>): void {
    this.state = { ...this.state, ...patch };
    if (this.#scheduled) return;
    this.#scheduled = true;
    requestAnimationFrame(() => {
      this.#scheduled = false;
      for (const l of this.#listeners) l();
    });
  }

  #onMessage(m: Record<string, unknown>): void {
    const s = this.state;
    const updates = s.updates + 1;
    switch (m["t"]) {
      case "hello":
        this.#set({ host: String(m["host"]), updates });
        break;
      case "graph":
        this.#set({ graph: m["graph"] as GraphSnapshot, updates });
        break;
      case "stats":
        this.#set({ stats: m["topics"] as Record<string, TopicStats>, updates });
        break;
      case "flow":
        this.#set({ flow: m["topics"] as Record<string, TopicFlow>, updates });
        break;
      case "sample": {
        const sample = m as unknown as Sample;
        this.#set({ samples: { ...s.samples, [sample.topic]: sample }, updates });
        break;
      }
      case "processes":
        this.#set({ processes: m as unknown as LiveState["processes"], updates });
        break;
      case "logs": {
        const lines = m["lines"] as LogEntry[];
        const logs = m["reset"] === true ? lines.slice() : s.logs.concat(lines);
        if (logs.length > MAX_LOGS) logs.splice(0, logs.length - MAX_LOGS);
        this.#set({ logs, updates });
        break;
      }
      case "durable":
        this.#set({ durable: m as unknown as LiveState["durable"], updates });
        break;
      case "gateway":
        this.#set({ gateway: m as unknown as LiveState["gateway"], updates });
        break;
      case "bridges":
        this.#set({ bridges: m as unknown as LiveState["bridges"], updates });
        break;
      case "twins":
        this.#set({ twins: m as unknown as LiveState["twins"], updates });
        break;
      case "hub":
        this.#set({ hub: m["info"] as Record<string, unknown>, updates });
        break;
      case "alarms":
        this.#set({ alarms: { active: m["active"] as Alarm[], history: m["history"] as Alarm[] }, updates });
        break;
    }
  }

  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  setWatch(id: number, topics: string[], sample: string | undefined): void {
    if (topics.length === 0 && sample === undefined) this.#watchers.delete(id);
    else this.#watchers.set(id, { topics, sample });
    this.#sendWatch();
  }

  #sendWatch(): void {
    const topics = new Set<string>();
    let sample: string | undefined;
    for (const w of this.#watchers.values()) {
      for (const t of w.topics) topics.add(t);
      sample ??= w.sample;
    }
    if (this.#ws?.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify({ t: "watch", topics: [...topics], sample }));
    }
  }
}

/** The page's live store (one per page). */
export const live = new LiveStore();

/** The live state, re-rendering the component when it changes (at most once a frame). */
export function useLive(): LiveState {
  const [, force] = useState(0);
  useEffect(() => live.subscribe(() => force((n) => n + 1)), []);
  return live.state;
}

let nextWatchId = 1;

/** Tells the hub which topics this component shows figures for, and which one's messages it shows. */
export function useWatch(topics: string[], sample?: string): void {
  const [id] = useState(() => nextWatchId++);
  const key = topics.join("\n") + "\u0000" + (sample ?? "");
  useEffect(() => {
    live.setWatch(id, topics, sample);
  }, [key]);
  useEffect(() => () => live.setWatch(id, [], undefined), []);
}
