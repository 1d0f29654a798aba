/**
 * The Myelin side of the MQTT gateway and of the bridges: one port per gateway or bridge, on a
 * node its owner created. Inbound, an external message is mapped by a {@link TopicMap}, decoded
 * and validated, and published on its Myelin topic (one publisher per topic, created on first
 * use). Outbound, the port subscribes (reliable) to every Myelin topic that an `out`/`both` rule
 * maps, as publishers of it appear in the graph, and hands each message, encoded for the external
 * side, to `onOutbound`; awaiting that gives backpressure. A message the port published itself is
 * never sent back out, so a `both` rule does not loop.
 *
 * A refused message is counted and its reason published as `myelin_msgs/GatewayReject` on the
 * error topic; it is never published half-parsed.
 */
import { myelinError } from "../errors.js";
import { myelin_msgs } from "../msgs/index.js";
import type { GraphSnapshot, Node, Publisher, Subscription } from "../node/index.js";
import { canReach } from "../node/control-protocol.js";
import { GATEWAY_ERRORS_TOPIC } from "./gateway-protocol.js";
import { decodeExternal, encodeExternal, type ResolvedMapping, type TopicMap } from "./mapping.js";

/** A refused external message, as given to `onReject` and published on the error topic. */
export interface PortReject {
  reason: string;
  externalTopic: string;
  /** Index of the mapping rule, or -1 when none matched. */
  rule: number;
  /** Who sent it: an MQTT client id, a bridge name, … */
  source: string;
}

/** Options of {@link MyelinPort.start}. */
export interface MyelinPortOptions {
  /** A node the caller created (e.g. `_gateway` or `_bridge_<name>`); the caller closes it. */
  node: Node;
  map: TopicMap;
  /**
   * Called for each Myelin message on a topic matching an out rule; a returned promise delays the
   * credit of that message (e.g. until an MQTT PUBACK), which pushes back on Myelin publishers.
   * A throw or rejection is counted as an outbound failure and reported through `onWarning`.
   */
  onOutbound(externalTopic: string, payload: Uint8Array, rule: ResolvedMapping): void | Promise<void>;
  /** Where rejects are published (`myelin_msgs/GatewayReject`); default `/_gateway/errors`. */
  errorTopic?: string;
  /** Default `source` of rejects when `inbound` is not given one (default the node name). */
  source?: string;
  /** Called for each reject, after it is counted. */
  onReject?(reject: PortReject): void;
  /** Problems outside any one message: a topic with another type than its rule, a failed onOutbound. */
  onWarning?(err: Error): void;
  /** A reliable Myelin subscriber this many messages behind makes inbound() wait (default 1024). */
  maxPending?: number;
  /**
   * When the port starts publishing a topic, the first message waits for the subscribers the
   * graph lists for it to connect, so that it is not lost (nor acknowledged to its sender while
   * lost): for as long as they are listed, at most this long, in ms (default 30000).
   */
  firstSubscriberWaitMs?: number;
}

/** Counters of a port. */
export interface MyelinPortStats {
  /** External messages published into Myelin. */
  in: number;
  /** Myelin messages handed to onOutbound. */
  out: number;
  /** External messages refused. */
  rejected: number;
  /** The last reject's reason. */
  lastReject?: string;
  /** onOutbound calls that threw or rejected. */
  outFailed: number;
  /** Myelin topics the port is subscribed to now. */
  outTopics: string[];
  /** Myelin topics the port publishes now. */
  inTopics: string[];
}

type InboundResult = { ok: true; myelinTopic: string } | { ok: false; reason: string };

interface PubEntry {
  pub: Publisher<unknown> | undefined;
  pending: Promise<Publisher<unknown>> | undefined;
  /** When a failed creation may be retried (ms since the epoch). */
  retryAt: number;
  error: string;
}

/** How long a new topic's first message waits, at most, for its listed subscribers (ms). */
const FIRST_SUBSCRIBER_WAIT_MS = 30_000;
const RETRY_MS = 2000;
/** Decoded bytes from this size (bytes) are decoded into a loan of the publisher: shared memory's threshold. */
const LOAN_FROM_BYTES = 64 * 1024;

/** The Myelin side of a gateway or bridge. Start with {@link MyelinPort.start}. */
export class MyelinPort {
  readonly #opts: MyelinPortOptions;
  readonly #node: Node;
  readonly #map: TopicMap;
  readonly #source: string;
  readonly #pubs = new Map<string, PubEntry>();
  readonly #ownPubIds = new Set<string>();
  readonly #subs = new Map<string, Promise<Subscription<unknown> | undefined>>();
  readonly #warned = new Set<string>();
  #errPub: Promise<Publisher<unknown>> | undefined;
  #in = 0;
  #out = 0;
  #rejected = 0;
  #outFailed = 0;
  #lastReject: string | undefined;
  #closed = false;
  readonly #onGraph = (g: GraphSnapshot): void => this.#reconcile(g);

