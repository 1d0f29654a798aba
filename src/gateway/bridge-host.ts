/**
 * Running bridges: `startBridge` starts one bridge on a node the caller owns (programmatic use,
 * tests); `BridgeHost` runs every bridge of a configuration inside the hub process (like the
 * store service), each on its own hidden node `_bridge_<name>`, and serves their status on the
 * bridges' protocol (bridge-protocol.ts: a JSON array of BridgeStatus) for `myelin bridge status`.
 */
import { MyelinError } from "../errors.js";
import { createNode, type Node } from "../node/index.js";
import { loadBridgeConfig, validateBridgeConfig, type BridgeConfig } from "./bridge-config.js";
import { BridgeEngine, bridgeQueueDir, type Bridge, type BridgeStatus, type BrokerLink } from "./bridge.js";
import { AmqpLink } from "./bridge-amqp.js";
import { KafkaLink } from "./bridge-kafka.js";
import { MqttLink } from "./bridge-mqtt.js";
import { NatsLink } from "./bridge-nats.js";
import { serveBridgeStatus } from "./bridge-protocol.js";
import { BridgeHost } from "./bridge-host-api.js";

export { BridgeHost };

/** Options of `startBridge`. */
export interface StartBridgeOptions {
  /** The node the bridge publishes and subscribes with; the caller closes it after the bridge. */
  node: Node;
  /** Data directory: the offline queue goes to `<dataDir>/bridges/<name>/queue`. */
  dataDir?: string;
  /** Human-readable events. */
  log?: (line: string) => void;
}

/** The broker link for a configuration. */
export function createLink(config: BridgeConfig): BrokerLink {
  const map = BridgeEngine.topicMap(config);
  switch (config.kind) {
    case "mqtt":
      return new MqttLink(config, map);
    case "nats":
      return new NatsLink(config, map);
    case "amqp":
      return new AmqpLink(config, map);
    case "kafka":
      return new KafkaLink(config, map);
  }
}

/**
 * Starts one bridge (any kind) on `opts.node` (the public `startBridge` of bridge-host-api.ts
 * loads this module and calls this). It connects in the background: see
 * `bridge.waitConnected()` and `bridge.status()`.
 * @throws MyelinError ERR_BAD_CONFIG for a bad mapping or a missing data directory; ERR_STORAGE if
 * the offline queue cannot be opened.
 */
export async function startBridge(config: BridgeConfig, opts: StartBridgeOptions): Promise<Bridge> {
  config = validateBridgeConfig(
    config,
    `bridge ${String((config as { name?: unknown } | undefined)?.name)}: `,
  );
  const o: Parameters<typeof BridgeEngine.start>[0] = { config, node: opts.node, link: createLink(config) };
  if (opts.dataDir !== undefined) o.queueDir = bridgeQueueDir(opts.dataDir, config.name);
  if (opts.log !== undefined) o.log = opts.log;
  return BridgeEngine.start(o);
}

/** Options of `BridgeHost.start`. */
export interface BridgeHostOptions {
  /** The bridges; or `file`, a YAML file of them. */
  bridges?: BridgeConfig[];
  file?: string;
  /** Data directory of the offline queues. */
  dataDir?: string;
  /** Hub address and runtime directory (defaults as for any node). */
  hub?: string;
  runtimeDir?: string;
  log?: (line: string) => void;
}

/**
 * The running bridges behind {@link BridgeHost}: `BridgeHost.start()` loads this module and
 * starts one. Its public members are documented on {@link BridgeHost}.
 */
export class BridgeHostRunner extends BridgeHost {
  readonly #nodes: Node[] = [];
  readonly #bridges: Bridge[] = [];
  #statusNode: Node | undefined;
  #closed = false;

  private constructor() {
    super();
  }

  /**
   * Starts every bridge and serves their status (the bridges' protocol).
   * @throws MyelinError ERR_BAD_CONFIG for an invalid configuration (nothing is left running)
   */
  static override async start(opts: BridgeHostOptions): Promise<BridgeHostRunner> {
    const configs = opts.bridges ?? (opts.file !== undefined ? await loadBridgeConfig(opts.file) : undefined);
    if (configs === undefined) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", "BridgeHost.start: give `bridges` or `file`");
    }
    const host = new BridgeHostRunner();
    const nodeOpts = (name: string): Parameters<typeof createNode>[0] => {
      const n: Parameters<typeof createNode>[0] = { name };
      if (opts.hub !== undefined) n.hub = opts.hub;
      if (opts.runtimeDir !== undefined) n.runtimeDir = opts.runtimeDir;
      return n;
    };
    try {
      for (const cfg of configs) {
        const node = await createNode(nodeOpts(`_bridge_${cfg.name}`));
        host.#nodes.push(node);
        const so: StartBridgeOptions = { node };
        if (opts.dataDir !== undefined) so.dataDir = opts.dataDir;
        if (opts.log !== undefined) so.log = opts.log;
        host.#bridges.push(await startBridge(cfg, so));
      }
      const statusNode = await createNode(nodeOpts("_bridges"));
      host.#statusNode = statusNode;
      await serveBridgeStatus(statusNode, () => host.status());
    } catch (err) {
      await host.close();
      throw err;
    }
    return host;
  }

  /** The running bridges. */
  override get bridges(): readonly Bridge[] {
    return this.#bridges;
  }

  /** Status of every bridge, in configuration order. */
  override status(): BridgeStatus[] {
    return this.#bridges.map((b) => b.status());
  }

  /** Stops every bridge and leaves the hub. Idempotent. */
  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#statusNode?.close();
    await Promise.all(this.#bridges.map((b) => b.close()));
    await Promise.all(this.#nodes.map((n) => n.close()));
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
