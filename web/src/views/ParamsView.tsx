/** A node's parameters, listed and edited through its parameter services. */
import { useEffect, useMemo, useState } from "preact/hooks";
import { post } from "../api";
import { useLive } from "../live";
import { ErrorBox } from "./PublishView";

interface Param {
  name: string;
  kind: string;
  value: unknown;
  description: string;
  descriptor?: { read_only: boolean; min?: number; max?: number };
}

function ParamRow(props: { node: string; p: Param; onSet: () => void }) {
  const { p } = props;
  const [text, setText] = useState(JSON.stringify(p.value));
  const [error, setError] = useState<Error>();
  useEffect(() => setText(JSON.stringify(p.value)), [JSON.stringify(p.value)]);
  const ro = p.descriptor?.read_only === true;
  const bounds =
    p.descriptor?.min !== undefined || p.descriptor?.max !== undefined
      ? ` [${p.descriptor?.min ?? "…"}, ${p.descriptor?.max ?? "…"}]`
      : "";
  return (
    <tr data-param={p.name}>
      <td class="mono">{p.name}</td>
      <td class="muted">
        {p.kind}
        {bounds}
      </td>
      <td>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setError(undefined);
            post("set-parameter", { node: props.node, name: p.name, value: text }).then(
              props.onSet,
              (err: Error) => setError(err),
            );
          }}
        >
          <input value={text} disabled={ro} onInput={(e) => setText(e.currentTarget.value)} />
          <button type="submit" disabled={ro}>
            Set
          </button>
        </form>
        <ErrorBox error={error} />
      </td>
      <td class="muted">{p.description}</td>
    </tr>
  );
}

export function ParamsView() {
  const s = useLive();
  const nodes = useMemo(
    () =>
      (s.graph?.nodes ?? [])
        .filter((n) => n.services.some((x) => x.service === `/${n.name}/list_parameters`))
        .map((n) => n.name)
        .sort(),
    [s.graph],
  );
  const [node, setNode] = useState("");
  const [params, setParams] = useState<Param[]>([]);
  const [error, setError] = useState<Error>();
  const load = (n: string): void => {
    setError(undefined);
    if (n === "") return setParams([]);
    post<{ parameters: Param[] }>("parameters", { node: n }).then(
      (r) => setParams(r.parameters),
      (err: Error) => setError(err),
    );
  };
  useEffect(() => load(node), [node]);
  return (
    <section class="view">
      <div class="toolbar">
        <label>
          node{" "}
          <select value={node} data-testid="param-node" onChange={(e) => setNode(e.currentTarget.value)}>
            <option value="">(pick a node)</option>
            {nodes.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <button onClick={() => load(node)}>Reload</button>
      </div>
      <ErrorBox error={error} />
      {node !== "" && params.length === 0 && error === undefined ? (
        <p class="empty">{node} has no parameters.</p>
      ) : null}
      {params.length > 0 ? (
        <table class="table">
          <thead>
            <tr>
              <th>name</th>
              <th>kind</th>
              <th>value (JSON)</th>
              <th>description</th>
            </tr>
          </thead>
          <tbody>
            {params.map((p) => (
              <ParamRow key={p.name} node={node} p={p} onSet={() => load(node)} />
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
