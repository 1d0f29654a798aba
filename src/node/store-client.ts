/**
 * The store's protocol and its typed client. The store (`src/store/service.ts`, on the hidden node
 * `_store` of the hub process) serves {@link STORE_PROTOCOL}; nodes reach it through a
 * {@link StoreClient}: persistent publishers append through it (batched per event-loop turn),
 * durable consumers fetch and acknowledge through it, and the CLI reads, describes and configures
 * durable topics through it.
 */
import { ClosedError, MyelinError, ServiceError } from "../errors.js";
import { myelin_msgs } from "../msgs/index.js";
import { delegateServiceCheck } from "./access-policy.js";
import type { Node } from "./node.js";
import type { CallOptions, ClientOptions } from "./service.js";
import {
  defineProtocol,
  protocolClient,
  type ProtocolClient,
  type ProtocolRequest,
  type ProtocolResponse,
} from "./service-protocol.js";

/** The store's services. */
export const STORE_PROTOCOL = defineProtocol({
  /** Appends encoded messages to a durable topic; replies once they are written. */
  append: { service: "/_store/append", type: myelin_msgs.StoreAppend },
  /** Pulls messages for a named durable consumer. */
  fetch: { service: "/_store/fetch", type: myelin_msgs.StoreFetch },
  /** Acknowledges or refuses messages of a durable consumer. */
  ack: { service: "/_store/ack", type: myelin_msgs.StoreAck },
  /** Describes a durable topic. */
  info: { service: "/_store/info", type: myelin_msgs.StoreInfo },
  /** Reads a range of a durable topic without a consumer. */
  read: { service: "/_store/read", type: myelin_msgs.StoreRead },
  /** Changes a durable topic's settings, or a pattern rule. */
  configure: { service: "/_store/configure", type: myelin_msgs.StoreConfigure },
});

// Persistent publishers and durable consumers call these whatever their identity; the store
// checks each request against the request's topic (publish for append, subscribe for fetch, ack).
for (const m of ["append", "fetch", "ack"] as const) delegateServiceCheck(STORE_PROTOCOL[m].service);

/** The store's protocol type. */
export type StoreProtocol = typeof STORE_PROTOCOL;

/** The request of store method `K`. */
export type StoreRequest<K extends keyof StoreProtocol> = ProtocolRequest<StoreProtocol, K>;

/** The reply of store method `K`. */
export type StoreResponse<K extends keyof StoreProtocol> = ProtocolResponse<StoreProtocol, K>;

/** How long an append waits for a store that answered before to come back (hub restart), in ms. */
export const STORE_RESTART_WAIT_MS = 10000;

/** How long one append request waits for the store's reply, in ms. */
export const STORE_APPEND_TIMEOUT_MS = 10000;

/** Appends of one topic made in one event-loop turn, sent as one request; they settle together. */
class AppendBatch {
  readonly payloads: Uint8Array[] = [];
  /** Bytes of the payloads. */
  bytes = 0;
  /** One per payload ("" for none), or null while no payload of the batch has an id. */
  ids: string[] | null = null;
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (e: unknown) => void;
  constructor(readonly type: string) {
    this.promise = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
  }
}

/**
 * The payloads back to back, each after its length as a u32 LE: the `packed` field of
 * myelin_msgs/StoreAppend.
 */
