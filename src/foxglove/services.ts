/**
 * The services the Foxglove server advertises, from the hub's graph, and calls to them. A service
 * is advertised when its type is registered in the hub process (the standard types, and those of
 * modules the hub imports with `--import`): its request and response travel in the recorder's
 * channel encoding of their types (JSON with a JSON Schema a viewer reads), and a request is
 * checked against the type before the call. A service of an unknown type
 * is left out and named in the status. Like channels, a service keeps its id while its name and
 * type stay the same.
 */
import type { Service } from "@foxglove/ws-protocol";
import { lookupService, type MessageType, type ServiceType } from "../msgs/index.js";
import { channelEncodingOf } from "../record/channel-encoding.js";
import type { GraphSnapshot, Node, ServiceClient } from "../node/index.js";
import { isHiddenName } from "./topics.js";

/** A service as the server keeps it. */
export interface ServiceInfo {
  id: number;
  name: string;
  type: ServiceType<unknown, unknown>;
  /** The advertisement sent to clients. */
  wire: Service;
}

/** The type registered under `name` (also spelt `pkg/srv/Name`), if any. */
function resolveService(name: string): ServiceType<unknown, unknown> | undefined {
  const ros = /^([a-z][a-z0-9_]*)\/srv\/([A-Za-z][A-Za-z0-9_]*)$/.exec(name);
  return lookupService(name) ?? (ros !== null ? lookupService(`${ros[1]}/${ros[2]}`) : undefined);
}

/** The request or response part of a service advertisement: the channel encoding of `type`. */
function describe(
  type: MessageType<unknown>,
  schemaName: string,
): { encoding: string; schemaName: string; schemaEncoding: string; schema: string } {
  const enc = channelEncodingOf(type);
  return {
    encoding: enc.messageEncoding,
    // The JSON Schema is named after the part; a CDR schema keeps its ROS name.
    schemaName: enc.schemaEncoding === "jsonschema" ? schemaName : enc.schemaName,
    schemaEncoding: enc.schemaEncoding,
    schema: Buffer.from(enc.schemaData).toString("utf8"),
  };
}

/** The service table; feed it graphs. */
export class ServiceTable {
  readonly #showHidden: boolean;
  readonly #byName = new Map<string, ServiceInfo>();
  readonly #byId = new Map<number, ServiceInfo>();
  readonly #ids = new Map<string, number>();
  #nextId = 1;
  readonly #clients = new Map<string, ServiceClient<unknown, unknown>>();
  /** Services left out because their type is not registered here, with the type. */
  readonly unknownTypes = new Map<string, string>();

  constructor(opts: { showHidden: boolean }) {
    this.#showHidden = opts.showHidden;
  }

  /** The service of `id`, if advertised now. */
  get(id: number): ServiceInfo | undefined {
    return this.#byId.get(id);
  }

  /** Every service advertised now. */
  all(): ServiceInfo[] {
    return [...this.#byId.values()];
  }

  /** Brings the table in line with `g`; returns what changed. */
  update(g: GraphSnapshot): { added: ServiceInfo[]; removed: ServiceInfo[] } {
    const want = new Map<string, string>();
    for (const n of g.nodes) {
      for (const s of n.services) {
        if (!want.has(s.service) && (this.#showHidden || !isHiddenName(s.service)))
          want.set(s.service, s.type);
      }
    }
    const added: ServiceInfo[] = [];
    const removed: ServiceInfo[] = [];
    for (const [name, svc] of this.#byName) {
      if (want.get(name) !== svc.type.name) {
        this.#byName.delete(name);
        this.#byId.delete(svc.id);
        this.#clients.get(name)?.close();
        this.#clients.delete(name);
        removed.push(svc);
      }
    }
    this.unknownTypes.clear();
    for (const [name, typeName] of want) {
      if (this.#byName.has(name)) continue;
      const type = resolveService(typeName);
      if (type === undefined) {
        this.unknownTypes.set(name, typeName);
        continue;
      }
      const key = `${name}\n${type.name}`;
      let id = this.#ids.get(key);
      if (id === undefined) {
        id = this.#nextId++;
        this.#ids.set(key, id);
      }
      const request = describe(type.request, `${type.name}_Request`);
      const response = describe(type.response, `${type.name}_Response`);
      const svc: ServiceInfo = {
        id,
        name,
        type,
        // requestSchema/responseSchema too, for clients of the protocol before `request`/`response`.
        wire: {
          id,
          name,
          type: type.name,
          request,
          response,
          requestSchema: request.schema,
          responseSchema: response.schema,
        },
      };
      this.#byName.set(name, svc);
      this.#byId.set(id, svc);
      added.push(svc);
    }
    return { added, removed };
  }

  /**
   * Calls `svc` with a JSON request; resolves with the JSON response.
   * @throws ValidationError when the request does not fit the type; the call's error otherwise
   */
  async call(node: Node, svc: ServiceInfo, request: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const reqEnc = channelEncodingOf(svc.type.request);
    // An empty JSON request stands for the request with every field at its default.
    const empty = reqEnc.messageEncoding === "json" && new TextDecoder().decode(request).trim() === "";
    const req = reqEnc.decode(empty ? new TextEncoder().encode("{}") : request);
    let client = this.#clients.get(svc.name);
    if (client === undefined) {
      client = node.createClient(svc.name, svc.type, { timeoutMs });
      this.#clients.set(svc.name, client);
    }
    const res = await client.call(req);
    return channelEncodingOf(svc.type.response).encode(res);
  }

  /** Closes the service clients. */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
