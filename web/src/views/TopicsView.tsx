/** Topics: type, publishers, subscribers, rate, bandwidth, drops, last message; pictures; plots. */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ImageCanvas } from "../components/ImageCanvas";
import { Plot, type Series } from "../components/Plot";
import { VirtualList } from "../components/VirtualList";
import { bytes, clock, hz } from "../format";
import { isHiddenNode, isInternalTopic } from "../graph-model";
import { useLive, useWatch } from "../live";
import type { Alarm, GraphSnapshot, NodeRecord, TopicDecl, TopicFlow } from "../types";

interface TopicRow {
  topic: string;
  type: string;
  pubs: { node: NodeRecord; decl: TopicDecl }[];
  subs: { node: NodeRecord; decl: TopicDecl }[];
}

/** Every topic of the graph, sorted by name. */
export function topicRows(g: GraphSnapshot | undefined, internal: boolean): TopicRow[] {
  const m = new Map<string, TopicRow>();
  const get = (d: TopicDecl): TopicRow => {
    let r = m.get(d.topic);
    if (r === undefined) m.set(d.topic, (r = { topic: d.topic, type: d.type, pubs: [], subs: [] }));
    return r;
  };
  for (const n of g?.nodes ?? []) {
    const hidden = isHiddenNode(n);
    for (const d of n.pubs) {
      if (!internal && isInternalTopic(d.topic)) continue;
      const r = get(d);
      if (r.pubs.length === 0) r.type = d.type;
      r.pubs.push({ node: n, decl: d });
    }
    for (const d of n.subs) {
      if (!internal && (isInternalTopic(d.topic) || (hidden && n.name === "_dashboard"))) continue;
      get(d).subs.push({ node: n, decl: d });
    }
  }
  return [...m.values()].sort((a, b) => a.topic.localeCompare(b.topic));
}

/** Numeric fields of a JSON value, as `a.b[0].c` paths. */
function numericPaths(v: unknown, prefix = "", out: [string, number][] = [], depth = 0): [string, number][] {
  if (depth > 6 || out.length > 40) return out;
  if (typeof v === "number") out.push([prefix, v]);
  else if (Array.isArray(v))
    v.slice(0, 8).forEach((x, i) => numericPaths(x, `${prefix}[${i}]`, out, depth + 1));
  else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v))
      numericPaths(x, prefix === "" ? k : `${prefix}.${k}`, out, depth + 1);
  }
  return out;
}

/** The alarms about `topic` (their subject starts with the topic's name). */
export function topicAlarms(active: readonly Alarm[], topic: string): Alarm[] {
  return active.filter((a) => a.subject === topic || a.subject.startsWith(`${topic} `));
}

