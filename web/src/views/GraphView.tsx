/** The graph: nodes ↔ topics, grouped by host and process, edges labelled with live rates. */
import { useMemo, useState } from "preact/hooks";
import { hz } from "../format";
import { layoutGraph, type GraphBox, type GraphTopic } from "../graph-model";
import { useLive, useWatch } from "../live";

/** How many topics' rates the graph asks for at most. */
const MAX_RATES = 150;

export function GraphView(props: { onTopic: (t: string) => void }) {
  const s = useLive();
  const [showInternal, setShowInternal] = useState(false);
  const [processes, setProcesses] = useState<"auto" | "expand" | "collapse">("auto");
  const [topics, setTopics] = useState<"auto" | "expand" | "group">("auto");
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const [zoom, setZoom] = useState(1);
  const layout = useMemo(
    () =>
      layoutGraph(s.graph, {
        showInternal,
        processes,
        topics,
        expanded,
        ...(s.durable?.available === true ? { durable: s.durable.topics } : {}),
      }),
    [s.graph, s.durable, showInternal, processes, topics, expanded],
  );
  const shown = useMemo(
    () =>
      layout.topics
        .filter((t) => t.topics.length === 1)
        .map((t) => t.topics[0]!)
        .slice(0, MAX_RATES),
    [layout],
  );
  useWatch(shown);
  const pos = new Map<string, GraphBox | GraphTopic>();
  for (const b of layout.boxes) pos.set(b.id, b);
  for (const t of layout.topics) pos.set(t.id, t);
  const visibleNodes = layout.boxes.reduce((n, b) => n + b.nodes.length, 0);
  return (
    <section class="view graph-view">
      <div class="toolbar">
        <label>
          <input
            type="checkbox"
            checked={showInternal}
            onChange={(e) => setShowInternal(e.currentTarget.checked)}
          />{" "}
          internal nodes and topics
        </label>
        <label>
          processes{" "}
          <select value={processes} onChange={(e) => setProcesses(e.currentTarget.value as typeof processes)}>
            <option value="auto">auto</option>
            <option value="expand">one box per node</option>
            <option value="collapse">one box per process</option>
          </select>
        </label>
        <label>
          topics{" "}
          <select value={topics} onChange={(e) => setTopics(e.currentTarget.value as typeof topics)}>
            <option value="auto">auto</option>
            <option value="expand">every topic</option>
            <option value="group">grouped by namespace</option>
          </select>
        </label>
        <label>
          zoom{" "}
          <input
            type="range"
            min={0.3}
            max={1.5}
            step={0.1}
            value={zoom}
            onInput={(e) => setZoom(Number(e.currentTarget.value))}
          />
        </label>
        <span class="muted">
          {visibleNodes} nodes in {layout.boxes.length} boxes, {layout.topics.length} topic boxes
          {layout.collapsedProcesses ? " · processes collapsed" : ""}
          {layout.groupedTopics ? " · topics grouped (click a group to open it)" : ""}
        </span>
      </div>
      {layout.boxes.length === 0 ? (
        <p class="empty">No nodes yet. Start some (`npm run demo`, `myelin up`), and they appear here.</p>
      ) : (
        <div class="graph-scroll">
          <svg
            width={layout.width * zoom}
            height={layout.height * zoom}
            viewBox={`0 0 ${layout.width} ${layout.height}`}
            data-testid="graph"
          >
            <defs>
              <marker
                id="arrow"
                viewBox="0 0 10 10"
                refX="9"
                refY="5"
                markerWidth="7"
                markerHeight="7"
                orient="auto-start-reverse"
              >
                <path d="M 0 0 L 10 5 L 0 10 z" fill="#8aa" />
              </marker>
            </defs>
            {layout.bands.map((b) => (
              <g key={b.host}>
                <rect class="band" x={4} y={b.y} width={layout.width - 8} height={b.h} rx={8} />
                <text class="band-label" x={14} y={b.y + 17}>
                  host {b.host}
                </text>
              </g>
            ))}
            {layout.frames.map((f) => (
              <g key={`${f.label}${f.x}${f.y}`}>
                <rect class="frame" x={f.x} y={f.y} width={f.w} height={f.h} rx={6} />
                <text class="frame-label" x={f.x + 6} y={f.y + 11}>
                  {f.label}
                </text>
              </g>
            ))}
            {layout.edges.map((e) => {
              const a = pos.get(e.from)!;
              const b = pos.get(e.to)!;
              const x1 = a.x + a.w;
              const y1 = a.y + Math.min(a.h, 30) / 2;
              const x2 = b.x;
              const y2 = b.y + Math.min(b.h, 30) / 2;
              const back = x2 < x1 + 10;
              const dx = Math.max(40, Math.abs(x2 - x1) / 2);
              const d = back
                ? `M ${x1} ${y1} C ${x1 + 60} ${y1 - 60}, ${x2 - 60} ${y2 - 60}, ${x2} ${y2}`
                : `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`;
              const st = s.stats[e.topic];
              const single = (pos.get(e.kind === "pub" ? e.to : e.from) as GraphTopic).topics.length === 1;
              return (
                <g key={`${e.from}>${e.to}`} data-edge={e.kind} data-lag={e.lag}>
                  <path class={`edge ${e.kind}`} d={d} marker-end="url(#arrow)" />
                  {e.kind === "durable" ? (
                    <text class="edge-label" x={(x1 + x2) / 2} y={(y1 + y2) / 2 - 4} text-anchor="middle">
                      lag {e.lag}
                    </text>
                  ) : null}
                  {e.kind === "pub" && single && st !== undefined ? (
                    <text class="edge-label" x={(x1 + x2) / 2} y={(y1 + y2) / 2 - 4} text-anchor="middle">
                      {hz(st.hz)}
                    </text>
                  ) : null}
                </g>
              );
            })}
            {layout.boxes.map((b) => (
              <g
                key={b.id}
                class={`gnode${b.ready ? "" : " not-ready"}${b.id.startsWith("c:") ? " consumer" : ""}`}
                data-node={b.id.startsWith("c:") ? undefined : b.nodes.join(" ")}
                data-consumer={b.id.startsWith("c:") ? b.label.slice(2) : undefined}
                transform={`translate(${b.x},${b.y})`}
              >
                <title>{`${b.nodes.join(", ")}\nhost ${b.host}, pid ${b.pid}\n${b.services.join("\n")}`}</title>
                <rect width={b.w} height={b.h} rx={6} />
                <text x={8} y={16} class="gnode-name">
                  {b.label}
                </text>
                <text x={8} y={29} class="gnode-sub">
                  {b.id.startsWith("c:")
                    ? "durable consumer"
                    : `pid ${b.pid}${b.ready ? "" : " · not ready"}`}
                </text>
                {b.nodes.length > 1
                  ? b.nodes.slice(0, 4).map((n, i) => (
                      <text key={n} x={12} y={43 + i * 14} class="gnode-sub">
                        {i === 3 && b.nodes.length > 4 ? `+${b.nodes.length - 3} more` : n}
                      </text>
                    ))
                  : null}
                {b.services.slice(0, 3).map((sv, i) => (
                  <text
                    key={sv}
                    x={12}
                    y={43 + (b.nodes.length > 1 ? Math.min(b.nodes.length, 4) * 14 : 0) + i * 14}
                    class="gnode-svc"
                  >
                    ◆ {i === 2 && b.services.length > 3 ? `+${b.services.length - 2} services` : sv}
                  </text>
                ))}
              </g>
            ))}
            {layout.topics.map((t) => {
              const grouped = t.topics.length > 1 || t.id.startsWith("ns:");
              const ns = t.id.slice(3);
              return (
                <g
                  key={t.id}
                  class={`gtopic${grouped ? " grouped" : ""}`}
                  data-topic={grouped ? undefined : t.topics[0]}
                  transform={`translate(${t.x},${t.y})`}
                  onClick={() => {
                    if (grouped) setExpanded(new Set([...expanded, ns]));
                    else props.onTopic(t.topics[0]!);
                  }}
                >
                  <title>
                    {grouped
                      ? `${t.topics.length} topics; click to show them`
                      : `${t.topics[0]} (${t.type}); click for details`}
                  </title>
                  <rect width={t.w} height={t.h} rx={14} />
                  <text x={10} y={13} class="gtopic-name">
                    {t.label.length > 30 ? `…${t.label.slice(-29)}` : t.label}
                  </text>
                  <text x={10} y={25} class="gtopic-type">
                    {t.type}
                  </text>
                </g>
              );
            })}
          </svg>
        </div>
      )}
    </section>
  );
}
