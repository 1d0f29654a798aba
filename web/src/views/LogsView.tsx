/** Live logs of the supervised processes, filterable by node, level and text. */
import { useMemo, useState } from "preact/hooks";
import { VirtualList } from "../components/VirtualList";
import { clock } from "../format";
import { useLive } from "../live";

const LEVELS: [number, string][] = [
  [10, "debug"],
  [20, "info"],
  [30, "warn"],
  [40, "error"],
  [50, "fatal"],
];
const levelName = (l: number): string => [...LEVELS].reverse().find(([n]) => l >= n)?.[1] ?? "debug";

export function LogsView() {
  const s = useLive();
  const [node, setNode] = useState("");
  const [level, setLevel] = useState(10);
  const [text, setText] = useState("");
  const names = useMemo(() => [...new Set(s.logs.map((l) => l.name.split("#")[0]!))].sort(), [s.logs]);
  const lines = useMemo(() => {
    const t = text.trim().toLowerCase();
    return s.logs.filter(
      (l) =>
        l.level >= level &&
        (node === "" || l.name.split("#")[0] === node) &&
        (t === "" || l.msg.toLowerCase().includes(t)),
    );
  }, [s.logs, node, level, text]);
  return (
    <section class="view">
      <div class="toolbar">
        <label>
          node{" "}
          <select data-testid="log-node" value={node} onChange={(e) => setNode(e.currentTarget.value)}>
            <option value="">every node</option>
            {names.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          level at least{" "}
          <select
            data-testid="log-level"
            value={level}
            onChange={(e) => setLevel(Number(e.currentTarget.value))}
          >
            {LEVELS.map(([n, name]) => (
              <option key={n} value={n}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <input
          data-testid="log-text"
          placeholder="text"
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
        />
        <span class="muted" data-testid="log-count">
          {lines.length} of {s.logs.length} lines
        </span>
      </div>
      {s.logs.length === 0 ? (
        <p class="empty">No log lines yet: the output of processes started with `myelin up` appears here.</p>
      ) : null}
      <VirtualList
        items={lines}
        rowHeight={20}
        height={Math.max(300, window.innerHeight - 150)}
        follow
        testid="log-lines"
        row={(l) => (
          <div class={`logline lvl-${levelName(l.level)}`} data-name={l.name}>
            <span class="muted">{clock(l.at)}</span> <span class="lvl">{levelName(l.level)}</span>{" "}
            <span class="src">[{l.name}]</span> {l.msg}
          </div>
        )}
      />
    </section>
  );
}
