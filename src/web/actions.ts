/**
 * What the page can do, each checked the way the CLI checks it: publish a message, call a service,
 * list and set a node's parameters, restart, stop or scale a supervised process, set a twin. Bad
 * input is refused with the error the CLI would give (code and message naming the field).
 */
import { fromJson, parseData, toJson } from "../codec/index.js";
import { MyelinError, ServiceError } from "../errors.js";
import {
  listServices,
  listTypes,
  lookupService,
  lookupType,
  type MessageType,
  type ServiceType,
} from "../msgs/index.js";
import { parameterProtocol, type Node, type Publisher } from "../node/index.js";
import { SUPERVISOR_PROTOCOL, type ProcessRow } from "../orchestrator/index.js";
import { TWIN_PROTOCOL } from "../gateway/index.js";
import { shorten } from "./message-view.js";
import { ServiceCaller } from "./service-caller.js";
import type { LiveFeed } from "./live-feed.js";

/** The spellings a type name may stand for (`pkg/Name`, `pkg/msg/Name`, `pkg.Name`), canonical last. */
function spellings(name: string): string[] {
  const out = [name];
  const ros = /^([a-z][a-z0-9_]*)\/(?:msg|srv|action)\/([A-Za-z][A-Za-z0-9_]*)$/.exec(name);
  if (ros !== null) out.push(`${ros[1]}/${ros[2]}`);
  const dotted = /^([a-z][a-z0-9_]*)\.(?:msg\.|srv\.)?([A-Za-z][A-Za-z0-9_]*)$/.exec(name);
  if (dotted !== null) out.push(`${dotted[1]}/${dotted[2]}`);
  return out;
}

function closeNames(name: string, all: string[]): string {
  const tail = name.split(/[/.]/).pop()!.toLowerCase();
  const m = all.filter((x) => x.toLowerCase().endsWith(`/${tail}`)).slice(0, 3);
  return m.length === 0 ? "" : ` (did you mean ${m.map((x) => `'${x}'`).join(" or ")}?)`;
}

/**
 * The registered message type `name`.
 * @throws MyelinError ERR_UNKNOWN_TYPE naming close matches
 */
export function messageType(name: string): MessageType<unknown> {
  for (const n of spellings(name)) {
    const t = lookupType(n);
    if (t !== undefined) return t;
  }
  throw new MyelinError(
    "ERR_UNKNOWN_TYPE",
    `message type '${name}' is not known${closeNames(name, listTypes())}; pick one of the hub's types (\`myelin interface list\`)`,
  );
}

/**
 * The registered service type `name`.
 * @throws MyelinError ERR_UNKNOWN_TYPE naming close matches
 */
export function serviceType(name: string): ServiceType<unknown, unknown> {
  for (const n of spellings(name)) {
    const t = lookupService(n);
    if (t !== undefined) return t;
  }
  throw new MyelinError(
    "ERR_UNKNOWN_TYPE",
    `service type '${name}' is not known${closeNames(name, listServices())}; pick one of the hub's types (\`myelin interface list\`)`,
  );
}

