/**
 * File-backed persistence for the embedded MQTT broker (aedes): the in-memory persistence of
 * aedes-persistence, with every change also appended to a journal (JSON lines) in the data
 * directory. On start the journal is replayed, then compacted into a snapshot of the state; it is
 * compacted again whenever it grows past `compactBytes`. What is kept: retained messages,
 * subscriptions of persistent sessions (clean session false), their queued QoS 1/2 messages,
 * inbound QoS 2 messages awaiting PUBREL, and wills.
 *
 * A change is written (to the operating system) before the operation resolves, so it survives
 * the hub process being killed; `fsync: true` also survives power loss, at a cost per write.
 * A torn last line (a crash mid-write) is detected and ignored.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { DirLock, type DirLockOptions } from "../store/dir-lock.js";

const require = createRequire(import.meta.url);

/** The packet shape the persistence stores (aedes-packet). */
export interface StoredPacket {
  cmd: string;
  brokerId?: string;
  brokerCounter?: number;
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
  messageId?: number;
  clientId?: string;
  [k: string]: unknown;
}

interface ClientRef {
  id: string;
  /** The next packet id an aedes client gives (aedes' own client object; absent in replays). */
  _nextId?: number;
}

interface SubRecord {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
}

/** The async in-memory persistence of aedes-persistence (the methods this file uses). */
interface MemoryPersistence {
  setup(broker: unknown): Promise<void>;
  storeRetained(p: StoredPacket): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  addSubscriptions(c: ClientRef, subs: SubRecord[]): Promise<void>;
  removeSubscriptions(c: ClientRef, topics: string[]): Promise<void>;
  subscriptionsByClient(c: ClientRef): Promise<SubRecord[]>;
  cleanSubscriptions(c: ClientRef): Promise<void>;
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
  subscriptionsByTopic(topic: string): Promise<{ clientId: string; topic: string; qos: number }[]>;
  outgoingEnqueue(sub: { clientId: string }, p: StoredPacket): Promise<void>;
  outgoingEnqueueCombi(subs: { clientId: string }[], p: StoredPacket): Promise<void>;
  outgoingUpdate(c: ClientRef, p: StoredPacket): Promise<void>;
  outgoingClearMessageId(c: ClientRef, p: { messageId?: number }): Promise<StoredPacket | undefined>;
  outgoingStream(c: ClientRef): Readable;
  incomingStorePacket(c: ClientRef, p: StoredPacket): Promise<void>;
  incomingGetPacket(c: ClientRef, p: { messageId?: number }): Promise<StoredPacket>;
  incomingDelPacket(c: ClientRef, p: { messageId?: number }): Promise<void>;
  cleanIncoming(c: ClientRef): Promise<void>;
  putWill(c: ClientRef, p: StoredPacket): Promise<void>;
  getWill(c: ClientRef): Promise<StoredPacket | undefined>;
  delWill(c: ClientRef): Promise<StoredPacket | undefined>;
  streamWill(brokers?: Record<string, number>): Readable;
  destroy(): Promise<void>;
}

const AsyncPersistence = require("aedes-persistence/asyncPersistence.js") as new (
  opts?: object,
) => MemoryPersistence;

/** Options of {@link FilePersistence}. */
export interface FilePersistenceOptions {
  /** Directory of the journal (created if missing); undefined keeps everything in memory only. */
  dir?: string;
  /** fsync after each write (survives power loss; slower). Default false: survives a killed process. */
  fsync?: boolean;
  /** Compact the journal when it grows past this many bytes (default 32 MiB). */
  compactBytes?: number;
  /** Problems found while loading (a torn or bad line). */
  log?: (line: string) => void;
  /** False for a message that must not be queued for an offline session (its ACL denies the topic). */
  mayQueue?: (clientId: string, topic: string) => boolean;
  /** Payload bytes of inbound QoS 2 messages one client may have awaiting PUBREL (default unlimited). */
  maxIncomingBytes?: number;
}

