/**
 * The twins' MQTT topics, modelled on AWS IoT device shadows (whose `$aws/…` topics a client may
 * not use here: `$` topics belong to the broker). With the default prefix `twins`:
 *
 * | topic                              | who publishes | payload                                                  |
 * | ---------------------------------- | ------------- | -------------------------------------------------------- |
 * | `twins/<device>/reported`          | the device    | `{"state": {…}, "clientToken"?: "…", "version"?: n}`     |
 * | `twins/<device>/reported/accepted` | the gateway   | `{"state": {…all reported…}, "version": n, "timestamp"}` |
 * | `twins/<device>/reported/rejected` | the gateway   | `{"code": 400, "error": "ERR_…", "message": "…", …}`     |
 * | `twins/<device>/get`               | the device    | empty, or `{"clientToken": "…"}`                         |
 * | `twins/<device>/get/accepted`      | the gateway   | the twin: state (desired, reported, delta), versions, …  |
 * | `twins/<device>/get/rejected`      | the gateway   | as for reported/rejected                                 |
 * | `twins/<device>/desired/delta`     | the gateway   | `{"state": {…what differs…}, "version": n, "timestamp"}` |
 *
 * A delta is published when desired changes and differs from reported, and sent again to a client
 * when it subscribes to (or reconnects with a session holding) a filter covering the delta topic,
 * so a device that was offline gets what changed. Requests are handled before the PUBACK, so a
 * QoS 1 report that is acknowledged is on disk. A refused request is answered on `…/rejected`
 * (with the client's `clientToken`), reported on the gateway's error topic, and changes nothing.
 * Clients may not publish the gateway's topics (`accepted`, `rejected`, `delta`). A will on a
 * twin topic is a request of its client; one published after a restart, without its client, is
 * refused.
 *
 * When the gateway has users, a client may only touch its own twin: the device named by its user
 * name (`twins.identity: username`, the default) or by its client id (`client-id`).
 */
import type { Aedes, Client, PublishPacket, Subscription } from "aedes";
import { MyelinError, ServiceError } from "../errors.js";
import { topicMatches, unshare } from "./mqtt-auth.js";
import {
  applyPatch,
  checkDeviceName,
  computeDelta,
  maxRequestBytes,
  newTwin,
  parseTwinRequest,
  peekClientToken,
  twinErrorStatus,
  twinToJson,
  type ResolvedTwinOptions,
  type TwinDocument,
  type TwinRequest,
} from "./twin-document.js";
import { unknownDevice } from "./twin-service.js";
import type { TwinStore } from "./twin-store.js";

/** Options of {@link TwinMqtt}. */
export interface TwinMqttOptions {
  broker: Aedes;
  store: TwinStore;
  twins: ResolvedTwinOptions;
  /** True when the gateway has users: a client may then touch only its own twin. */
  enforceIdentity: boolean;
  /** The user a connected client logged in as ("" for anonymous), undefined when unknown. */
  userOf(client: Client): string | undefined;
  /** Reports a refused request on the gateway's error topic and counts it for the client. */
  reject(reason: string, topic: string, client: Client | null): void;
  log?: (line: string) => void;
}

/** The twins' MQTT topic scheme on the embedded broker. */
export class TwinMqtt {
  readonly #opts: TwinMqttOptions;
  readonly #prefix: string;
  /** The device each connected client stands for (set when it is ready). */
  readonly #identity = new WeakMap<Client, string>();
  /** How many clients of each device are connected. */
  readonly #online = new Map<string, number>();
  readonly #unlisten: () => void;
  #closed = false;