/** Each subscriber's backlog, waits and drops as its publisher sees them, and each subscription's deadline. */
function FlowTable(props: { flow: TopicFlow | undefined; alarms: Alarm[] }) {
  const { flow, alarms } = props;
  const rows = (flow?.publishers ?? []).flatMap((p) => p.subscribers.map((r) => ({ p, r })));
  const deadlines = (flow?.subscriptions ?? []).filter((x) => x.deadlineMs > 0 || x.dropped > 0);
  return (
    <>
      {alarms.length > 0 ? (
        <ul class="alarm-list" data-testid="topic-alarms">
          {alarms.map((a) => (
            <li key={a.id} data-kind={a.kind}>
              <span class={`pill ${a.severity}`}>{a.kind}</span> {a.message}
            </li>
          ))}
        </ul>
      ) : null}
      <h3>Flow</h3>
      {rows.length === 0 && deadlines.length === 0 ? (
        <p class="muted">no remote subscriber, deadline or loss reported</p>
      ) : null}
      {rows.length > 0 ? (
        <table class="table flow" data-testid="topic-flow">
          <thead>
            <tr>
              <th>publisher</th>
              <th>subscriber</th>
              <th>QoS</th>
              <th>backlog</th>
              <th>waits</th>
              <th>dropped</th>
              <th>state</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ p, r }) => (
              <tr
                key={p.publisher + r.subscriber + r.group}
                data-state={r.state}
                data-subscriber={r.subscriber}
              >
                <td>{p.publisher}</td>
                <td>
                  {r.subscriber}
                  {r.group !== "" ? <span class="muted"> ({r.group})</span> : null}
                </td>
                <td>{r.reliable ? "reliable" : "best-effort"}</td>
                <td>
                  {r.backlog} <span class="muted">{bytes(r.backlogBytes)}</span>
                </td>
                <td>{r.waits}</td>
                <td>{r.dropped}</td>
                <td class={r.state === "ok" ? "ok" : "busy"}>{r.state}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {deadlines.length > 0 ? (
        <table class="table flow" data-testid="topic-deadlines">
          <thead>
            <tr>
              <th>subscription</th>
              <th>deadline</th>
              <th>missed</th>
              <th>silent</th>
              <th>dropped</th>
            </tr>
          </thead>
          <tbody>
            {deadlines.map((d) => (
              <tr key={d.node} data-late={String(d.late)}>
                <td>{d.node}</td>
                <td>{d.deadlineMs > 0 ? `${d.deadlineMs} ms` : "-"}</td>
                <td>{d.deadlinesMissed}</td>
                <td class={d.late ? "busy" : ""}>{(d.silentMs / 1000).toFixed(1)} s</td>
                <td>{d.dropped}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}

function TopicDetail(props: { row: TopicRow }) {
  const s = useLive();
  const { row } = props;
  useWatch([row.topic], row.topic);
  const st = s.stats[row.topic];
  const sample = s.samples[row.topic];
  const [plotted, setPlotted] = useState<string[]>([]);
  const history = useRef(new Map<string, { t: number; v: number }[]>());
  const lastAt = useRef(0);
  useEffect(() => {
    history.current.clear();
    setPlotted([]);
  }, [row.topic]);
  const fields = sample === undefined ? [] : numericPaths(sample.json);
  if (sample !== undefined && sample.at !== lastAt.current) {
    lastAt.current = sample.at;
    for (const [p, v] of fields) {
      const h = history.current.get(p) ?? [];
      h.push({ t: sample.at, v });
      while (h.length > 0 && sample.at - h[0]!.t > 60000) h.shift();
      history.current.set(p, h);
    }
  }
  const series: Series[] = plotted.map((p) => ({ name: p, points: history.current.get(p) ?? [] }));
  return (
    <div class="detail" data-testid="topic-detail">
      <h2>{row.topic}</h2>
      <p class="muted">{row.type}</p>
      <div class="figures">
        <span data-testid="topic-rate">{hz(st?.hz)}</span>
        <span>{st === undefined ? "-" : `${bytes(st.bytesPerSec)}/s`}</span>
        <span>{st === undefined ? "-" : `${st.drops} dropped`}</span>
        <span>{st === undefined ? "-" : `${st.received} received`}</span>
      </div>
      <FlowTable flow={s.flow[row.topic]} alarms={topicAlarms(s.alarms.active, row.topic)} />
      <h3>Publishers</h3>
      <ul>
        {row.pubs.map((p) => (
          <li key={p.node.id + p.decl.topic}>
            {p.node.name}{" "}
            <span class="muted">
              (pid {p.node.pid}, {p.node.host}; {p.decl.qos.reliability}, {p.decl.qos.durability}, depth{" "}
              {p.decl.qos.depth})
            </span>
          </li>
        ))}
        {row.pubs.length === 0 ? <li class="muted">none</li> : null}
      </ul>
      <h3>Subscribers</h3>
      <ul>
        {row.subs.map((p) => (
          <li key={p.node.id + p.decl.topic}>
            {p.node.name}{" "}
            <span class="muted">
              (pid {p.node.pid}, {p.node.host}; {p.decl.qos.reliability}
              {p.decl.group !== undefined ? `, group ${p.decl.group}` : ""})
            </span>
          </li>
        ))}
        {row.subs.length === 0 ? <li class="muted">none</li> : null}
      </ul>
      {sample?.image !== undefined ? (
        <>
          <h3>Picture</h3>
          <ImageCanvas image={sample.image} at={sample.at} />
        </>
      ) : null}
      {fields.length > 0 ? (
        <>
          <h3>Plot</h3>
          <div class="plot-fields">
            {fields.map(([p]) => (
              <label key={p}>
                <input
                  type="checkbox"
                  checked={plotted.includes(p)}
                  onChange={(e) =>
                    setPlotted(e.currentTarget.checked ? [...plotted, p] : plotted.filter((x) => x !== p))
                  }
                />{" "}
                {p}
              </label>
            ))}
          </div>
          {plotted.length > 0 ? <Plot series={series} /> : null}
        </>
      ) : null}
      <h3>Last message {sample !== undefined ? <span class="muted">at {clock(sample.at)}</span> : null}</h3>
      <pre class="json" data-testid="last-message">
        {sample === undefined ? "(none yet)" : JSON.stringify(sample.json, null, 2)}
      </pre>
    </div>
  );
}

export function TopicsView(props: { selected: string | undefined; onSelect: (t: string) => void }) {
  const s = useLive();
  const [filter, setFilter] = useState("");
  const [internal, setInternal] = useState(false);
  const [range, setRange] = useState<[number, number]>([0, 0]);
  const rows = useMemo(() => topicRows(s.graph, internal), [s.graph, internal]);
  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return f === ""
      ? rows
      : rows.filter((r) => r.topic.toLowerCase().includes(f) || r.type.toLowerCase().includes(f));
  }, [rows, filter]);
  useWatch(shown.slice(range[0], range[1]).map((r) => r.topic));
  const selected = rows.find((r) => r.topic === props.selected);
  return (
    <section class="view split">
      <div class="pane">
        <div class="toolbar">
          <input
            placeholder="filter topics or types"
            value={filter}
            onInput={(e) => setFilter(e.currentTarget.value)}
          />
          <label>
            <input
              type="checkbox"
              checked={internal}
              onChange={(e) => setInternal(e.currentTarget.checked)}
            />{" "}
            internal
          </label>
          <span class="muted">{shown.length} topics</span>
        </div>
        <div class="thead topic-grid">
          <span>topic</span>
          <span>type</span>
          <span>pub</span>
          <span>sub</span>
          <span>rate</span>
          <span>bandwidth</span>
          <span>drops</span>
        </div>
        <VirtualList
          items={shown}
          rowHeight={28}
          height={Math.max(300, window.innerHeight - 180)}
          onRange={(a, b) => setRange([a, b])}
          testid="topic-list"
          row={(r) => {
            const st = s.stats[r.topic];
            const alarmed = topicAlarms(s.alarms.active, r.topic).length > 0;
            return (
              <div
                class={`topic-grid trow${r.topic === props.selected ? " selected" : ""}${alarmed ? " alarmed" : ""}`}
                data-topic={r.topic}
                data-alarm={alarmed ? "true" : undefined}
                onClick={() => props.onSelect(r.topic)}
              >
                <span class="mono">{r.topic}</span>
                <span class="muted">{r.type}</span>
                <span>{r.pubs.length}</span>
                <span>{r.subs.length}</span>
                <span>{st === undefined ? "" : hz(st.hz)}</span>
                <span>{st === undefined ? "" : `${bytes(st.bytesPerSec)}/s`}</span>
                <span>{st === undefined ? "" : st.drops}</span>
              </div>
            );
          }}
        />
      </div>
      <div class="pane">
        {selected !== undefined ? (
          <TopicDetail row={selected} />
        ) : (
          <p class="empty">Pick a topic to see its messages.</p>
        )}
      </div>
    </section>
  );
}