type Op =
  | { o: "ret"; p: unknown }
  | { o: "sub"; c: string; s: SubRecord[] }
  | { o: "unsub"; c: string; t: string[] }
  | { o: "clean"; c: string }
  | { o: "enq"; c: string[]; p: unknown }
  | { o: "upd"; c: string; p: unknown }
  | { o: "clr"; c: string; m: number }
  | { o: "in"; c: string; p: unknown }
  | { o: "indel"; c: string; m: number }
  | { o: "inclean"; c: string }
  | { o: "will"; c: string; p: unknown }
  | { o: "delwill"; c: string };

function packetToJson(p: StoredPacket): unknown {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined) continue;
    out[k] = Buffer.isBuffer(v) || v instanceof Uint8Array ? { $b: Buffer.from(v).toString("base64") } : v;
  }
  return out;
}

function packetFromJson(v: unknown): StoredPacket {
  const o = { ...(v as Record<string, unknown>) };
  for (const [k, x] of Object.entries(o)) {
    if (typeof x === "object" && x !== null && "$b" in x)
      o[k] = Buffer.from((x as { $b: string }).$b, "base64");
  }
  if (!Buffer.isBuffer(o["payload"])) o["payload"] = Buffer.alloc(0);
  return o as StoredPacket;
}

/** The broker id of stored PUBREL entries, whose counter is their message id. */
const PUBREL_BROKER_ID = "pubrel";

/** The highest MQTT packet identifier; the next after it is 1. */
const MAX_PACKET_ID = 65535;

async function drain<T>(s: Readable): Promise<T[]> {
  const out: T[] = [];
  for await (const x of s) out.push(x as T);
  return out;
}

/** aedes persistence kept in memory and journaled to a file. Pass as `persistence` to aedes. */
export class FilePersistence extends AsyncPersistence {
  readonly #opts: FilePersistenceOptions;
  readonly #path: string | undefined;
  #fd: number | undefined;
  #bytes = 0;
  #pending: string[] = [];
  #waiters: (() => void)[] = [];
  #flushScheduled = false;
  #gate: Promise<void> | undefined;
  #replaying = false;
  #lock: DirLock | undefined;
  /** Clients with any state, for snapshots. */
  readonly #clients = new Set<string>();
  readonly #incomingIds = new Map<string, Set<number>>();
  /** Payload bytes of each client's inbound QoS 2 messages awaiting PUBREL, by message id. */
  readonly #incomingBytes = new Map<string, { total: number; byId: Map<number, number> }>();
  #retainedCount = 0;
  readonly #retainedTopics = new Set<string>();
  /**
   * For each persistent session, the packet ids its queued messages were sent with and not yet
   * acknowledged, each to the message (`brokerId:brokerCounter`) that holds it.
   */
  readonly #idsInUse = new Map<string, Map<number, string>>();

  constructor(opts: FilePersistenceOptions = {}) {
    super({});
    this.#opts = opts;
    this.#path = opts.dir === undefined ? undefined : join(opts.dir, "mqtt-sessions.jsonl");
  }

  /** Retained messages held now. */
  get retainedCount(): number {
    return this.#retainedCount;
  }

