/** The dashboard: a header with the hub and its alarms, and one view per tab (the hash routes). */
import { useEffect, useState } from "preact/hooks";
import { useLive } from "./live";
import { GraphView } from "./views/GraphView";
import { LogsView } from "./views/LogsView";
import { ParamsView } from "./views/ParamsView";
import { ProcessesView } from "./views/ProcessesView";
import { PublishView } from "./views/PublishView";
import { AlarmsView, DurableView, GatewayView, TwinsView } from "./views/StatusViews";
import { TopicsView } from "./views/TopicsView";

const TABS = [
  ["graph", "Graph"],
  ["topics", "Topics"],
  ["publish", "Publish & call"],
  ["params", "Parameters"],
  ["processes", "Processes"],
  ["logs", "Logs"],
  ["durable", "Durable topics"],
  ["gateway", "Gateway & bridges"],
  ["twins", "Twins"],
  ["alarms", "Alarms"],
] as const;
type Tab = (typeof TABS)[number][0];

function route(): { tab: Tab; topic: string | undefined } {
  const [tab, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const known = TABS.some(([t]) => t === tab);
  const topic = rest.length > 0 ? decodeURIComponent("/" + rest.join("/")) : undefined;
  return { tab: known ? (tab as Tab) : "graph", topic };
}

export function App() {
  const s = useLive();
  const [r, setR] = useState(route);
  useEffect(() => {
    const on = (): void => setR(route());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  const go = (tab: Tab, topic?: string): void => {
    location.hash = `#/${tab}${topic !== undefined ? topic : ""}`;
  };
  const nodes = (s.graph?.nodes ?? []).filter((n) => !n.name.startsWith("_")).length;
  const alarms = s.alarms.active;
  return (
    <div class="app">
      <header>
        <span class="brand">Myelin</span>
        <span class="muted">
          {s.host !== "" ? `hub on ${s.host}` : ""} · {nodes} nodes
        </span>
        <span class={`conn ${s.connected ? "up" : "down"}`} data-testid="connection">
          {s.connected ? "live" : s.problem}
        </span>
        <a
          class={`alarm-badge ${alarms.some((a) => a.severity === "error") ? "error" : alarms.length > 0 ? "warning" : "none"}`}
          href="#/alarms"
          data-testid="alarm-badge"
        >
          {alarms.length} alarm{alarms.length === 1 ? "" : "s"}
        </a>
      </header>
      <nav>
        {TABS.map(([t, label]) => (
          <a key={t} href={`#/${t}`} class={r.tab === t ? "active" : ""} data-tab={t}>
            {label}
            {t === "alarms" && alarms.length > 0 ? ` (${alarms.length})` : ""}
          </a>
        ))}
      </nav>
      <main>
        {r.tab === "graph" && <GraphView onTopic={(t) => go("topics", t)} />}
        {r.tab === "topics" && <TopicsView selected={r.topic} onSelect={(t) => go("topics", t)} />}
        {r.tab === "publish" && <PublishView />}
        {r.tab === "params" && <ParamsView />}
        {r.tab === "processes" && <ProcessesView />}
        {r.tab === "logs" && <LogsView />}
        {r.tab === "durable" && <DurableView />}
        {r.tab === "gateway" && <GatewayView />}
        {r.tab === "twins" && <TwinsView />}
        {r.tab === "alarms" && <AlarmsView />}
      </main>
    </div>
  );
}
