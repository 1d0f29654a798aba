/** Durable topics, the MQTT gateway and the bridges, twins, and alarms. */
import { useEffect, useState } from "preact/hooks";
import { post } from "../api";
import { bytes, clock, duration } from "../format";
import { useLive } from "../live";
import type { Alarm } from "../types";
import { ErrorBox } from "./PublishView";

export function DurableView() {
  const s = useLive();
  const d = s.durable;
  if (d === undefined) return <p class="empty">Waiting for the hub…</p>;
  if (!d.available) return <p class="empty">This hub keeps no durable topics (started with --no-store).</p>;
  if (d.topics.length === 0)
    return (
      <p class="empty">No durable topics: publish with durability "persistent" to keep messages on disk.</p>
    );
  return (
    <section class="view">
      <table class="table" data-testid="durable-table">
        <thead>
          <tr>
            <th>topic</th>
            <th>type</th>
            <th>range</th>
            <th>messages</th>
            <th>bytes</th>
            <th>retention</th>
            <th>consumers (lag, pending, dead-lettered)</th>
          </tr>
        </thead>
        <tbody>
          {d.topics.map((t) => {
            let cfg: Record<string, unknown> = {};
            try {
              cfg = JSON.parse(t.config_json) as Record<string, unknown>;
            } catch {
              // shown empty
            }
            const retention = (cfg["retention"] ?? {}) as Record<string, unknown>;
            return (
              <tr key={t.topic} data-durable={t.topic}>
                <td class="mono">{t.topic}</td>
                <td class="muted">{t.type}</td>
                <td>{t.count > 0 ? `${t.first_seq} … ${t.last_seq}` : "empty"}</td>
                <td>{t.count}</td>
                <td>{bytes(t.bytes)}</td>
                <td class="small">
                  {Object.entries(retention)
                    .map(([k, v]) => `${k} ${String(v)}`)
                    .join(", ") || "unlimited"}
                  {typeof cfg["mode"] === "string" ? ` · ${cfg["mode"]}` : ""}
                </td>
                <td>
                  {t.consumers.length === 0 ? <span class="muted">none</span> : null}
                  {t.consumers.map((c, i) => (
                    <div key={c} data-consumer={c}>
                      <span class="mono">{c}</span>: lag {t.lags[i]}, {t.pending[i]} pending
                      {(t.dead_lettered[i] ?? 0) > 0 ? `, ${t.dead_lettered[i]} dead-lettered` : ""}
                    </div>
                  ))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

export function GatewayView() {
  const s = useLive();
  const g = s.gateway;
  const b = s.bridges;
  return (
    <section class="view">
      <h2>MQTT gateway</h2>
      {g === undefined ? (
        <p class="empty">Waiting for the hub…</p>
      ) : !g.available || g.status === undefined ? (
        <p class="empty">This hub runs no MQTT gateway (start it with `myelin hub --mqtt-port 1883`).</p>
      ) : (
        <>
          <div class="figures" data-testid="gateway-figures">
            <span>listeners: {g.status.listeners.join(", ")}</span>
            <span>{g.status.clients.length} clients</span>
            <span>
              in {g.status.rate_in.toFixed(1)}/s, out {g.status.rate_out.toFixed(1)}/s
            </span>
            <span>{g.status.rejected} rejected</span>
            <span>{g.status.refused_connections} connections refused</span>
            <span>{g.status.retained} retained</span>
          </div>
          <table class="table" data-testid="gateway-clients">
            <thead>
              <tr>
                <th>client</th>
                <th>user</th>
                <th>address</th>
                <th>connected</th>
                <th>subscriptions</th>
                <th>in</th>
                <th>out</th>
                <th>rejected</th>
              </tr>
            </thead>
            <tbody>
              {g.status.clients.map((c) => (
                <tr key={c.id}>
                  <td class="mono">{c.id}</td>
                  <td>{c.user}</td>
                  <td>
                    {c.address} ({c.transport})
                  </td>
                  <td>{duration(Date.now() - c.connected_at)}</td>
                  <td class="small">{c.subscriptions.join(", ") || "-"}</td>
                  <td>{c.msgs_in}</td>
                  <td>{c.msgs_out}</td>
                  <td>{c.rejected}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {g.status.reject_reasons.length > 0 ? (
            <>
              <h3>Rejects</h3>
              <ul>
                {g.status.reject_reasons.map((r, i) => (
                  <li key={r}>
                    {r}: {g.status!.reject_counts[i]}
                  </li>
                ))}
              </ul>
              <p class="muted small">last: {g.status.last_reject}</p>
            </>
          ) : null}
        </>
      )}
      <h2>Bridges</h2>
      {b === undefined ? (
        <p class="empty">Waiting for the hub…</p>
      ) : !b.available ? (
        <p class="empty">
          This hub runs no bridges (start it with `myelin hub --bridge-config bridges.yaml`).
        </p>
      ) : (
        <table class="table" data-testid="bridge-table">
          <thead>
            <tr>
              <th>bridge</th>
              <th>broker</th>
              <th>state</th>
              <th>in</th>
              <th>out</th>
              <th>queue</th>
              <th>dropped</th>
              <th>last error</th>
            </tr>
          </thead>
          <tbody>
            {b.bridges.map((x) => (
              <tr key={x.name}>
                <td class="mono">{x.name}</td>
                <td>
                  {x.kind} {x.url}
                </td>
                <td>
                  <span class={`pill ${x.state === "connected" ? "ready" : "failed"}`}>{x.state}</span> since{" "}
                  {clock(x.since)}
                </td>
                <td>{x.in}</td>
                <td>{x.out}</td>
                <td>
                  {x.queue === undefined ? "-" : `${x.queue.messages ?? 0} (${bytes(x.queue.bytes ?? 0)})`}
                </td>
                <td>{x.dropped}</td>
                <td class="small">{x.lastError ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

interface TwinSummary {
  device: string;
  version: number;
  desired_version: number;
  reported_version: number;
  last_seen: number;
  connected: boolean;
  delta_keys: number;
}

/** One twin: its desired and reported state (from `/_twins/get`), and a merge patch of desired to send. */
function TwinRow(props: { twin: TwinSummary }) {
  const t = props.twin;
  const [doc, setDoc] = useState<{ desired_json?: string; reported_json?: string; delta_json?: string }>();
  const [patch, setPatch] = useState("{}");
  const [error, setError] = useState<Error>();
  const load = (): void => {
    post<{ response: { twin?: typeof doc } }>("twins", {
      op: "get",
      request: JSON.stringify({ device: t.device }),
    }).then(
      (r) => setDoc(r.response.twin),
      (err: Error) => setError(err),
    );
  };
  useEffect(load, [t.version]);
  return (
    <tr data-twin={t.device}>
      <td class="mono">{t.device}</td>
      <td>{t.connected ? <span class="pill ready">connected</span> : <span class="pill">offline</span>}</td>
      <td>
        {t.version} (desired {t.desired_version}, reported {t.reported_version})
      </td>
      <td class="mono small">{doc?.desired_json ?? ""}</td>
      <td class="mono small">{doc?.reported_json ?? ""}</td>
      <td class="mono small">{t.delta_keys > 0 ? (doc?.delta_json ?? "") : "in sync"}</td>
      <td>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setError(undefined);
            const request = {
              device: t.device,
              desired_json: patch,
              create: false,
              replace: false,
            };
            post<{ response: { ok?: boolean; error_code?: string; message?: string } }>("twins", {
              op: "set",
              request: JSON.stringify(request),
            }).then(
              (r) => {
                if (r.response.ok === false)
                  setError(new Error(`${r.response.error_code ?? ""}: ${r.response.message ?? ""}`));
                else load();
              },
              (err: Error) => setError(err),
            );
          }}
        >
          <input
            class="mono"
            value={patch}
            onInput={(e) => setPatch(e.currentTarget.value)}
            title='a JSON merge patch of desired, e.g. {"sample_rate": 2}'
          />
          <button type="submit">Set desired</button>
        </form>
        <ErrorBox error={error} />
      </td>
    </tr>
  );
}

function TwinTable(props: { list: unknown }) {
  const twins = (props.list as { twins?: TwinSummary[] } | undefined)?.twins;
  if (!Array.isArray(twins)) return null;
  if (twins.length === 0) return <p class="empty">No twins yet: a device gets one when it first reports.</p>;
  return (
    <table class="table" data-testid="twins-table">
      <thead>
        <tr>
          <th>device</th>
          <th>connection</th>
          <th>version</th>
          <th>desired</th>
          <th>reported</th>
          <th>delta</th>
          <th>change desired</th>
        </tr>
      </thead>
      <tbody>
        {twins.map((t) => (
          <TwinRow key={t.device} twin={t} />
        ))}
      </tbody>
    </table>
  );
}

export function TwinsView() {
  const s = useLive();
  const t = s.twins;
  const [op, setOp] = useState("set");
  const [request, setRequest] = useState("{}");
  const [result, setResult] = useState("");
  const [error, setError] = useState<Error>();
  if (t === undefined) return <p class="empty">Waiting for the hub…</p>;
  if (!t.available) {
    return (
      <p class="empty" data-testid="no-twins">
        No twins service: this hub serves no /_twins/ services.
      </p>
    );
  }
  return (
    <section class="view">
      {t.error !== undefined ? <div class="error">{t.error}</div> : null}
      <h2>Twins</h2>
      <TwinTable list={t.list} />
      <details>
        <summary class="muted">the list as the service answered</summary>
        <pre class="json" data-testid="twins-list">
          {JSON.stringify(t.list, null, 2)}
        </pre>
      </details>
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          setError(undefined);
          post<{ response: unknown }>("twins", { op, request }).then(
            (r) => setResult(JSON.stringify(r.response, null, 2)),
            (err: Error) => setError(err),
          );
        }}
      >
        <h3>Call a twins service</h3>
        <label>
          operation{" "}
          <select value={op} onChange={(e) => setOp(e.currentTarget.value)}>
            <option value="get">get</option>
            <option value="set">set</option>
            <option value="list">list</option>
          </select>
        </label>
        <label>
          request (JSON or YAML)
          <textarea rows={5} value={request} onInput={(e) => setRequest(e.currentTarget.value)} />
        </label>
        <button type="submit">Send</button>
        <ErrorBox error={error} />
        {result !== "" ? <pre class="json">{result}</pre> : null}
      </form>
    </section>
  );
}

function AlarmRow(props: { a: Alarm }) {
  const a = props.a;
  return (
    <tr class={`alarm ${a.severity}`} data-alarm={a.id}>
      <td>
        <span class={`pill ${a.severity === "error" ? "failed" : "unhealthy"}`}>{a.severity}</span>
      </td>
      <td class="mono">{a.kind}</td>
      <td class="mono">{a.subject}</td>
      <td>{a.message}</td>
      <td>{clock(a.since)}</td>
      <td>
        {a.clearedAt !== undefined ? `${clock(a.clearedAt)} (${duration(a.clearedAt - a.since)})` : "active"}
      </td>
    </tr>
  );
}

export function AlarmsView() {
  const s = useLive();
  const { active, history } = s.alarms;
  const head = (
    <thead>
      <tr>
        <th></th>
        <th>kind</th>
        <th>about</th>
        <th>what</th>
        <th>since</th>
        <th>cleared</th>
      </tr>
    </thead>
  );
  return (
    <section class="view">
      <h2>Active</h2>
      {active.length === 0 ? (
        <p class="empty" data-testid="no-alarms">
          No alarm.
        </p>
      ) : (
        <table class="table" data-testid="active-alarms">
          {head}
          <tbody>
            {active.map((a) => (
              <AlarmRow key={a.id} a={a} />
            ))}
          </tbody>
        </table>
      )}
      <h2>History</h2>
      {history.length === 0 ? (
        <p class="empty">Nothing cleared yet.</p>
      ) : (
        <table class="table" data-testid="alarm-history">
          {head}
          <tbody>
            {history.map((a) => (
              <AlarmRow key={`${a.id}${a.since}`} a={a} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
