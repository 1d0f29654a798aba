/** The supervisor's processes, with restart, stop and scale. */
import { useState } from "preact/hooks";
import { post } from "../api";
import { bytes, duration } from "../format";
import { useLive } from "../live";
import { ErrorBox } from "./PublishView";

export function ProcessesView() {
  const s = useLive();
  const [busy, setBusy] = useState("");
  const [message, setMessage] = useState("");
  const [error, setError] = useState<Error>();
  const [replicas, setReplicas] = useState<Record<string, string>>({});
  const p = s.processes;
  const act = (node: string, action: string, extra: Record<string, unknown> = {}): void => {
    setBusy(`${action} ${node}`);
    setError(undefined);
    setMessage("");
    post<{ message: string }>("process", { node, action, ...extra })
      .then(
        (r) => setMessage(r.message),
        (err: Error) => setError(err),
      )
      .finally(() => setBusy(""));
  };
  if (p === undefined) return <p class="empty">Waiting for the hub…</p>;
  if (!p.available) {
    return (
      <p class="empty">
        This hub runs no supervisor (started with --no-supervisor?): nothing to show. `myelin up` starts a
        system under it.
      </p>
    );
  }
  // One set of buttons per spec node (a composed process acts on its first node).
  const units = new Map<string, number>();
  for (const r of p.rows) {
    const n = r.nodes[0] ?? r.process;
    units.set(n, (units.get(n) ?? 0) + 1);
  }
  return (
    <section class="view">
      <div class="toolbar">
        <span class="muted">{p.spec !== undefined && p.spec !== "" ? `spec ${p.spec}` : ""}</span>
        {busy !== "" ? <span class="busy">{busy}…</span> : null}
        {message !== "" ? <span class="ok">{message}</span> : null}
      </div>
      <ErrorBox error={error} />
      {p.rows.length === 0 ? (
        <p class="empty">No supervised processes. Start some with `myelin up`.</p>
      ) : null}
      <table class="table" data-testid="process-table">
        <thead>
          <tr>
            <th>process</th>
            <th>replica</th>
            <th>state</th>
            <th>pid</th>
            <th>host</th>
            <th>restarts</th>
            <th>uptime</th>
            <th>CPU</th>
            <th>memory</th>
            <th>health</th>
            <th>detail</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {p.rows.map((r) => {
            const unit = r.nodes[0] ?? r.process;
            return (
              <tr
                key={`${r.process}#${r.replica}`}
                data-process={`${r.process}#${r.replica}`}
                class={`state-${r.state}`}
              >
                <td class="mono">
                  {r.process}
                  {r.nodes.length > 1 || r.nodes[0] !== r.process ? (
                    <span class="muted"> ({r.nodes.join(", ")})</span>
                  ) : null}
                </td>
                <td>{r.replica}</td>
                <td data-testid="state">
                  <span class={`pill ${r.state}`}>{r.state}</span>
                  {r.adopted ? " *" : ""}
                </td>
                <td data-testid="pid">{r.pid > 0 ? r.pid : "-"}</td>
                <td>{s.host}</td>
                <td>{r.restarts}</td>
                <td>{duration(r.uptimeMs)}</td>
                <td>{r.cpuPercent < 0 ? "-" : `${r.cpuPercent.toFixed(1)}%`}</td>
                <td>{r.rssBytes < 0 ? "-" : bytes(r.rssBytes)}</td>
                <td>{r.health}</td>
                <td class="muted small">{r.detail}</td>
                <td class="actions">
                  <button data-action="restart" disabled={busy !== ""} onClick={() => act(unit, "restart")}>
                    Restart
                  </button>
                  <button data-action="stop" disabled={busy !== ""} onClick={() => act(unit, "stop")}>
                    Stop
                  </button>
                  <input
                    class="num"
                    type="number"
                    min={0}
                    max={64}
                    value={replicas[unit] ?? String(units.get(unit) ?? 1)}
                    onInput={(e) => setReplicas({ ...replicas, [unit]: e.currentTarget.value })}
                  />
                  <button
                    data-action="scale"
                    disabled={busy !== ""}
                    onClick={() =>
                      act(unit, "scale", { replicas: Number(replicas[unit] ?? units.get(unit) ?? 1) })
                    }
                  >
                    Scale
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
