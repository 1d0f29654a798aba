/** Publish a message and call a service from the page, checked against the type like the CLI does. */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, get, post } from "../api";
import { useLive } from "../live";

function ErrorBox(props: { error: ApiError | Error | undefined }) {
  if (props.error === undefined) return null;
  const code = props.error instanceof ApiError ? props.error.code : "";
  return (
    <div class="error" data-testid="action-error">
      {code !== "" ? <b>{code}: </b> : null}
      {props.error.message}
    </div>
  );
}

export function PublishView() {
  const s = useLive();
  const [types, setTypes] = useState<{ messages: string[]; services: string[] }>({
    messages: [],
    services: [],
  });
  useEffect(() => {
    get<typeof types>("types").then(setTypes, () => undefined);
  }, []);
  const topics = useMemo(() => {
    const m = new Map<string, string>();
    for (const n of s.graph?.nodes ?? [])
      for (const d of [...n.subs, ...n.pubs]) if (!m.has(d.topic)) m.set(d.topic, d.type);
    return m;
  }, [s.graph]);
  const services = useMemo(() => {
    const m = new Map<string, string>();
    for (const n of s.graph?.nodes ?? []) for (const d of n.services) m.set(d.service, d.type);
    return m;
  }, [s.graph]);

  const [topic, setTopic] = useState("");
  const [type, setType] = useState("");
  const [data, setData] = useState("{}");
  const [pubResult, setPubResult] = useState("");
  const [pubError, setPubError] = useState<Error>();
  const [service, setService] = useState("");
  const [stype, setStype] = useState("");
  const [request, setRequest] = useState("{}");
  const [callResult, setCallResult] = useState("");
  const [callError, setCallError] = useState<Error>();

  // What the user typed is never replaced by a template (one arriving late included).
  const typed = useRef({ data: false, request: false });
  const template = async (t: string, which: "data" | "request"): Promise<void> => {
    try {
      const r = await post<{ json: unknown }>("template", { type: t });
      if (typed.current[which]) return;
      (which === "data" ? setData : setRequest)(JSON.stringify(r.json, null, 2));
    } catch {
      // unknown type: the user types the data
    }
  };

  return (
    <section class="view two-cols">
      <form
        class="card"
        data-testid="publish-form"
        onSubmit={(e) => {
          e.preventDefault();
          setPubError(undefined);
          setPubResult("");
          post<{ topic: string; subscribers: number }>("publish", { topic, type, data }).then(
            (r) =>
              setPubResult(
                `published on ${r.topic} (${r.subscribers} subscriber${r.subscribers === 1 ? "" : "s"}) at ${new Date().toLocaleTimeString()}`,
              ),
            (err: Error) => setPubError(err),
          );
        }}
      >
        <h2>Publish</h2>
        <label>
          topic
          <input
            name="topic"
            list="topic-names"
            value={topic}
            placeholder="/chatter"
            onInput={(e) => {
              const t = e.currentTarget.value;
              setTopic(t);
              const known = topics.get(t);
              if (known !== undefined && known !== type) {
                setType(known);
                void template(known, "data");
              }
            }}
          />
        </label>
        <datalist id="topic-names">
          {[...topics.keys()].map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <label>
          type
          <input
            name="type"
            list="message-types"
            value={type}
            placeholder="std_msgs/String"
            onInput={(e) => setType(e.currentTarget.value)}
            onChange={(e) => void template(e.currentTarget.value, "data")}
          />
        </label>
        <datalist id="message-types">
          {types.messages.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <label>
          message (JSON or YAML)
          <textarea
            name="data"
            rows={10}
            value={data}
            onInput={(e) => {
              typed.current.data = true;
              setData(e.currentTarget.value);
            }}
          />
        </label>
        <button type="submit">Publish</button>
        <ErrorBox error={pubError} />
        {pubResult !== "" ? (
          <p class="ok" data-testid="publish-ok">
            {pubResult}
          </p>
        ) : null}
      </form>
      <form
        class="card"
        data-testid="call-form"
        onSubmit={(e) => {
          e.preventDefault();
          setCallError(undefined);
          setCallResult("");
          post<{ response: unknown; ms: number }>("call", { service, type: stype, request }).then(
            (r) => setCallResult(`${JSON.stringify(r.response, null, 2)}\n\n(${r.ms.toFixed(1)} ms)`),
            (err: Error) => setCallError(err),
          );
        }}
      >
        <h2>Call a service</h2>
        <label>
          service
          <input
            name="service"
            list="service-names"
            value={service}
            placeholder="/detector/stats"
            onInput={(e) => {
              const v = e.currentTarget.value;
              setService(v);
              const known = services.get(v);
              if (known !== undefined && known !== stype) {
                setStype(known);
                void template(known, "request");
              }
            }}
          />
        </label>
        <datalist id="service-names">
          {[...services.keys()].map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <label>
          type
          <input
            name="stype"
            list="service-types"
            value={stype}
            onInput={(e) => setStype(e.currentTarget.value)}
          />
        </label>
        <datalist id="service-types">
          {types.services.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <label>
          request (JSON or YAML)
          <textarea
            name="request"
            rows={6}
            value={request}
            onInput={(e) => {
              typed.current.request = true;
              setRequest(e.currentTarget.value);
            }}
          />
        </label>
        <button type="submit">Call</button>
        <ErrorBox error={callError} />
        {callResult !== "" ? (
          <pre class="json" data-testid="call-result">
            {callResult}
          </pre>
        ) : null}
      </form>
    </section>
  );
}

export { ErrorBox };