function str(body: Record<string, unknown>, key: string, what: string): string {
  const v = body[key];
  if (typeof v !== "string" || v.trim() === "") {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${what}: '${key}' is missing; give it as a string`);
  }
  return v.trim();
}

/** A value given as text (JSON or YAML) or as JSON already. */
function dataOf(v: unknown, what: string): unknown {
  return typeof v === "string" ? parseData(v, what) : (v ?? {});
}

/** The actions, on the feed's node. */
export class Actions {
  readonly #feed: LiveFeed;
  readonly #node: Node;
  readonly #pubs = new Map<string, Publisher<unknown>>();

  constructor(feed: LiveFeed) {
    this.#feed = feed;
    this.#node = feed.node;
  }

  /** Every message and service type the hub knows, for the page's pickers. */
  types(): { messages: string[]; services: string[] } {
    return { messages: listTypes(), services: listServices() };
  }

  /**
   * A message of `type` with every field at its default, as JSON (a starting point for the form);
   * for a service type, its request.
   */
  template(body: Record<string, unknown>): { json: unknown } {
    const name = str(body, "type", "template");
    const svc = lookupService(name);
    const type = svc !== undefined ? svc.request : messageType(name);
    return { json: toJson(type, fromJson(type, {}, `default ${type.name}`)) };
  }

  /**
   * Publishes one message (`data`, JSON or YAML text) of `type` on `topic`, waiting up to 1 s for
   * the topic's subscribers to connect, as `myelin topic pub` does.
   * @throws ERR_UNKNOWN_TYPE, ERR_INVALID_ARGUMENT, ERR_VALIDATION, ERR_TYPE_MISMATCH
   */
  async publish(body: Record<string, unknown>): Promise<{ topic: string; subscribers: number }> {
    const topic = str(body, "topic", "publish");
    const type = messageType(str(body, "type", "publish"));
    const msg = fromJson(type, dataOf(body["data"], `DATA for ${type.name}`), `DATA for ${type.name}`);
    const key = `${topic} ${type.name}`;
    let pub = this.#pubs.get(key);
    if (pub === undefined) {
      pub = await this.#node.createPublisher(topic, type, { qos: { reliability: "reliable" } });
      this.#pubs.set(key, pub);
      const subs = topicSubscribers(this.#feed, topic);
      if (subs > 0) await pub.waitForSubscribers(subs, 1000).catch(() => undefined);
    }
    await pub.publish(msg);
    return { topic: pub.topic, subscribers: pub.subscriberCount };
  }

  /**
   * Calls `service` with `request` (JSON or YAML text) as `type` (default: its type on the graph).
   * @throws ERR_UNKNOWN_TYPE, ERR_VALIDATION, ERR_NO_SERVER, ERR_TIMEOUT, the server's error
   */
  async call(body: Record<string, unknown>): Promise<{ response: unknown; ms: number }> {
    const service = str(body, "service", "call");
    const given =
      typeof body["type"] === "string" && body["type"].trim() !== "" ? body["type"].trim() : undefined;
    const typeName = given ?? ServiceCaller.typeOf(this.#feed.graph(), service);
    if (typeName === undefined) {
      throw new ServiceError("ERR_NO_SERVER", `no node serves ${service}; give its type to call it anyway`);
    }
    const type = serviceType(typeName);
    const req = fromJson(
      type.request,
      dataOf(body["request"], `request to ${service}`),
      `request to ${service}`,
    );
    const timeoutMs =
      typeof body["timeoutMs"] === "number" && body["timeoutMs"] > 0 ? body["timeoutMs"] : 5000;
    const t0 = performance.now();
    const res = await this.#feed.services.call(service, type, req, timeoutMs);
    return { response: shorten(toJson(type.response, res)), ms: performance.now() - t0 };
  }

  /** A node's parameters (`/<node>/list_parameters`). */
  async parameters(body: Record<string, unknown>): Promise<unknown> {
    const node = str(body, "node", "parameters");
    const list = parameterProtocol(node).list;
    const r = await this.#feed.services.call(list.service, list.type, {}, 3000);
    return {
      node,
      parameters: r.names.map((name, i) => ({
        name,
        kind: r.kinds[i] ?? "",
        value: JSON.parse(r.values_json[i] ?? "null") as unknown,
        description: r.descriptions[i] ?? "",
        descriptor: r.descriptors?.[i],
      })),
    };
  }

  /**
   * Sets a parameter (`value`: JSON or YAML text, or a value) through `/<node>/set_parameter`.
   * @throws MyelinError ERR_PARAMETER with the node's reason when it refuses
   */
  async setParameter(body: Record<string, unknown>): Promise<{ value: unknown }> {
    const node = str(body, "node", "set parameter");
    const name = str(body, "name", "set parameter");
    const value = dataOf(body["value"], `value of ${name}`);
    const set = parameterProtocol(node).set;
    const r = await this.#feed.services.call(
      set.service,
      set.type,
      { name, value_json: JSON.stringify(value) },
      3000,
    );
    if (!r.success) throw new MyelinError("ERR_PARAMETER", `${node}: ${name}: ${r.reason}`);
    return { value: JSON.parse(r.value_json) as unknown };
  }

  /**
   * Restarts (`restart`), stops (`stop`: scale to 0) or scales (`scale`, with `replicas`) a node
   * of the supervised system; replies once the supervisor is done (up to `waitMs`, default 30 s).
   * @throws MyelinError ERR_PROCESS_FAILED with the supervisor's message
   */
  async process(body: Record<string, unknown>): Promise<{ message: string; rows: ProcessRow[] }> {
    const action = str(body, "action", "process");
    const node = str(body, "node", "process");
    const waitMs = typeof body["waitMs"] === "number" && body["waitMs"] > 0 ? body["waitMs"] : 30000;
    let method: { service: string; type: typeof SUPERVISOR_PROTOCOL.scale.type };
    let replicas = 0;
    switch (action) {
      case "restart":
        method = SUPERVISOR_PROTOCOL.restart;
        break;
      case "stop":
        method = SUPERVISOR_PROTOCOL.scale;
        break;
      case "scale": {
        const n = body["replicas"];
        if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 64) {
          throw new MyelinError(
            "ERR_INVALID_ARGUMENT",
            `scale ${node}: replicas must be an integer from 0 to 64, got ${JSON.stringify(n)}`,
          );
        }
        method = SUPERVISOR_PROTOCOL.scale;
        replicas = n;
        break;
      }
      default:
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `process: action must be restart, stop or scale, got '${action}'`,
        );
    }
    if (ServiceCaller.typeOf(this.#feed.graph(), method.service) === undefined) {
      throw new ServiceError(
        "ERR_NO_SERVER",
        "the hub runs without a supervisor; start the system with `myelin up`",
      );
    }
    const r = await this.#feed.services.call(
      method.service,
      method.type,
      { node, replicas, wait_ms: waitMs, version: 0 }, // this hub only
      (action === "restart" ? 8 : 1) * waitMs + 10000,
    );
    const rows = JSON.parse(r.processes_json) as ProcessRow[];
    if (!r.ok) throw new MyelinError("ERR_PROCESS_FAILED", r.message);
    return { message: r.message, rows };
  }

  /** Calls one of the twins' services (`op`: list, get, set or delete) with `request` (JSON or YAML text). */
  async twins(body: Record<string, unknown>): Promise<unknown> {
    const op = str(body, "op", "twins");
    const ops = Object.keys(TWIN_PROTOCOL);
    if (!ops.includes(op)) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `twins: no operation '${op}'; use ${ops.join(", ")}`);
    }
    const { service } = TWIN_PROTOCOL[op as keyof typeof TWIN_PROTOCOL];
    const type = TWIN_PROTOCOL[op as keyof typeof TWIN_PROTOCOL].type as ServiceType<unknown, unknown>;
    if (ServiceCaller.typeOf(this.#feed.graph(), service) === undefined)
      throw new ServiceError(
        "ERR_NO_SERVER",
        `no twins service: nothing serves ${service} (the hub runs no MQTT gateway)`,
      );
    const req = fromJson(
      type.request,
      dataOf(body["request"], `request to ${service}`),
      `request to ${service}`,
    );
    const res = await this.#feed.services.call(service, type, req, 5000);
    return { response: toJson(type.response, res) };
  }

  /** Closes the publishers made for the page. */
  close(): void {
    for (const p of this.#pubs.values()) p.close();
    this.#pubs.clear();
  }
}

function topicSubscribers(feed: LiveFeed, topic: string): number {
  let n = 0;
  for (const node of feed.graph()?.nodes ?? []) {
    if (node.name === "_dashboard") continue;
    n += node.subs.filter((d) => d.topic === topic).length;
  }
  return n;
}
