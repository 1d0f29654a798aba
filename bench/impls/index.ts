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

/** The cases the MQTT targets compare (docs/performance.md): 1 MiB at QoS 0 and the round trip. */
const MQTT_TARGETS = ["throughput-1m", "roundtrip-64"];

/**
 * The cases an impl runs in by default, when `--impls` is not given (an impl missing here runs in
 * every case). A variant is left out of the cases where it measures what another impl already does:
 * `myelin-copy` differs from `myelin` only for frames of 64 KiB and more, and `myelin-try` only where
 * the sender publishes as fast as it can or waits for each answer. The MQTT paths at QoS 0 run in the
 * cases their targets name; QoS 1 and the raw gateway mapping only when named. Naming impls with
 * `--impls` runs them in every selected case, and the opt-in cases (large frames) run every impl.
 */
export const DEFAULT_CASES: Readonly<Record<string, readonly string[]>> = {
  // The default carrier of ipc://, which `myelin` already measures; `myelin-zmq` runs everywhere.
  "myelin-unix": [],
  "myelin-copy": ["throughput-1m"],
  "myelin-try": ["throughput-64", "throughput-twist", "throughput-4k", "throughput-1m", "roundtrip-64"],
  "mqtt-mosquitto-q0": MQTT_TARGETS,
  "mqtt-aedes-q0": MQTT_TARGETS,
  "mqtt-gateway-q0": MQTT_TARGETS,
  "mqtt-gateway-raw-q0": [],
  "mqtt-mosquitto-q1": [],
  "mqtt-aedes-q1": [],
  "mqtt-gateway-q1": [],
  "mqtt-gateway-raw-q1": [],
};

/** The impl every ratio is computed against. */
export const REFERENCE_IMPL = "unix-socket";

export async function loadImpl(name: string): Promise<Impl> {
  const loader = IMPLS[name];
  if (loader === undefined)
    throw new Error(`unknown impl "${name}" (known: ${Object.keys(IMPLS).join(", ")})`);
  return loader();
}
