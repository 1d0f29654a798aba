/**
 * The typed client of the device twins the MQTT gateway keeps: list, read, change the desired
 * state of, and delete twins, and follow their changes, from any node (through the `/_twins/*`
 * services of the hub's gateway).
 *
 * ```ts
 * const twins = new TwinClient(node);
 * const pump = await twins.get("pump-7");
 * await twins.setDesired("pump-7", { speed: 1200 }, { expectedVersion: pump.desiredVersion });
 * ```
 */
import { isErrorCode, myelinError, ServiceError } from "../errors.js";
import { myelin_msgs, timeToMillis, type MessageOf } from "../msgs/index.js";
import { protocolClient, type Node, type ProtocolClient, type Subscription } from "../node/index.js";
import type { JsonObject, TwinDocument } from "./twin-document.js";
import { TWIN_PROTOCOL, TWIN_UPDATES_TOPIC, type TwinProtocol } from "./twin-protocol.js";

/** A device's twin, with what it still has to do. Times in ms since the Unix epoch (0: never). */
export interface DeviceTwin extends TwinDocument {
  /** The desired values the device has not reported yet (empty when it is in the desired state). */
  delta: JsonObject;
}

/** One twin in a list. */
export interface TwinSummary {
  device: string;
  version: number;
  desiredVersion: number;
  reportedVersion: number;
  lastSeen: number;
  connected: boolean;
  /** The desired values the device has not reported yet. */
  delta: JsonObject;
  /** How many top-level keys `delta` has. */
  deltaKeys: number;
}

/** Options of {@link TwinClient.list}. */
export interface TwinListOptions {
  /** A glob over device names (`*`, `?`), e.g. `pump-*` (default all). */
  pattern?: string;
  /** Start after this device name (for paging: the last name of the previous page). */
  after?: string;
  /** Most twins to return, 1 to 1000 (default 1000). */
  max?: number;
}

/** A page of twins, sorted by device name. */
export interface TwinListPage {
  twins: TwinSummary[];
  /** True when more twins match after the last one here. */
  more: boolean;
  /** How many twins match in all. */
  total: number;
}

/** Options of {@link TwinClient.setDesired}. */
export interface TwinSetOptions {
  /** Apply only while desired is at this version (else ERR_VERSION_CONFLICT naming both). */
  expectedVersion?: number;
  /** Make the twin if the device has none (else ERR_UNKNOWN_DEVICE). */
  create?: boolean;
  /** Replace the whole desired state instead of merging the patch into it. */
  replace?: boolean;
}

/** A change of a twin, as {@link TwinClient.onUpdate} delivers it. */
export interface TwinUpdateEvent {
  kind: "created" | "desired" | "reported" | "connection" | "deleted";
  /** The twin after the change (before it, for `deleted`). */
  twin: DeviceTwin;
  /** When the change was published, in ms since the Unix epoch. */
  stamp: number;
}

/** Options of {@link TwinClient}. */
export interface TwinClientOptions {
  /** Timeout of each call, in ms (default 3000). */
  timeoutMs?: number;
}

