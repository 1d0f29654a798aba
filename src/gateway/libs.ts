/**
 * The client libraries of the gateway, the bridges, the uplink and the web servers (nats, mqtt,
 * amqplib, ws), required on first use. Together they are some two hundred modules and over 10 MB of
 * heap, and a node or a hub that runs none of these never needs them, so the modules that do use
 * them call these functions instead of importing the packages (the types are imported as types).
 * aedes is an ES module and is imported dynamically where the MQTT gateway starts.
 */
import { createRequire } from "node:module";
import type * as NatsLib from "nats";
import type * as MqttLib from "mqtt";
import type * as AmqpLib from "amqplib";
import type * as WsLib from "ws";

const requireHere = createRequire(import.meta.url);
const cache = new Map<string, unknown>();

function once<T>(name: string): T {
  let lib = cache.get(name);
  if (lib === undefined) {
    lib = requireHere(name);
    cache.set(name, lib);
  }
  return lib as T;
}

/** The `nats` package (nats.js: connect, headers, nanos, the JetStream enums). */
export function natsLib(): typeof NatsLib {
  return once("nats");
}

/** The `mqtt` package (MQTT.js: connect). */
export function mqttLib(): typeof MqttLib {
  return once("mqtt");
}

/** The `amqplib` package (connect). */
export function amqpLib(): typeof AmqpLib {
  return once("amqplib");
}

/** The `ws` package (WebSocketServer, createWebSocketStream). */
export function wsLib(): typeof WsLib {
  return once("ws");
}
