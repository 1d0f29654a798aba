/**
 * The twins' Myelin face, served by the gateway's node: `/_twins/list`, `/_twins/get`,
 * `/_twins/set` and `/_twins/delete` (types in myelin_msgs), and the change stream
 * `/_twins/updates` (`myelin_msgs/TwinUpdate`, one message per change, after it is on disk).
 * Refusals are replies with `ok` false, an error code and a message that says what to fix; the
 * typed client (`twin-client.ts`) turns them back into errors.
 */
import { MyelinError } from "../errors.js";
import { myelin_msgs, timeNow, type MessageOf } from "../msgs/index.js";
import { serveProtocol, type Node, type ProtocolServer, type Publisher } from "../node/index.js";
import {
  applyPatch,
  checkDeviceName,
  checkState,
  computeDelta,
  devicePattern,
  newTwin,
  type ResolvedTwinOptions,
  type TwinDocument,
} from "./twin-document.js";
import { TWIN_PROTOCOL, TWIN_UPDATES_TOPIC } from "./twin-protocol.js";
import type { TwinStore } from "./twin-store.js";

/** Most twins one list reply holds. */
export const TWIN_LIST_MAX = 1000;

type TwinMsg = MessageOf<typeof myelin_msgs.Twin>;

/** A twin as the services send it. */
export function twinToMsg(t: TwinDocument): TwinMsg {
  return {
    device: t.device,
    desired_json: JSON.stringify(t.desired),
    reported_json: JSON.stringify(t.reported),
    delta_json: JSON.stringify(computeDelta(t.desired, t.reported)),
    version: t.version,
    desired_version: t.desiredVersion,
    reported_version: t.reportedVersion,
    created_at: t.createdAt,
    desired_updated_at: t.desiredUpdatedAt,
    reported_updated_at: t.reportedUpdatedAt,
    last_seen: t.lastSeen,
    connected: t.connected,
    client_id: t.clientId,
  };
}

function refusal(err: unknown): { ok: false; error_code: string; message: string } {
  if (err instanceof MyelinError) return { ok: false, error_code: err.code, message: err.message };
  return { ok: false, error_code: "ERR_SERVICE_FAILED", message: (err as Error)?.message ?? String(err) };
}