  constructor(opts: TwinMqttOptions) {
    this.#opts = opts;
    this.#prefix = opts.twins.topicPrefix;
    const b = opts.broker;
    b.on("clientReady", (c) => this.#onReady(c));
    b.on("clientDisconnect", (c) => this.#onDisconnect(c));
    b.on("subscribe", (subs: Subscription[], c: Client) => this.#sendDeltas(c, subs));
    this.#unlisten = opts.store.onChange((ch) => {
      if (ch.kind === "desired" || (ch.kind === "created" && Object.keys(ch.twin.desired).length > 0))
        this.#publishDelta(ch.twin);
    });
  }

  /** True for a topic under the twins' prefix, which the twins handle instead of routing it. */
  handles(topic: string): boolean {
    return topic === this.#prefix || topic.startsWith(`${this.#prefix}/`);
  }

  /** The device a client stands for, or undefined (an anonymous client under `username`). */
  identityOf(client: Client): string | undefined {
    if (!this.#opts.enforceIdentity || this.#opts.twins.identity === "client-id") return client.id;
    const user = this.#opts.userOf(client);
    return user === undefined || user === "" ? undefined : user;
  }

  /**
   * Handles a publish on a twin topic (`handles(topic)`): answers it on its accepted or rejected
   * topic. Resolves once the answer is on its way and any change is on disk; never rejects.
   */
  async onPublish(client: Client | null, packet: PublishPacket): Promise<void> {
    const topic = packet.topic;
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const levels = topic.slice(this.#prefix.length + 1).split("/");
    const device = levels[0] ?? "";
    const op = levels.slice(1).join("/");
    if (client === null) {
      this.#opts.reject(
        `twin ${device}: a will published after a restart (${topic}) has no client any more and cannot update a twin; the twin's metadata.connected tells when the device is gone`,
        topic,
        null,
      );
      return;
    }
    if (op !== "reported" && op !== "get") {
      const last = levels[levels.length - 1];
      const reason =
        last === "accepted" || last === "rejected" || last === "delta"
          ? `twin ${device}: ${topic} is published by the gateway only; devices publish to ${this.#prefix}/<device>/reported and ${this.#prefix}/<device>/get`
          : `twin ${device}: ${topic} is not a twin topic; devices publish to ${this.#prefix}/<device>/reported and ${this.#prefix}/<device>/get (docs/device-twins.md)`;
      this.#opts.reject(reason, topic, client);
      // Answering a gateway topic would answer our own answers; anything else gets a rejected reply.
      if (!(last === "accepted" || last === "rejected" || last === "delta") && topic !== this.#prefix)
        await this.#reply(`${topic}/rejected`, this.#errorBody(myelinError400(reason), undefined));
      return;
    }
    // Echoed in every answer, a rejection too, so the device can match it to its request.
    let clientToken =
      payload.length <= maxRequestBytes(this.#opts.twins) ? peekClientToken(payload) : undefined;
    try {
      checkDeviceName(device);
      this.#checkIdentity(client, device);
      const body = parseTwinRequest(device, op, payload, this.#opts.twins);
      clientToken = body.clientToken;
      if (op === "get") {
        const twin = this.#opts.store.get(device);
        if (twin === undefined) throw unknownDevice(device, this.#prefix);
        await this.#reply(
          `${topic}/accepted`,
          withToken({ ...twinToJson(twin), timestamp: Date.now() }, clientToken),
        );
        return;
      }
      const twin = await this.#report(client, device, body);
      await this.#reply(
        `${topic}/accepted`,
        withToken(
          { state: twin.reported, version: twin.reportedVersion, timestamp: Date.now() },
          clientToken,
        ),
      );
    } catch (err) {
      // Anything but a MyelinError is the gateway's fault, not the request's (status 500).
      const e =
        err instanceof MyelinError
          ? err
          : new ServiceError("ERR_SERVICE_FAILED", `twin ${device}: ${(err as Error).message}`);
      this.#opts.reject(
        e.message.startsWith("twin ") ? e.message : `twin ${device}: ${e.message}`,
        topic,
        client,
      );
      await this.#reply(`${topic}/rejected`, this.#errorBody(e, clientToken));
    }
  }

  #checkIdentity(client: Client, device: string): void {
    if (!this.#opts.enforceIdentity) return;
    const id = this.identityOf(client);
    if (id === device) return;
    const by =
      this.#opts.twins.identity === "client-id"
        ? `client id ${client.id}`
        : `user ${JSON.stringify(this.#opts.userOf(client) ?? "")}`;
    throw new MyelinError(
      "ERR_NOT_AUTHORIZED",
      id === undefined
        ? `twin ${device}: an anonymous client has no twin on this gateway (twins.identity username); log in as the device's user`
        : `twin ${device}: client ${client.id} is device ${id} (by ${by}) and may touch only its own twin, ${this.#prefix}/${id}/…`,
    );
  }

  async #report(client: Client, device: string, body: TwinRequest): Promise<TwinDocument> {
    const { store, twins } = this.#opts;
    const r = await store.update(device, (cur) => {
      const now = Date.now();
      let base = cur;
      if (base === undefined) {
        base = newTwin(device, now);
        base.connected = (this.#online.get(device) ?? 0) > 0;
        base.clientId = client.id;
      }
      const next = applyPatch(base, "reported", body.state ?? {}, {
        now,
        maxStateBytes: twins.maxStateBytes,
        ...(body.version !== undefined ? { expectedVersion: body.version } : {}),
      });
      if (next === cur) return undefined; // nothing new: no write
      return { twin: { ...next, lastSeen: now, clientId: client.id }, kind: "reported" };
    });
    return r!;
  }

  #errorBody(e: MyelinError, clientToken: string | undefined): Record<string, unknown> {
    return withToken(
      { code: twinErrorStatus(e.code), error: e.code, message: e.message, timestamp: Date.now() },
      clientToken,
    );
  }

  #reply(topic: string, body: unknown): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) =>
      this.#opts.broker.publish(
        {
          cmd: "publish",
          topic,
          payload: Buffer.from(JSON.stringify(body)),
          qos: 1,
          retain: false,
          dup: false,
        },
        () => resolve(),
      ),
    );
  }

  #deltaTopic(device: string): string {
    return `${this.#prefix}/${device}/desired/delta`;
  }

  /** The delta message of a twin, or undefined when the device is in the desired state. */
  #deltaBody(twin: TwinDocument): Record<string, unknown> | undefined {
    const delta = computeDelta(twin.desired, twin.reported);
    if (Object.keys(delta).length === 0) return undefined;
    return { state: delta, version: twin.desiredVersion, timestamp: Date.now() };
  }

  #publishDelta(twin: TwinDocument): void {
    const body = this.#deltaBody(twin);
    if (body !== undefined) void this.#reply(this.#deltaTopic(twin.device), body);
  }

  /** Sends a client the current delta of every twin whose delta topic its subscriptions cover. */
  #sendDeltas(client: Client, subs: { topic: string; qos: number }[]): void {
    if (this.#closed) return;
    for (const s of subs) {
      if (s.qos > 2) continue; // refused (0x80)
      const filter = unshare(s.topic).filter;
      if (!this.handles(filter) && !filter.startsWith("+") && !filter.startsWith("#")) continue;
      const wild = filter.includes("+") || filter.includes("#");
      const twins = wild
        ? this.#opts.store.list()
        : [this.#opts.store.get(filter.split("/").slice(-3)[0] ?? "")].filter(
            (t): t is TwinDocument => t !== undefined,
          );
      for (const t of twins) {
        const topic = this.#deltaTopic(t.device);
        if (!topicMatches(filter, topic)) continue;
        const body = this.#deltaBody(t);
        if (body === undefined) continue;
        const payload = Buffer.from(JSON.stringify(body));
        client.publish(
          { cmd: "publish", topic, payload, qos: Math.min(s.qos, 1) as 0 | 1, retain: false, dup: false },
          (err) => {
            if (err !== undefined)
              this.#opts.log?.(`twin ${t.device}: cannot send the delta to ${client.id}: ${err.message}`);
          },
        );
      }
    }
  }

  #onReady(client: Client): void {
    if (this.#closed) return;
    const id = this.identityOf(client);
    if (id !== undefined) {
      this.#identity.set(client, id);
      this.#online.set(id, (this.#online.get(id) ?? 0) + 1);
      this.#connection(id, true, client.id);
    }
    // A persistent session's subscriptions are back: send what changed while it was away.
    const subs = (client as unknown as { subscriptions?: Record<string, { qos: number } | undefined> })
      .subscriptions;
    if (subs !== undefined)
      this.#sendDeltas(
        client,
        Object.entries(subs).flatMap(([topic, s]) => (s === undefined ? [] : [{ topic, qos: s.qos }])),
      );
  }

  #onDisconnect(client: Client): void {
    const id = this.#identity.get(client);
    if (id === undefined) return;
    this.#identity.delete(client);
    const n = (this.#online.get(id) ?? 1) - 1;
    if (n > 0) {
      this.#online.set(id, n);
      return;
    }
    this.#online.delete(id);
    if (!this.#closed) this.#connection(id, false, client.id);
  }

  /** Records a device's connection in its twin (if it has one). */
  #connection(device: string, connected: boolean, clientId: string): void {
    this.#opts.store
      .update(device, (cur) => {
        if (cur === undefined) return undefined;
        const isOn = (this.#online.get(device) ?? 0) > 0;
        if (connected !== isOn) return undefined; // superseded by a later event
        return { twin: { ...cur, connected, lastSeen: Date.now(), clientId }, kind: "connection" };
      })
      .catch((err: unknown) =>
        this.#opts.log?.(`twin ${device}: cannot record its connection: ${(err as Error).message}`),
      );
  }

  /** Stops answering and sending deltas. */
  close(): void {
    this.#closed = true;
    this.#unlisten();
  }
}

function withToken<T extends Record<string, unknown>>(body: T, clientToken: string | undefined): T {
  return clientToken === undefined ? body : { ...body, clientToken };
}

function myelinError400(reason: string): MyelinError {
  return new MyelinError("ERR_INVALID_ARGUMENT", reason);
}