function parseObject(text: string): JsonObject {
  const v = JSON.parse(text) as unknown;
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

/** A twin from its message form. */
export function twinFromMsg(m: MessageOf<typeof myelin_msgs.Twin>): DeviceTwin {
  return {
    device: m.device,
    desired: parseObject(m.desired_json),
    reported: parseObject(m.reported_json),
    delta: parseObject(m.delta_json),
    version: m.version,
    desiredVersion: m.desired_version,
    reportedVersion: m.reported_version,
    createdAt: m.created_at,
    desiredUpdatedAt: m.desired_updated_at,
    reportedUpdatedAt: m.reported_updated_at,
    lastSeen: m.last_seen,
    connected: m.connected,
    clientId: m.client_id,
  };
}

function check(r: { ok: boolean; error_code: string; message: string }, what: string): void {
  if (r.ok) return;
  const code = r.error_code;
  if (!isErrorCode(code))
    throw new ServiceError("ERR_SERVICE_FAILED", `${what}: ${r.message}${code === "" ? "" : ` (${code})`}`);
  throw myelinError(code, r.message);
}

/**
 * Reads and changes the gateway's device twins from a node. Calls fail with ERR_NO_SERVER when
 * no gateway with twins runs (start the hub with `--mqtt-port` or `--gateway-config`).
 */
export class TwinClient {
  readonly #node: Node;
  readonly #client: ProtocolClient<TwinProtocol>;
  readonly #subs: Subscription<unknown>[] = [];

  constructor(node: Node, opts: TwinClientOptions = {}) {
    this.#node = node;
    this.#client = protocolClient(node, TWIN_PROTOCOL, { timeoutMs: opts.timeoutMs ?? 3000 });
  }

  /** Waits up to `timeoutMs` for the twin services; false when they did not appear. */
  waitForService(timeoutMs: number): Promise<boolean> {
    return this.#client.waitForServer("get", timeoutMs);
  }

  /**
   * Twins sorted by device name, a page at a time.
   * @throws MyelinError ERR_INVALID_ARGUMENT for a pattern with characters no device name has
   */
  async list(opts: TwinListOptions = {}): Promise<TwinListPage> {
    const r = await this.#client.list({
      pattern: opts.pattern ?? "",
      after: opts.after ?? "",
      max: opts.max ?? 0,
    });
    check(r, "listing twins");
    return {
      twins: r.twins.map((t) => ({
        device: t.device,
        version: t.version,
        desiredVersion: t.desired_version,
        reportedVersion: t.reported_version,
        lastSeen: t.last_seen,
        connected: t.connected,
        delta: parseObject(t.delta_json),
        deltaKeys: t.delta_keys,
      })),
      more: r.more,
      total: r.total,
    };
  }

  /**
   * The twin of `device`.
   * @throws MyelinError ERR_UNKNOWN_DEVICE when it has none; ERR_INVALID_ARGUMENT for a bad name
   */
  async get(device: string): Promise<DeviceTwin> {
    const r = await this.#client.get({ device });
    check(r, `reading twin ${device}`);
    return twinFromMsg(r.twin!);
  }

  /**
   * Changes the desired state of `device`'s twin: `patch` is merged into it (JSON merge patch:
   * `null` removes a key), or replaces it with `replace`. Resolves with the twin once the change
   * is on disk; the device gets the delta on `twins/<device>/desired/delta` now or when it
   * reconnects.
   * @throws MyelinError ERR_VERSION_CONFLICT (naming both versions), ERR_UNKNOWN_DEVICE (without
   *   `create`), ERR_VALIDATION (not an object, too deep), ERR_PAYLOAD_TOO_LARGE, ERR_STORAGE
   */
  async setDesired(device: string, patch: JsonObject, opts: TwinSetOptions = {}): Promise<DeviceTwin> {
    const r = await this.#client.set({
      device,
      desired_json: JSON.stringify(patch),
      create: opts.create ?? false,
      replace: opts.replace ?? false,
      ...(opts.expectedVersion !== undefined ? { expected_version: opts.expectedVersion } : {}),
    });
    check(r, `setting twin ${device}`);
    return twinFromMsg(r.twin!);
  }

  /**
   * Deletes the twin of `device` (with `expectedVersion`, only while its version is that).
   * @throws MyelinError ERR_UNKNOWN_DEVICE, ERR_VERSION_CONFLICT, ERR_STORAGE
   */
  async delete(device: string, opts: { expectedVersion?: number } = {}): Promise<void> {
    const r = await this.#client.delete({
      device,
      ...(opts.expectedVersion !== undefined ? { expected_version: opts.expectedVersion } : {}),
    });
    check(r, `deleting twin ${device}`);
  }

  /** Calls `handler` with every change of every twin from now on (`/_twins/updates`). */
  async onUpdate(handler: (e: TwinUpdateEvent) => void): Promise<Subscription<unknown>> {
    const sub = await this.#node.createSubscription(TWIN_UPDATES_TOPIC, myelin_msgs.TwinUpdate, (m) =>
      handler({
        kind: m.kind as TwinUpdateEvent["kind"],
        twin: twinFromMsg(m.twin),
        stamp: timeToMillis(m.stamp),
      }),
    );
    this.#subs.push(sub as Subscription<unknown>);
    return sub as Subscription<unknown>;
  }

  /** Closes the service clients and update subscriptions (not the node). */
  close(): void {
    this.#client.close();
    for (const s of this.#subs) s.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