/** An expected version from a request (absent: none). */
function expectedOf(v: number | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v < 0)
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${field} must be a whole number >= 0 (leave it out for no check), got ${v}`,
    );
  return v;
}

/** Options of {@link TwinService.start}. */
export interface TwinServiceOptions {
  /** The node that serves (the gateway's). */
  node: Node;
  store: TwinStore;
  twins: ResolvedTwinOptions;
  /** Human-readable events. */
  log?: (line: string) => void;
}

/** The twin services and change stream on a node. Start with {@link TwinService.start}. */
export class TwinService {
  readonly #opts: TwinServiceOptions;
  #updates!: Publisher<MessageOf<typeof myelin_msgs.TwinUpdate>>;
  #unlisten: () => void = () => {};
  #server: ProtocolServer | undefined;

  private constructor(opts: TwinServiceOptions) {
    this.#opts = opts;
  }

  /** Serves the services and publishes the changes of `store`. */
  static async start(opts: TwinServiceOptions): Promise<TwinService> {
    const s = new TwinService(opts);
    await s.#start();
    return s;
  }

  async #start(): Promise<void> {
    const { node, store } = this.#opts;
    this.#updates = await node.createPublisher(TWIN_UPDATES_TOPIC, myelin_msgs.TwinUpdate);
    this.#unlisten = store.onChange((c) => {
      this.#updates
        .publish({ kind: c.kind, twin: twinToMsg(c.twin), stamp: timeNow() })
        .catch((err: unknown) => this.#opts.log?.(`cannot publish a twin change: ${(err as Error).message}`));
    });
    this.#server = await serveProtocol(node, TWIN_PROTOCOL, {
      list: (req) => {
        try {
          if (!/^[A-Za-z0-9_:.*?-]*$/.test(req.pattern))
            throw new MyelinError(
              "ERR_INVALID_ARGUMENT",
              `pattern ${JSON.stringify(req.pattern)} has a character no device name has; use letters, digits, '_', '-', '.', ':' and the wildcards * and ?`,
            );
          const re = devicePattern(req.pattern);
          const max = req.max === 0 ? TWIN_LIST_MAX : Math.min(req.max, TWIN_LIST_MAX);
          const all = store.list().filter((t) => re.test(t.device));
          const from = all.filter((t) => req.after === "" || t.device > req.after);
          return {
            ok: true,
            error_code: "",
            message: "",
            twins: from.slice(0, max).map((t) => {
              const delta = computeDelta(t.desired, t.reported);
              return {
                device: t.device,
                version: t.version,
                desired_version: t.desiredVersion,
                reported_version: t.reportedVersion,
                last_seen: t.lastSeen,
                connected: t.connected,
                delta_json: JSON.stringify(delta),
                delta_keys: Object.keys(delta).length,
              };
            }),
            more: from.length > max,
            total: all.length,
          };
        } catch (err) {
          return { ...refusal(err), twins: [], more: false, total: 0 };
        }
      },
      get: (req) => {
        try {
          checkDeviceName(req.device);
          const t = store.get(req.device);
          if (t === undefined) throw unknownDevice(req.device, this.#opts.twins.topicPrefix);
          return { ok: true, error_code: "", message: "", twin: twinToMsg(t) };
        } catch (err) {
          return refusal(err);
        }
      },
      set: async (req) => {
        try {
          const twin = await this.setDesired(req.device, req.desired_json, {
            expectedVersion: expectedOf(req.expected_version, "expected_version"),
            create: req.create,
            replace: req.replace,
          });
          return { ok: true, error_code: "", message: "", twin: twinToMsg(twin) };
        } catch (err) {
          return refusal(err);
        }
      },
      delete: async (req) => {
        try {
          checkDeviceName(req.device);
          const expected = expectedOf(req.expected_version, "expected_version");
          await store.update(req.device, (cur) => {
            if (cur === undefined) throw unknownDevice(req.device, this.#opts.twins.topicPrefix);
            if (expected !== undefined && cur.version !== expected)
              throw new MyelinError(
                "ERR_VERSION_CONFLICT",
                `twin ${req.device} is at version ${cur.version}, the delete expected version ${expected}; read the twin again and decide`,
              );
            return { twin: cur, kind: "deleted" };
          });
          return { ok: true, error_code: "", message: "" };
        } catch (err) {
          return refusal(err);
        }
      },
    });
  }

  /**
   * Changes the desired state of a twin (what `/_twins/set` does).
   * @throws MyelinError ERR_DECODE (not JSON), ERR_VALIDATION (not an object, too deep),
   *   ERR_INVALID_ARGUMENT (bad device name), ERR_UNKNOWN_DEVICE (no twin, without `create`),
   *   ERR_VERSION_CONFLICT, ERR_PAYLOAD_TOO_LARGE, ERR_STORAGE
   */
  async setDesired(
    device: string,
    desiredJson: string,
    opts: { expectedVersion: number | undefined; create: boolean; replace: boolean },
  ): Promise<TwinDocument> {
    const { store, twins } = this.#opts;
    checkDeviceName(device);
    let patch: unknown;
    try {
      patch = JSON.parse(desiredJson);
    } catch (err) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `desired state for twin ${device} is not JSON (${(err as Error).message}); give an object such as {"fan": "on"}`,
      );
    }
    checkState(patch, `desired state for twin ${device}`, twins.maxDepth);
    const p = patch;
    const r = await store.update(device, (cur) => {
      const now = Date.now();
      if (cur === undefined && !opts.create) throw unknownDevice(device, twins.topicPrefix);
      const base = cur ?? newTwin(device, now);
      const next = applyPatch(base, "desired", p, {
        now,
        maxStateBytes: twins.maxStateBytes,
        replace: opts.replace,
        ...(opts.expectedVersion !== undefined ? { expectedVersion: opts.expectedVersion } : {}),
      });
      if (next === cur) return undefined;
      return { twin: next, kind: "desired" };
    });
    return r!;
  }

  /** Stops serving and publishing changes. */
  close(): void {
    this.#unlisten();
    this.#server?.close();
  }
}

/** The error for a device without a twin. */
export function unknownDevice(device: string, topicPrefix: string): MyelinError {
  return new MyelinError(
    "ERR_UNKNOWN_DEVICE",
    `no twin for device ${device}: a twin is made by the device's first report on ${topicPrefix}/${device}/reported, or by \`myelin twin set ${device} JSON --create\`; see \`myelin twin list\``,
  );
}
