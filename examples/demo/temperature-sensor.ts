/**
 * A simulated MQTT device (a module of the demo's launch spec): a temperature sensor that speaks
 * MQTT only. It finds the hub's MQTT gateway (through the gateway's status service), publishes
 * `devices/<id>/temperature` as JSON at its sample rate (1 Hz to start), and takes a new rate from
 * `devices/<id>/sample_rate` (JSON `{"data": hz}`), which the gateway maps from the Myelin topic
 * `/devices/<id>/sample_rate` (std_msgs/Float64) — publish there from the dashboard or the CLI —
 * or from its twin: it reports `{"sample_rate", "unit"}` on `twins/<id>/reported` and applies the
 * desired `sample_rate` the gateway sends on `twins/<id>/desired/delta` (when the gateway keeps
 * twins; set it in the dashboard's Twins view or with `myelin twin set`).
 * `args[0]` is the device id (default `temp-1`).
 */
import mqtt from "mqtt";
import type { LaunchContext, Node } from "myelin";
import { gatewayClient } from "../../src/gateway/index.js";

/** Starts the device; returns its stop function. */
export async function runTemperatureSensor(node: Node, ctx: LaunchContext): Promise<() => Promise<void>> {
  const id = ctx.args[0] ?? "temp-1";
  ctx.deferReady();
  const status = await gatewayClient(node, { timeoutMs: 5000 }).status({});
  const listener = status.listeners.find((l) => /^(mqtt|tcp):/.test(l)) ?? status.listeners[0] ?? "";
  const port = /:(\d+)\/?$/.exec(listener)?.[1];
  if (port === undefined)
    throw new Error(
      `the hub's MQTT gateway has no TCP listener (listeners: ${status.listeners.join(", ") || "none"})`,
    );
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: id,
    clean: true,
    reconnectPeriod: 1000,
  });
  let rateHz = 1;
  let n = 0;
  const send = (): void => {
    const celsius = 21 + 3 * Math.sin(n++ / 30) + (Math.random() - 0.5) * 0.2;
    void client
      .publishAsync(
        `devices/${id}/temperature`,
        JSON.stringify({ temperature: Number(celsius.toFixed(2)), variance: 0.01 }),
        { qos: 1 },
      )
      .catch(() => undefined);
  };
  let timer = setInterval(send, 1000 / rateHz);
  const setRate = (v: unknown, from: string): void => {
    if (typeof v !== "number" || !(v > 0 && v <= 100)) {
      console.error(`${from}: sample rate must be a number of Hz in (0, 100], got ${JSON.stringify(v)}`);
      return;
    }
    rateHz = v;
    clearInterval(timer);
    timer = setInterval(send, 1000 / rateHz);
    console.log(`device ${id}: sample rate now ${rateHz} Hz (from ${from})`);
    report();
  };
  // Its twin (when the hub's gateway keeps twins): reports its sample rate, applies desired changes.
  const report = (): void => {
    void client
      .publishAsync(
        `twins/${id}/reported`,
        JSON.stringify({ state: { sample_rate: rateHz, unit: "celsius" } }),
        { qos: 1 },
      )
      .catch(() => undefined);
  };
  await client.subscribeAsync([`devices/${id}/sample_rate`, `twins/${id}/desired/delta`], { qos: 1 });
  client.on("message", (topic, payload) => {
    let body: { data?: unknown; state?: { sample_rate?: unknown } };
    try {
      body = JSON.parse(payload.toString()) as typeof body;
    } catch {
      console.error(`${topic}: not JSON: ${payload.toString().slice(0, 80)}`);
      return;
    }
    if (topic.endsWith("/desired/delta")) {
      if (body.state?.sample_rate !== undefined) setRate(body.state.sample_rate, "its twin's desired state");
    } else setRate(body.data, topic);
  });
  report();
  node.setReady(true);
  console.log(
    `device ${id}: connected to the MQTT gateway on port ${port}, sending every ${1000 / rateHz} ms`,
  );
  return async () => {
    clearInterval(timer);
    await client.endAsync();
  };
}
