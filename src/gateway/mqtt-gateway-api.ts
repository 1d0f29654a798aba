/**
 * The `MqttGateway` class as programs see it: what a running MQTT gateway offers, and
 * `MqttGateway.start()`. The gateway itself (the broker, persistence, twins, the Myelin port;
 * some thirty modules) is `MqttGatewayServer` in mqtt-gateway.ts, which `start()` loads on
 * first use: a program that imports the package to make nodes never evaluates it
 * (docs/performance.md, "the idle node's footprint").
 */
import type { GatewayStatus, MqttGatewayOptions } from "./mqtt-gateway.js";
import type { MyelinPort } from "./myelin-port.js";

/** The embedded MQTT gateway. Start with {@link MqttGateway.start}; stop with `close()`. */
export abstract class MqttGateway {
  /** Only `MqttGatewayServer` is a gateway: create one with `MqttGateway.start()`. */
  protected constructor() {}

  /**
   * Starts the gateway: its node, the broker (loading persistent sessions from `dataDir`), the
   * Myelin port and the listeners (loading the gateway's modules on the first call).
   * @throws MyelinError ERR_BAD_CONFIG for a bad mapping, auth or limits entry, or no listener;
   *   ERR_INVALID_ARGUMENT when a listener cannot bind (the message names the port)
   */
  static async start(opts: MqttGatewayOptions): Promise<MqttGateway> {
    const { MqttGatewayServer } = await import("./mqtt-gateway.js");
    return MqttGatewayServer.start(opts);
  }

  /** The URLs the gateway listens on, e.g. `mqtt://0.0.0.0:1883`. */
  abstract get listeners(): string[];

  /** The port of a listener (useful with port 0). */
  abstract port(kind: "tcp" | "tls" | "ws"): number | undefined;

  /** The Myelin side (counters). */
  abstract get myelin(): MyelinPort;

  /** Clients, subscriptions, counters and rates (messages per second over the last ~5 s). */
  abstract status(): GatewayStatus;

  /** Disconnects every client, stops listening, saves persistent sessions, leaves the hub. */
  abstract close(): Promise<void>;

  /** `await using`: {@link close}. */
  abstract [Symbol.asyncDispose](): Promise<void>;
}