  private constructor(opts: MyelinPortOptions) {
    this.#opts = opts;
    this.#node = opts.node;
    this.#map = opts.map;
    this.#source = opts.source ?? opts.node.name;
  }

  /**
   * Starts a port: subscribes to the Myelin topics that out rules map, now and as they appear in
   * the graph (and drops them as they go).
   */
  static async start(opts: MyelinPortOptions): Promise<MyelinPort> {
    const port = new MyelinPort({ ...opts });
    // The error topic exists from the start, so that subscribers are connected before the first reject.
    port.#errPub = port.#node.createPublisher(port.errorTopic, myelin_msgs.GatewayReject, {
      qos: { reliability: "best-effort" },
    }) as Promise<Publisher<unknown>>;
    await port.#errPub.catch(() => (port.#errPub = undefined));
    port.#node.on("graph", port.#onGraph);
    const g = port.#node.graph();
    if (g !== undefined) port.#reconcile(g);
    await Promise.all([...port.#subs.values()]);
    return port;
  }

  /** The error topic rejects are published on. */
  get errorTopic(): string {
    return this.#opts.errorTopic ?? GATEWAY_ERRORS_TOPIC;
  }

  /**
   * An external message: maps it, decodes and validates it, publishes it into Myelin. Resolves
   * `{ ok: false, reason }` when refused (no rule, bad level, bad payload, type conflict), after
   * counting it and publishing the reason on the error topic. Resolves once the Myelin publish
   * resolved (backpressure from reliable subscribers). Never rejects.
   * @param source who sent it, for the reject report (default the port's source).
   */
  inbound(externalTopic: string, payload: Uint8Array, source?: string): Promise<InboundResult> {
    const m = this.#map.matchInbound(externalTopic);
    if (!m.ok) return Promise.resolve(this.reject(m.reason, externalTopic, m.rule?.index ?? -1, source));
    return this.inboundMatched(m.myelinTopic, m.rule, externalTopic, payload, source);
  }

  /**
   * Like {@link inbound} for a topic already mapped (e.g. by the gateway's own lookup), to avoid
   * matching twice.
   */
  inboundMatched(
    myelinTopic: string,
    rule: ResolvedMapping,
    externalTopic: string,
    payload: Uint8Array,
    source?: string,
  ): Promise<InboundResult> {
    const d = this.decode(myelinTopic, rule, payload);
    if (!d.ok) {
      return Promise.resolve(
        this.reject(`mapping[${rule.index}] (${rule.type}): ${d.reason}`, externalTopic, rule.index, source),
      );
    }
    return this.publishDecoded(myelinTopic, rule, externalTopic, d.message, source);
  }

  /**
   * Decodes an external payload for `rule` (see `decodeExternal`; never throws). The bytes of a
   * `{"data":"<base64>"}` payload decoding to 64 KiB or more go straight into a buffer lent by the
   * publisher of `myelinTopic` when it exists (`Publisher.loan`: shared memory, which subscribers
   * on this host read in place), so they are not copied again on their way out; publishing the
   * message ({@link publishDecoded}) ends the loan, and a loan the result does not hold is given
   * back here.
   */
  decode(
    myelinTopic: string,
    rule: ResolvedMapping,
    payload: Uint8Array,
  ): { ok: true; message: unknown } | { ok: false; reason: string } {
    const pub = payload.length < LOAN_FROM_BYTES ? undefined : this.#pubs.get(myelinTopic)?.pub;
    if (pub === undefined || rule.format !== "json") return decodeExternal(rule, payload);
    let lent: Uint8Array | undefined;
    const d = decodeExternal(rule, payload, (size) => {
      if (size < LOAN_FROM_BYTES) return new Uint8Array(size);
      try {
        lent = pub.loan(size);
      } catch {
        return new Uint8Array(size); // over the publisher's maxMessageBytes: its publish says so
      }
      return lent;
    });
    if (lent !== undefined && (!d.ok || (d.message as { data?: unknown }).data !== lent))
      pub.returnLoan(lent);
    return d;
  }

  /** Publishes an already decoded and validated message of `rule` on `myelinTopic`. Never rejects. */
  publishDecoded(
    myelinTopic: string,
    rule: ResolvedMapping,
    externalTopic: string,
    message: unknown,
    source?: string,
  ): Promise<InboundResult> {
    if (this.#closed) return Promise.resolve({ ok: false, reason: "the port is closed" });
    const e = this.#pubs.get(myelinTopic);
    const pub = e?.pub;
    if (pub !== undefined) {
      this.#in++;
      const p = pub.publish(message);
      // A publish refused before sending (backpressure, too large) leaves decode()'s loan out: it
      // goes back now, before anything else can take the slot (a no-op when the publish ended it).
      const data = (message as { data?: unknown } | null)?.data;
      if (data instanceof Uint8Array) pub.returnLoan(data);
      return p.then(
        () => ({ ok: true, myelinTopic }),
        (err: unknown) => this.#publishFailed(err, myelinTopic, rule, externalTopic, source),
      );
    }
    return this.#publisher(myelinTopic, rule).then(
      (created) => {
        this.#in++;
        return created.publish(message).then(
          () => ({ ok: true as const, myelinTopic }),
          (err: unknown) => this.#publishFailed(err, myelinTopic, rule, externalTopic, source),
        );
      },
      (err: unknown) =>
        this.reject(
          `mapping[${rule.index}]: cannot publish on ${myelinTopic}: ${(err as Error).message}`,
          externalTopic,
          rule.index,
          source,
        ),
    );
  }

  #publishFailed(
    err: unknown,
    myelinTopic: string,
    rule: ResolvedMapping,
    externalTopic: string,
    source: string | undefined,
  ): InboundResult {
    this.#in--;
    return this.reject(
      `mapping[${rule.index}]: publishing on ${myelinTopic} failed: ${(err as Error).message}`,
      externalTopic,
      rule.index,
      source,
    );
  }

  /**
   * Subscriptions to `topic` of type `type` the graph lists, of nodes other than the port's that
   * can reach it (one of another type would be refused, one on a host that cannot reach this node
   * never connects).
   */
  #listedSubscribers(topic: string, type: string): number {
    const nodes = this.#node.graph()?.nodes ?? [];
    const self = nodes.find((n) => n.id === this.#node.id);
    let want = 0;
    for (const n of nodes) {
      if (n.id === this.#node.id || (self !== undefined && !canReach(self, n.host))) continue;
      for (const s of n.subs) if (s.topic === topic && s.type === type) want++;
    }
    return want;
  }

  #publisher(topic: string, rule: ResolvedMapping): Promise<Publisher<unknown>> {
    let e = this.#pubs.get(topic);
    if (e?.pending !== undefined) return e.pending;
    if (e !== undefined && e.pub === undefined && Date.now() < e.retryAt) {
      return Promise.reject(new Error(e.error));
    }
    const entry: PubEntry = e ?? { pub: undefined, pending: undefined, retryAt: 0, error: "" };
    e = entry;
    this.#pubs.set(topic, entry);
    entry.pending = this.#node
      .createPublisher(topic, rule.messageType, {
        qos: { reliability: "reliable", durability: "volatile" },
        validate: false, // decodeExternal validated it
        maxPending: this.#opts.maxPending ?? 1024,
      })
      .then(async (pub) => {
        // The first message on a new topic must not be lost: wait until the subscribers the graph
        // lists have connected to this new publisher (on a loaded host that can take seconds),
        // looking again while they are listed, up to a bound.
        const deadline = Date.now() + (this.#opts.firstSubscriberWaitMs ?? FIRST_SUBSCRIBER_WAIT_MS);
        for (;;) {
          const want = this.#listedSubscribers(topic, pub.type.name);
          const left = deadline - Date.now();
          if (want === 0 || pub.subscriberCount >= want || left <= 0) break;
          await pub.waitForSubscribers(want, Math.min(left, 500)).catch(() => undefined);
        }
        return pub;
      })
      .then(
        (pub) => {
          entry.pub = pub;
          entry.pending = undefined;
          this.#ownPubIds.add(pub.id);
          if (this.#closed) pub.close();
          return pub;
        },
        (err: unknown) => {
          entry.pending = undefined;
          entry.error = (err as Error).message;
          entry.retryAt = Date.now() + RETRY_MS;
          throw err;
        },
      );
    return entry.pending;
  }

  /**
   * Counts a refused external message and publishes the reason on the error topic; returns the
   * refusal. Used by owners for refusals of their own (e.g. the gateway's size limit).
   */
  reject(
    reason: string,
    externalTopic: string,
    rule: number,
    source?: string,
  ): { ok: false; reason: string } {
    this.#rejected++;
    this.#lastReject = reason;
    const r: PortReject = { reason, externalTopic, rule, source: source ?? this.#source };
    try {
      this.#opts.onReject?.(r);
    } catch {
      // a reporting callback never breaks the message path
    }
    this.#publishReject(r);
    return { ok: false, reason };
  }

  #publishReject(r: PortReject): void {
    if (this.#closed) return;
    this.#errPub ??= this.#node.createPublisher(this.errorTopic, myelin_msgs.GatewayReject, {
      qos: { reliability: "best-effort" },
    }) as Promise<Publisher<unknown>>;
    const now = Date.now();
    const msg = {
      reason: r.reason,
      external_topic: r.externalTopic,
      rule: r.rule,
      source: r.source,
      stamp: { sec: Math.floor(now / 1000), nanosec: (now % 1000) * 1e6 },
    };
    this.#errPub.then(
      (p) => p.publish(msg).catch(() => undefined),
      (err: unknown) => {
        this.#errPub = undefined;
        this.#warn(`cannot publish rejects on ${this.errorTopic}: ${(err as Error).message}`);
      },
    );
  }

  /** Counters. */
  stats(): MyelinPortStats {
    const s: MyelinPortStats = {
      in: this.#in,
      out: this.#out,
      rejected: this.#rejected,
      outFailed: this.#outFailed,
      outTopics: [...this.#subs.keys()].sort(),
      inTopics: [...this.#pubs]
        .filter(([, e]) => e.pub !== undefined)
        .map(([t]) => t)
        .sort(),
    };
    if (this.#lastReject !== undefined) s.lastReject = this.#lastReject;
    return s;
  }

  /** Stops: closes the port's subscriptions and publishers (not the node). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#node.off("graph", this.#onGraph);
    for (const p of this.#subs.values()) (await p.catch(() => undefined))?.close();
    this.#subs.clear();
    for (const e of this.#pubs.values()) e.pub?.close();
    this.#pubs.clear();
    (await this.#errPub?.catch(() => undefined))?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #warn(
    message: string,
    code: "ERR_TYPE_MISMATCH" | "ERR_ENCODE" | "ERR_SERVICE_FAILED" = "ERR_SERVICE_FAILED",
  ): void {
    const err = myelinError(code, message);
    if (this.#opts.onWarning !== undefined) this.#opts.onWarning(err);
  }

  /** Subscribes to mapped topics other nodes publish; with a settled graph, drops the ones gone. */
  #reconcile(g: GraphSnapshot): void {
    if (this.#closed) return;
    const want = new Map<string, ResolvedMapping>();
    for (const n of g.nodes) {
      if (n.id === this.#node.id) continue;
      for (const p of n.pubs) {
        if (want.has(p.topic)) continue;
        const o = this.#map.outbound(p.topic);
        if (o === undefined) continue;
        if (o.rule.type !== p.type) {
          const key = `${p.topic}\u0000${p.type}`;
          if (!this.#warned.has(key)) {
            this.#warned.add(key);
            this.#warn(
              `topic ${p.topic} has type ${p.type} (node ${n.name}) but mapping[${o.rule.index}] says ${o.rule.type}; it is not forwarded — fix the rule's type`,
              "ERR_TYPE_MISMATCH",
            );
          }
          continue;
        }
        want.set(p.topic, o.rule);
      }
    }
    for (const [topic, rule] of want) {
      if (!this.#subs.has(topic)) this.#subs.set(topic, this.#subscribe(topic, rule));
    }
    if (!g.settled) return;
    for (const [topic, p] of this.#subs) {
      if (want.has(topic)) continue;
      this.#subs.delete(topic);
      void p.then((s) => s?.close());
    }
  }

  async #subscribe(topic: string, rule: ResolvedMapping): Promise<Subscription<unknown> | undefined> {
    const ext = this.#map.outbound(topic);
    if (ext === undefined) return undefined;
    const externalTopic = ext.externalTopic;
    try {
      const sub = await this.#node.createSubscription(
        topic,
        rule.messageType,
        (msg, info) => {
          if (this.#ownPubIds.has(info.publisher)) return undefined; // published by this port: no loop
          let payload: Uint8Array;
          try {
            payload = encodeExternal(rule, msg);
          } catch (err) {
            this.#outFailed++;
            this.#warn(
              `cannot encode a message of ${topic} for ${externalTopic}: ${(err as Error).message}`,
              "ERR_ENCODE",
            );
            return undefined;
          }
          this.#out++;
          let r: void | Promise<void>;
          try {
            r = this.#opts.onOutbound(externalTopic, payload, rule);
          } catch (err) {
            this.#outFailed++;
            this.#warn(`forwarding ${topic} to ${externalTopic} failed: ${(err as Error).message}`);
            return undefined;
          }
          if (r === undefined) return undefined;
          return r.catch((err: unknown) => {
            this.#outFailed++;
            this.#warn(`forwarding ${topic} to ${externalTopic} failed: ${(err as Error).message}`);
          });
        },
        { qos: { reliability: "reliable", durability: "volatile" } },
      );
      if (this.#closed || this.#subs.get(topic) === undefined) {
        sub.close();
        return undefined;
      }
      return sub;
    } catch (err) {
      this.#subs.delete(topic);
      this.#warn(`cannot subscribe to ${topic} for ${externalTopic}: ${(err as Error).message}`);
      return undefined;
    }
  }
}