  override async setup(broker: unknown): Promise<void> {
    await super.setup(broker);
    if (this.#path === undefined) return;
    mkdirSync(this.#opts.dir!, { recursive: true });
    const lockOpts: DirLockOptions = { what: "the MQTT gateway's sessions of a myelin hub" };
    if (this.#opts.log !== undefined) lockOpts.log = this.#opts.log;
    this.#lock = DirLock.acquire(this.#opts.dir!, lockOpts);
    if (existsSync(this.#path)) await this.#replay(readFileSync(this.#path));
    await this.#rewrite();
  }

  async #replay(data: Buffer): Promise<void> {
    this.#replaying = true;
    try {
      const text = data.toString("utf8");
      const lines = text.split("\n");
      // The last element is "" after a complete file; anything else is a torn tail.
      const tail = lines.pop();
      if (tail !== undefined && tail !== "")
        this.#opts.log?.(`mqtt sessions: ignored a torn last line (${tail.length} bytes)`);
      let n = 0;
      for (const line of lines) {
        n++;
        if (line === "") continue;
        let op: Op;
        try {
          op = JSON.parse(line) as Op;
        } catch {
          this.#opts.log?.(`mqtt sessions: line ${n} of the journal is not JSON; ignored`);
          continue;
        }
        await this.#apply(op).catch(() => undefined);
      }
    } finally {
      this.#replaying = false;
    }
  }

  async #apply(op: Op): Promise<void> {
    switch (op.o) {
      case "ret":
        return this.storeRetained(packetFromJson(op.p));
      case "sub":
        return this.addSubscriptions({ id: op.c }, op.s);
      case "unsub":
        return this.removeSubscriptions({ id: op.c }, op.t);
      case "clean":
        return this.cleanSubscriptions({ id: op.c });
      case "enq":
        return this.outgoingEnqueueCombi(
          op.c.map((clientId) => ({ clientId })),
          packetFromJson(op.p),
        );
      case "upd":
        return this.outgoingUpdate({ id: op.c }, packetFromJson(op.p));
      case "clr":
        await this.outgoingClearMessageId({ id: op.c }, { messageId: op.m });
        return;
      case "in":
        return this.incomingStorePacket({ id: op.c }, packetFromJson(op.p));
      case "indel":
        return this.incomingDelPacket({ id: op.c }, { messageId: op.m });
      case "inclean":
        return this.cleanIncoming({ id: op.c });
      case "will": {
        const p = packetFromJson(op.p);
        const brokerId = p.brokerId;
        await this.putWill({ id: op.c }, p);
        // Keep the will's original broker: a will of a broker that is gone gets published.
        const stored = await super.getWill({ id: op.c });
        if (stored !== undefined && brokerId !== undefined) stored.brokerId = brokerId;
        return;
      }
      case "delwill":
        await this.delWill({ id: op.c });
        return;
      default:
        return;
    }
  }

  /** Writes a snapshot of the whole state as a new journal, atomically. */
  async #rewrite(): Promise<void> {
    if (this.#path === undefined) return;
    const lines: string[] = [];
    const add = (op: Op): void => {
      lines.push(JSON.stringify(op));
    };
    for (const p of await drain<StoredPacket>(super.createRetainedStream("#")))
      add({ o: "ret", p: packetToJson(p) });
    for (const c of [...this.#clients]) {
      const ref = { id: c };
      const subs = await super.subscriptionsByClient(ref);
      if (subs.length > 0) add({ o: "sub", c, s: subs });
      for (const p of await drain<StoredPacket>(super.outgoingStream(ref))) {
        add({ o: "enq", c: [c], p: packetToJson(p) });
        // Queueing drops the message id; a message in flight (or its PUBREL) keeps its own.
        if (p.messageId !== undefined) {
          add({
            o: "upd",
            c,
            p: { cmd: p.cmd, brokerId: p.brokerId, brokerCounter: p.brokerCounter, messageId: p.messageId },
          });
        }
      }
      for (const m of this.#incomingIds.get(c) ?? []) {
        const p = await super.incomingGetPacket(ref, { messageId: m }).catch(() => undefined);
        if (p !== undefined) add({ o: "in", c, p: packetToJson({ ...p, messageId: m }) });
      }
    }
    for (const w of await drain<StoredPacket>(super.streamWill({}))) {
      if (w.clientId !== undefined) add({ o: "will", c: w.clientId, p: packetToJson(w) });
    }
    const tmp = `${this.#path}.tmp`;
    const body = lines.length === 0 ? "" : lines.join("\n") + "\n";
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (this.#fd !== undefined) closeSync(this.#fd);
    renameSync(tmp, this.#path);
    this.#fd = openSync(this.#path, "a");
    this.#bytes = Buffer.byteLength(body);
  }

  /** Records an operation already applied in memory; resolves once it is written. */
  #journal(op: Op): Promise<void> {
    if (this.#path === undefined || this.#replaying) return Promise.resolve();
    this.#pending.push(JSON.stringify(op));
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0 || this.#fd === undefined) {
      for (const w of this.#waiters.splice(0)) w();
      return;
    }
    const body = this.#pending.join("\n") + "\n";
    this.#pending = [];
    const waiters = this.#waiters.splice(0);
    try {
      writeSync(this.#fd, body);
      if (this.#opts.fsync === true) fsyncSync(this.#fd);
      this.#bytes += Buffer.byteLength(body);
    } catch (err) {
      this.#opts.log?.(`mqtt sessions: cannot write the journal: ${(err as Error).message}`);
    }
    for (const w of waiters) w();
    if (this.#bytes > (this.#opts.compactBytes ?? 32 * 1024 * 1024) && this.#gate === undefined) {
      void this.#compact();
    }
  }

  /** Compacts the journal while holding changes back (aedes awaits them). */
  async #compact(): Promise<void> {
    let release!: () => void;
    this.#gate = new Promise((r) => (release = r));
    try {
      this.#flush();
      await this.#rewrite();
    } catch (err) {
      this.#opts.log?.(`mqtt sessions: compaction failed: ${(err as Error).message}`);
    } finally {
      this.#gate = undefined;
      release();
    }
  }

  async #wait(): Promise<void> {
    while (this.#gate !== undefined) await this.#gate;
  }

  override async storeRetained(pkt: StoredPacket): Promise<void> {
    await this.#wait();
    const r = super.storeRetained(pkt);
    if (pkt.payload.length === 0) {
      if (this.#retainedTopics.delete(pkt.topic)) this.#retainedCount--;
    } else if (!this.#retainedTopics.has(pkt.topic)) {
      this.#retainedTopics.add(pkt.topic);
      this.#retainedCount++;
    }
    const j = this.#journal({ o: "ret", p: packetToJson(pkt) });
    await r;
    await j;
  }

  override async addSubscriptions(client: ClientRef, subs: SubRecord[]): Promise<void> {
    await this.#wait();
    this.#clients.add(client.id);
    const r = super.addSubscriptions(client, subs);
    const j = this.#journal({
      o: "sub",
      c: client.id,
      s: subs.map((s) => {
        const rec: SubRecord = { topic: s.topic, qos: s.qos };
        if (s.rh !== undefined) rec.rh = s.rh;
        if (s.rap !== undefined) rec.rap = s.rap;
        if (s.nl !== undefined) rec.nl = s.nl;
        return rec;
      }),
    });
    await r;
    await j;
  }

  override async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    await this.#wait();
    const r = super.removeSubscriptions(client, topics);
    const j = this.#journal({ o: "unsub", c: client.id, t: topics });
    await r;
    await j;
  }

  override async cleanSubscriptions(client: ClientRef): Promise<void> {
    await this.#wait();
    const r = super.cleanSubscriptions(client);
    const j = this.#journal({ o: "clean", c: client.id });
    await r;
    await j;
  }

  override async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    return this.outgoingEnqueueCombi([sub], packet);
  }

  /** Packets (by brokerId:brokerCounter) already queued for offline sessions ahead of aedes. */
  readonly #queuedEarly = new Set<string>();

  /**
   * Queues a QoS 1 packet for the persistent sessions subscribed to its topic now, before the
   * broker acknowledges it: aedes sends PUBACK first and queues for offline sessions after, so a
   * crash in between would lose the message for them. aedes' own queueing of the same packet
   * (same brokerId and brokerCounter) is then skipped.
   */
  async enqueueBeforeAck(packet: StoredPacket & { brokerId: string; brokerCounter: number }): Promise<void> {
    const subs = await this.subscriptionsByTopic(packet.topic);
    await this.outgoingEnqueueCombi(subs, packet);
    this.#queuedEarly.add(`${packet.brokerId}:${packet.brokerCounter}`);
  }

  override async outgoingEnqueueCombi(
    subs: { clientId: string; qos?: number }[],
    packet: StoredPacket,
  ): Promise<void> {
    const early = packet as { brokerId?: string; brokerCounter?: number };
    if (this.#queuedEarly.delete(`${early.brokerId}:${early.brokerCounter}`)) return;
    if (subs.length === 0) return;
    await this.#wait();
    // Queued once per client (overlapping subscriptions match a topic more than once), at the
    // highest QoS of its matching subscriptions but not above the message's (MQTT-3.8.4-6): aedes
    // delivers a queued message as it was stored.
    const qosOf = new Map<string, number>();
    const mayQueue = this.#replaying ? undefined : this.#opts.mayQueue;
    for (const s of subs) {
      if (mayQueue !== undefined && !mayQueue(s.clientId, packet.topic)) continue;
      const q = Math.min(packet.qos, s.qos ?? packet.qos);
      qosOf.set(s.clientId, Math.max(q, qosOf.get(s.clientId) ?? 0));
    }
    const byQos = new Map<number, { clientId: string }[]>();
    for (const [clientId, q] of qosOf) {
      this.#clients.add(clientId);
      let list = byQos.get(q);
      if (list === undefined) byQos.set(q, (list = []));
      list.push({ clientId });
    }
    const work: Promise<void>[] = [];
    for (const [q, list] of byQos) {
      const p = q === packet.qos ? packet : { ...packet, qos: q };
      work.push(super.outgoingEnqueueCombi(list, p));
      work.push(this.#journal({ o: "enq", c: list.map((s) => s.clientId), p: packetToJson(p) }));
    }
    await Promise.all(work);
  }

  override async outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void> {
    await this.#wait();
    // aedes-persistence finds the entry to update by broker id and counter, or else replaces the
    // entry with the same message id. A PUBREL has neither id nor counter, so it matched the first
    // PUBREL already stored and took over its message id: that message never completed. A PUBREL
    // is stored as a copy keyed by its message id (aedes' own object is not kept to be changed).
    const p: StoredPacket =
      packet.cmd === "pubrel" && packet.messageId !== undefined
        ? {
            cmd: "pubrel",
            messageId: packet.messageId,
            brokerId: PUBREL_BROKER_ID,
            brokerCounter: packet.messageId,
            topic: "",
            payload: Buffer.alloc(0),
            qos: 1,
            retain: false,
            dup: false,
          }
        : packet;
    if (p.messageId !== undefined) {
      if (p.cmd === "publish" && !this.#replaying) this.#takeUnusedId(client, p);
      this.#idInUse(client.id).set(p.messageId, `${p.brokerId}:${p.brokerCounter}`);
    }
    const r = super.outgoingUpdate(client, p);
    const j = r.then(
      () =>
        this.#journal({
          o: "upd",
          c: client.id,
          p: { cmd: p.cmd, brokerId: p.brokerId, brokerCounter: p.brokerCounter, messageId: p.messageId },
        }),
      () => undefined,
    );
    await r;
    await j;
  }

  #idInUse(clientId: string): Map<number, string> {
    let ids = this.#idsInUse.get(clientId);
    if (ids === undefined) this.#idsInUse.set(clientId, (ids = new Map()));
    return ids;
  }

  /**
   * Gives `packet` (about to be sent) a packet id no other unacknowledged message of the session
   * holds (MQTT-2.3.1-2). A session resumed on a new connection keeps the ids its messages in
   * flight were sent with, while aedes numbers the others from the new connection's random start:
   * two messages sent with one id made the client take the second QoS 2 message for the first
   * (MQTT.js keeps one per id: the first was never delivered), and one acknowledgement cleared
   * the other message. The id is changed on aedes' packet before aedes writes it.
   */
  #takeUnusedId(client: ClientRef, packet: StoredPacket): void {
    const ids = this.#idsInUse.get(client.id);
    const own = `${packet.brokerId}:${packet.brokerCounter}`;
    let id = packet.messageId!;
    for (let n = 0; n < MAX_PACKET_ID; n++) {
      const holder = ids?.get(id);
      if (holder === undefined || holder === own) break;
      id = id >= MAX_PACKET_ID ? 1 : id + 1;
    }
    if (id === packet.messageId) return;
    packet.messageId = id;
    if (typeof client._nextId === "number") client._nextId = id >= MAX_PACKET_ID ? 1 : id + 1;
  }

  /** Runs for every PUBACK and PUBCOMP: without compaction under way, no promise of its own. */
  override outgoingClearMessageId(
    client: ClientRef,
    packet: { messageId?: number },
  ): Promise<StoredPacket | undefined> {
    if (this.#gate !== undefined) return this.#wait().then(() => this.#clearMessageId(client, packet));
    return this.#clearMessageId(client, packet);
  }

  #clearMessageId(client: ClientRef, packet: { messageId?: number }): Promise<StoredPacket | undefined> {
    if (packet.messageId !== undefined) this.#idsInUse.get(client.id)?.delete(packet.messageId);
    const r = super.outgoingClearMessageId(client, packet);
    // A client never seen with a persistent session (a clean session: aedes stores neither its
    // subscriptions nor its in-flight messages) has nothing in the journal to clear; journaling
    // every PUBACK of such clients cost a write per message and subscriber.
    if (packet.messageId === undefined || !this.#clients.has(client.id)) return r;
    const j = this.#journal({ o: "clr", c: client.id, m: packet.messageId });
    return r.then((out) => j.then(() => out));
  }

  override async incomingStorePacket(client: ClientRef, packet: StoredPacket): Promise<void> {
    await this.#wait();
    if (packet.messageId !== undefined && !this.#replaying) {
      let b = this.#incomingBytes.get(client.id);
      if (b === undefined) this.#incomingBytes.set(client.id, (b = { total: 0, byId: new Map() }));
      const size = packet.payload.length;
      const max = this.#opts.maxIncomingBytes ?? Infinity;
      const before = b.byId.get(packet.messageId) ?? 0;
      if (b.total - before + size > max) {
        // Refused: aedes disconnects the client, so one client cannot hold the hub's memory.
        throw new Error(
          `over maxInflightBytes: ${b.total} bytes of QoS 2 messages already await PUBREL (limit ${max})`,
        );
      }
      b.total += size - before;
      b.byId.set(packet.messageId, size);
    }
    this.#clients.add(client.id);
    const r = super.incomingStorePacket(client, packet);
    if (packet.messageId !== undefined) {
      let ids = this.#incomingIds.get(client.id);
      if (ids === undefined) this.#incomingIds.set(client.id, (ids = new Set()));
      ids.add(packet.messageId);
    }
    const j = this.#journal({ o: "in", c: client.id, p: packetToJson(packet) });
    await r;
    await j;
  }

  override async incomingDelPacket(client: ClientRef, packet: { messageId?: number }): Promise<void> {
    await this.#wait();
    const r = super.incomingDelPacket(client, packet);
    if (packet.messageId !== undefined) {
      this.#incomingIds.get(client.id)?.delete(packet.messageId);
      const b = this.#incomingBytes.get(client.id);
      const size = b?.byId.get(packet.messageId);
      if (b !== undefined && size !== undefined) {
        b.total -= size;
        b.byId.delete(packet.messageId);
      }
    }
    const j =
      packet.messageId === undefined
        ? undefined
        : this.#journal({ o: "indel", c: client.id, m: packet.messageId });
    await j;
    await r;
  }

  override async cleanIncoming(client: ClientRef): Promise<void> {
    await this.#wait();
    const r = super.cleanIncoming(client);
    this.#incomingIds.delete(client.id);
    this.#incomingBytes.delete(client.id);
    const j = this.#journal({ o: "inclean", c: client.id });
    await r;
    await j;
  }

  override async putWill(client: ClientRef, packet: StoredPacket): Promise<void> {
    await this.#wait();
    this.#clients.add(client.id);
    const r = super.putWill(client, packet);
    await r;
    await this.#journal({ o: "will", c: client.id, p: packetToJson(packet) });
  }

  override async delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    await this.#wait();
    const r = super.delWill(client);
    const out = await r;
    if (out !== undefined) await this.#journal({ o: "delwill", c: client.id });
    return out;
  }

  override async destroy(): Promise<void> {
    await this.#wait();
    this.#flush();
    if (this.#path !== undefined && this.#fd !== undefined) {
      try {
        await this.#rewrite();
      } catch (err) {
        this.#opts.log?.(`mqtt sessions: final compaction failed: ${(err as Error).message}`);
      }
      closeSync(this.#fd);
      this.#fd = undefined;
    }
    this.#lock?.release();
    await super.destroy();
  }
}
