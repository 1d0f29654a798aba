/**
 * The registry of benchmarked implementations, in table order (`unix-socket` first: it is the
 * reference for the ratio column). Adding an implementation is one line here plus its file; entries are
 * loaded lazily so a worker process only loads the libraries of the impl it measures (which matters
 * for `idle-rss`).
 */
import type { Impl } from "../impl.js";

const load = async (m: Promise<{ default: Impl }>): Promise<Impl> => (await m).default;

export const IMPLS: Readonly<Record<string, () => Promise<Impl>>> = {
  "unix-socket": () => load(import("./unix-socket.js")),
  zeromq: () => load(import("./zeromq.js")),
  "zeromq-push": () => load(import("./zeromq-push.js")),
  nats: () => load(import("./nats.js")),
  myelin: () => load(import("./myelin.js")),
  "myelin-copy": async () => (await import("./myelin.js")).myelinWithoutShm(),
  "myelin-try": async () => (await import("./myelin.js")).myelinImpl(true),
  "myelin-unix": async () => (await import("./myelin.js")).myelinOver("unix"),
  "myelin-zmq": async () => (await import("./myelin.js")).myelinOver("zeromq"),
  "mqtt-mosquitto-q0": async () => (await import("./mqtt.js")).mqttImpl("mosquitto", 0),
  "mqtt-aedes-q0": async () => (await import("./mqtt.js")).mqttImpl("aedes", 0),
  "mqtt-gateway-q0": async () => (await import("./mqtt.js")).mqttImpl("gateway", 0),
  "mqtt-gateway-raw-q0": async () => (await import("./mqtt.js")).mqttImpl("gateway", 0, "raw"),
  "mqtt-mosquitto-q1": async () => (await import("./mqtt.js")).mqttImpl("mosquitto", 1),
  "mqtt-aedes-q1": async () => (await import("./mqtt.js")).mqttImpl("aedes", 1),
  "mqtt-gateway-q1": async () => (await import("./mqtt.js")).mqttImpl("gateway", 1),
  "mqtt-gateway-raw-q1": async () => (await import("./mqtt.js")).mqttImpl("gateway", 1, "raw"),
};

/** The impl every ratio is computed against. */
export const REFERENCE_IMPL = "unix-socket";

export async function loadImpl(name: string): Promise<Impl> {
  const loader = IMPLS[name];
  if (loader === undefined)
    throw new Error(`unknown impl "${name}" (known: ${Object.keys(IMPLS).join(", ")})`);
  return loader();
}