function packPayloads(payloads: readonly Uint8Array[], bytes: number): Uint8Array {
  const out = Buffer.allocUnsafe(bytes + 4 * payloads.length);
  let at = 0;
  for (const p of payloads) {
    out.writeUInt32LE(p.length, at);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/**
 * A typed client of the store, through one node. Each method's service client is created on its
 * first use, with the options given here (default timeout 5000 ms; the node's own store client
 * runs without circuit breakers, as its callers handle the store's errors themselves).
 */
export class StoreClient {
  readonly #calls: ProtocolClient<StoreProtocol>;
  readonly #batches = new Map<string, AppendBatch>();
  /** A store answered an append of this client (so its absence now means it is restarting). */
  #storeSeen = false;
  /** The store refused the `packed` field (an older store): payloads go as an array. */
  #packedRefused = false;
  #closed = false;

  /** @throws MyelinError ERR_INVALID_ARGUMENT for an option out of range */
  constructor(node: Node, opts: ClientOptions = {}) {
    this.#calls = protocolClient(node, STORE_PROTOCOL, opts);
  }

  /**
   * Appends one encoded message of a persistent topic. Appends made in one event-loop turn travel
   * in one request (their payloads packed in one buffer), share the store's group commit and
   * settle together: they return one promise. While the hub restarts, an append to a store that
   * answered before waits up to {@link STORE_RESTART_WAIT_MS} for it to come back. Do not modify
   * `payload` afterwards.
   * @throws ServiceError ERR_NO_SERVER when no store runs; ERR_UNAVAILABLE when the store did not
   *   come back in time (the message was not stored)
   * @throws ClosedError ERR_CLOSED after `close()`
   */
  append(topic: string, type: string, payload: Uint8Array, msgId?: string): Promise<void> {
    const closed = this.#refuseIfClosed(`append to ${topic}`);
    if (closed !== undefined) return closed;
    let b = this.#batches.get(topic);
    if (b === undefined) {
      b = new AppendBatch(type);
      this.#batches.set(topic, b);
      setImmediate(() => void this.#flush(topic));
    }
    if (msgId !== undefined && b.ids === null) b.ids = b.payloads.map(() => "");
    b.payloads.push(payload);
    b.bytes += payload.length;
    b.ids?.push(msgId ?? "");
    return b.promise;
  }

  /** Pulls messages for a durable consumer (see myelin_msgs/StoreFetch). */
  fetch(req: StoreRequest<"fetch">, opts?: CallOptions): Promise<StoreResponse<"fetch">> {
    return this.#refuseIfClosed("fetch") ?? this.#calls.fetch(req, opts);
  }

  /** Acknowledges or refuses messages of a durable consumer (see myelin_msgs/StoreAck). */
  ack(req: StoreRequest<"ack">, opts?: CallOptions): Promise<StoreResponse<"ack">> {
    return this.#refuseIfClosed("ack") ?? this.#calls.ack(req, opts);
  }

  /** Describes a durable topic (see myelin_msgs/StoreInfo). */
  info(req: StoreRequest<"info">, opts?: CallOptions): Promise<StoreResponse<"info">> {
    return this.#refuseIfClosed("info") ?? this.#calls.info(req, opts);
  }

  /** Reads a range of a durable topic (see myelin_msgs/StoreRead). */
  read(req: StoreRequest<"read">, opts?: CallOptions): Promise<StoreResponse<"read">> {
    return this.#refuseIfClosed("read") ?? this.#calls.read(req, opts);
  }

  /** Changes a durable topic's settings or a pattern rule (see myelin_msgs/StoreConfigure). */
  configure(req: StoreRequest<"configure">, opts?: CallOptions): Promise<StoreResponse<"configure">> {
    return this.#refuseIfClosed("configure") ?? this.#calls.configure(req, opts);
  }

  /** Resolves true once a store serving `method` is known, false after `timeoutMs`. */
  waitForServer(method: keyof StoreProtocol, timeoutMs: number): Promise<boolean> {
    return this.#calls.waitForServer(method, timeoutMs);
  }

  /**
   * Stops the client: appends and calls made from now on fail with ERR_CLOSED, and an append
   * waiting for a restarting store gives up. Appends already batched are still sent.
   */
  close(): void {
    this.#closed = true;
  }

  /** A rejection with ERR_CLOSED once the client is closed, else undefined. */
  #refuseIfClosed(what: string): Promise<never> | undefined {
    if (!this.#closed) return undefined;
    return Promise.reject(new ClosedError("ERR_CLOSED", `store client: ${what} after close()`));
  }

  async #flush(topic: string): Promise<void> {
    const b = this.#batches.get(topic);
    if (b === undefined) return;
    this.#batches.delete(topic);
    // The append client is used directly: a batch made before close() is still sent.
    const append = this.#calls.serviceOf("append");
    // While the hub (and its store) restarts, a store that answered before is gone for a moment:
    // the append has not reached any store, so it is safe to wait for it and send it then.
    const deadline = Date.now() + STORE_RESTART_WAIT_MS;
    for (;;) {
      const packed = !this.#packedRefused;
      try {
        const r = await append.call(
          packed
            ? {
                topic,
                type: b.type,
                payloads: [],
                msg_ids: b.ids ?? [],
                packed: packPayloads(b.payloads, b.bytes),
              }
            : { topic, type: b.type, payloads: b.payloads, msg_ids: b.ids ?? [] },
          { timeoutMs: STORE_APPEND_TIMEOUT_MS },
        );
        this.#storeSeen = true;
        if (packed && r.count + r.duplicates !== b.payloads.length) {
          // A store that does not know `packed` and took the empty array: nothing was stored.
          this.#packedRefused = true;
          continue;
        }
        b.resolve();
        return;
      } catch (err) {
        // A store older than `packed` refuses the field over the wire (nothing was stored): send the array.
        if (
          packed &&
          err instanceof MyelinError &&
          err.code === "ERR_VALIDATION" &&
          /'packed'/.test(err.message)
        ) {
          this.#packedRefused = true;
          continue;
        }
        const noStore = err instanceof MyelinError && err.code === "ERR_NO_SERVER";
        if (noStore && this.#storeSeen && !this.#closed && Date.now() < deadline) {
          if (await append.waitForService(deadline - Date.now()).catch(() => false)) continue;
        }
        let e = err;
        if (noStore) {
          e = this.#storeSeen
            ? new ServiceError(
                "ERR_UNAVAILABLE",
                `persistent topic ${topic}: the store is restarting and was not back within ${STORE_RESTART_WAIT_MS} ms; the message was not stored, publish it again`,
                { cause: err },
              )
            : new ServiceError(
                "ERR_NO_SERVER",
                `persistent topic ${topic}: no store runs; start the hub with a data directory (\`myelin hub --data-dir DIR\`)`,
                { cause: err },
              );
        }
        b.reject(e);
        return;
      }
    }
  }
}
