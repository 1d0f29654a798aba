/**
 * The publishing side of a node's data plane: one listener of the node's transport, bound once
 * per node, that every subscriber and service client of the node connects to (PeerLink).
 *
 * Flow control is credit-based and lives here, not in the carrier's high-water marks: a subscriber
 * grants credit in messages and bytes; a message for a subscriber without credit is dropped
 * (best-effort, counted) or parked in that subscriber's bounded outbox (reliable) until credit
 * returns. Small messages to one peer are coalesced into one Data frame, flushed at the end of
 * the current event-loop turn or when the frame reaches `maxBatchBytes`.
 */
import { DecodeError, MyelinError } from "../errors.js";
import {
  DataFrameBuilder,
  FrameKind,
  RECORD_HEADER_BYTES,
  encodeBlobHeader,
  encodeError,
  encodeHello,
  encodePing,
  encodeReplyHeader,
  parseFrame,
  type ErrorBody,
  type RecordWriter,
  type ReplyHeader,
  type RequestHeader,
  type SubBody,
} from "./frame.js";
import { DEFAULT_TRANSPORTS } from "./default-transports.js";
import { receiveLoop } from "./receive-loop.js";
import { transportFor, type Listener, type Transports, type TransportSecurity } from "./transport.js";
import { ShmPeer, ShmWriter } from "./shm/shm-writer.js";
import { ShmKind, parseShmFrame } from "./shm/shm-frame.js";

/** Options of a DataServer; every number has a default in `DATA_SERVER_DEFAULTS`. */
export interface DataServerOptions {
  /** Where to bind: `ipc:///path` or `tcp://host:port` (port 0 picks a free one). */
  endpoint: string;
  /** The transports by endpoint scheme (default DEFAULT_TRANSPORTS). */
  transports: Transports;
  /** Largest message accepted from a peer, in bytes. */
  maxMessageBytes: number;
  /** A Data frame is flushed once it holds this many bytes, in bytes. */
  maxBatchBytes: number;
  /** A peer that sent nothing (not even a ping) for this long is dropped, in ms. */
  peerTimeoutMs: number;
  /** Interval of liveliness pings and of the dead-peer sweep, in ms. */
  pingIntervalMs: number;
  /** Security of the listener (default none; CURVE on tcp between hosts). */
  security?: TransportSecurity;
  /**
   * Most bytes sent to one peer that it has not proven it read, in bytes. The server sends a
   * read-proof ping (a token the peer echoes once it read everything before it) every eighth of
   * this; a peer further behind than this is dropped and counted, whatever credit it grants — so
   * a peer that never reads cannot grow this process. Keep it above the largest subscription
   * window (default 32 MiB); it is never below twice `maxMessageBytes`.
   */
  maxPeerBytes: number;
  /** Messages the carrier may hold for one peer (its send high-water mark). */
  sendHighWaterMark: number;
}

/** Defaults of DataServerOptions. */
export const DATA_SERVER_DEFAULTS = {
  transports: DEFAULT_TRANSPORTS,
  maxMessageBytes: 64 * 1024 * 1024,
  maxBatchBytes: 64 * 1024,
  peerTimeoutMs: 3000,
  pingIntervalMs: 500,
  maxPeerBytes: 128 * 1024 * 1024,
  sendHighWaterMark: 100_000,
} as const;

/** Read-proof ping tokens have this bit set; flush-barrier tokens (small counters) do not. */
const PROOF_TOKEN_BIT = 0x80000000;

/** A request handler's answer: codec frames of the reply, or an error. */
export type ReplyResult =
  { ok: true; frames: Uint8Array[] } | { ok: false; error: { code: string; message: string } };

/** What the node layer does with the events of its data server. */
export interface DataServerHandler {
  /** A peer subscribed. Return an ErrorBody to refuse (it is sent back to the peer). */
  onSubscribe(sub: RemoteSubscriber): ErrorBody | undefined;
  /** A subscription ended: unsubscribed, or its peer died or timed out. */
  onUnsubscribe(sub: RemoteSubscriber): void;
  /** A service request arrived. */
  onRequest(peer: PeerInfo, header: RequestHeader, parts: Buffer[]): Promise<ReplyResult>;
  /** A peer sent something that is not a valid frame; it was dropped. */
  onBadFrame(peer: PeerInfo, err: Error): void;
  /** A peer was dropped for not reading (past `maxPeerBytes`); its subscriptions ended. */
  onPeerDropped?(peer: PeerInfo, why: string): void;
}

/** What is known of a connected peer. */
export interface PeerInfo {
  /** The peer's node id, once it said hello; empty before. */
  readonly node: string;
  /** The peer's process id (a random id per process), once it said hello. */
  readonly process: string;
  /** The identity its link authenticated (`local`, `anonymous`, `curve:<key>`). */
  readonly identity: string;
}

/** A message kept for a subscriber: parked for credit, or sent to a group member and not yet credited. */
export interface OutboxEntry {
  pub: number;
  seq: number;
  sec: number;
  nsec: number;
  /** A small message's payload (owned copy), or a large one's codec frames. */
  payload: Buffer | null;
  frames: Uint8Array[] | null;
  bytes: number;
}

class Peer implements PeerInfo {
  node = "";
  process = "";
  lastSeen = Date.now();
  sentSincePing = false;
  batch: DataFrameBuilder | null = null;
  /** Size of the last batch sent to this peer, to size the next one without regrowing. */
  lastBatchBytes = 4096;
  readonly subs = new Map<number, RemoteSubscriber>();
  /** Service requests of this peer being served; while some are, the peer gets pings. */
  inflight = 0;
  /** A message already left for this peer in the current event-loop turn. */
  busyThisTurn = false;
  /** Waiting for the echo of a flush-barrier ping. */
  barrier: ((token: number) => void) | undefined;
  /** Shared-memory state, when the peer said it can map shared memory and this process has it. */
  shm: ShmPeer | null = null;
  /** Bytes handed to the carrier for this peer. */
  sentBytes = 0;
  /** Bytes this peer proved it read (by echoing a read-proof ping sent after them). */
  provenBytes = 0;
  /** `sentBytes` when the last read-proof ping left. */
  probedAt = 0;
  /** Read-proof pings not yet echoed: token and `sentBytes` when it left, oldest first. */
  readonly proofs: { token: number; at: number }[] = [];
  /** It said hello on this connection, or was asked to (once). */
  greeted = false;
  constructor(
    readonly id: Buffer,
    readonly identity: string,
  ) {}
}

/** One subscription of a remote peer to a topic of this node, with its credit and outbox. */
export class RemoteSubscriber {
  /** Messages this subscriber may still receive before it grants more. */
  creditMsgs: number;
  /** Payload bytes this subscriber may still receive before it grants more. */
  creditBytes: number;
  /** Messages dropped for this subscriber for lack of credit (best-effort only). */
  dropped = 0;
  /** Times a publisher waited for this subscriber's backlog to shrink (reliable only). */
  waits = 0;
  /** True once unsubscribed or its peer is gone. */
  closed = false;
  /** True if it ended because its peer was dropped for not reading (past `maxPeerBytes`). */
  droppedForNotReading = false;
  readonly #outbox: OutboxEntry[] = [];
  #outboxHead = 0;
  #waiters: (() => void)[] = [];
  /**
   * Group members only: messages sent and not yet credited, oldest first. A member credits a
   * contiguous prefix of what it got, so a credit of n releases the n oldest.
   */
  readonly #inflight: OutboxEntry[] | null;
  #inflightHead = 0;
  /** Group members only: what was in flight or parked when the subscriber went away. */
  #unacked: OutboxEntry[] = [];

  /** @internal */
  constructor(
    /** @internal */ readonly peer: Peer,
    readonly body: SubBody,
    /** @internal */ readonly server: DataServer,
  ) {
    this.creditMsgs = body.creditMsgs;
    this.creditBytes = body.creditBytes;
    this.#inflight = body.group !== undefined ? [] : null;
  }

  /** Queue group of the subscription, if any. */
  get group(): string | undefined {
    return this.body.group;
  }

  /** Group members only: messages sent and not yet credited. */
  get inflight(): number {
    return this.#inflight === null ? 0 : this.#inflight.length - this.#inflightHead;
  }

  /** @internal Group members: remembers a message sent, until it is credited. */
  track(
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    payload: Uint8Array | null,
    frames: Uint8Array[] | null,
    bytes: number,
  ): void {
    this.#inflight?.push({
      pub,
      seq,
      sec,
      nsec,
      payload: payload === null ? null : Buffer.from(payload.subarray(0, bytes)),
      frames: frames === null ? null : (this.server.shm?.detach(frames) ?? frames),
      bytes,
    });
  }

  /** @internal Group members: `n` more messages were consumed (the oldest in flight). */
  release(n: number): void {
    const f = this.#inflight;
    if (f === null) return;
    const end = Math.min(f.length, this.#inflightHead + n);
    for (let i = this.#inflightHead; i < end; i++) f[i] = undefined as never;
    this.#inflightHead = end;
    if (this.#inflightHead === f.length) {
      f.length = 0;
      this.#inflightHead = 0;
    } else if (this.#inflightHead > 1024 && this.#inflightHead * 2 > f.length) {
      f.splice(0, this.#inflightHead);
      this.#inflightHead = 0;
    }
  }

  /**
   * Group members, once closed: takes the messages of publisher `pub` that were in flight (sent,
   * not credited) or parked when the subscriber went away, oldest first, for another member.
   */
  takeUnacked(pub: number): OutboxEntry[] {
    const mine = this.#unacked.filter((e) => e.pub === pub);
    if (mine.length > 0) this.#unacked = this.#unacked.filter((e) => e.pub !== pub);
    return mine;
  }

  /** The subscriber's node id. */
  get node(): string {
    return this.peer.node;
  }
  /** The identity of the subscriber's link (`local`, `anonymous`, `curve:<key>`). */
  get identity(): string {
    return this.peer.identity;
  }
  get sid(): number {
    return this.body.sid;
  }
  get topic(): string {
    return this.body.topic;
  }
  get reliable(): boolean {
    return this.body.reliable;
  }
  /** A message for this subscriber would leave at once: it has credit and nothing parked. */
  get canSendNow(): boolean {
    return this.creditMsgs > 0 && this.creditBytes > 0 && this.pending === 0;
  }

  /** Messages parked waiting for credit. */
  get pending(): number {
    return this.#outbox.length - this.#outboxHead;
  }

  /** Bytes of the messages parked waiting for credit. */
  pendingBytes = 0;

  /** Resolves when fewer than `limit` messages and `limitBytes` bytes are parked, or the subscriber is gone. */
  waitBelow(limit: number, limitBytes = Infinity): Promise<void> {
    const ok = (): boolean => this.closed || (this.pending < limit && this.pendingBytes < limitBytes);
    if (ok()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (ok()) resolve();
        else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  /** @internal */
  park(e: OutboxEntry): void {
    this.#outbox.push(e);
    this.pendingBytes += e.bytes;
  }

  /** @internal Sends parked messages while credit lasts. */
  drain(): void {
    while (this.#outboxHead < this.#outbox.length && this.creditMsgs > 0 && this.creditBytes > 0) {
      const e = this.#outbox[this.#outboxHead]!;
      this.#outbox[this.#outboxHead] = undefined as never;
      this.#outboxHead++;
      this.pendingBytes -= e.bytes;
      this.server.sendNow(this, e.pub, e.seq, e.sec, e.nsec, e.payload, e.frames, e.bytes);
    }
    if (this.#outboxHead === this.#outbox.length) {
      this.#outbox.length = 0;
      this.#outboxHead = 0;
    }
    this.#wake();
  }

  /** @internal */
  close(): void {
    this.closed = true;
    if (this.#inflight !== null) {
      this.#unacked = this.#inflight.slice(this.#inflightHead).concat(this.#outbox.slice(this.#outboxHead));
      this.#inflight.length = 0;
      this.#inflightHead = 0;
    }
    this.#outbox.length = 0;
    this.#outboxHead = 0;
    this.pendingBytes = 0;
    this.#wake();
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }
}

/** A node's bound listener, serving subscriptions and service requests. */
export class DataServer {
  readonly #listener: Listener;
  readonly #opts: DataServerOptions;
  readonly #handler: DataServerHandler;
  /** This process's shared memory for large frames, or null when it is off. */
  readonly shm: ShmWriter | null = ShmWriter.forProcess();
  readonly #peers = new Map<string, Peer>();
  #unwatchTrust: (() => void) | undefined;
  readonly #dirty = new Set<Peer>();
  #busy: Peer[] = [];
  #flushScheduled = false;
  #timer: NodeJS.Timeout;
  #endpoint = "";
  #closed = false;
  #nextProof = 1;
  /** Frames dropped because they were not valid. */
  badFrames = 0;
  /** Peers dropped because they did not read what they were sent (past `maxPeerBytes`). */
  peersDropped = 0;
  /** Peer ids dropped for not reading: what they send is ignored (bounded, oldest forgotten first). */
  readonly #banned = new Set<string>();

  private constructor(opts: DataServerOptions, handler: DataServerHandler, listener: Listener) {
    this.#opts = opts;
    this.#handler = handler;
    this.#listener = listener;
    this.#endpoint = listener.endpoint;
    this.#timer = setInterval(() => this.#sweep(), opts.pingIntervalMs);
    this.#timer.unref();
    // A key revoked while its peers are connected: their subscriptions and calls end now (the
    // listener drops what they send from then on). Trusted again, they are asked to say hello.
    const sec = opts.security;
    if (sec?.mode === "curve" && sec.watchTrust !== undefined && sec.trusted !== undefined) {
      const trusted = sec.trusted;
      this.#unwatchTrust = sec.watchTrust(() => {
        for (const peer of [...this.#peers.values()]) {
          if (!peer.identity.startsWith("curve:")) continue;
          const key = peer.identity.slice("curve:".length);
          let ok = false;
          try {
            ok = key === sec.publicKey || trusted(key);
          } catch {
            ok = false;
          }
          if (!ok) this.#dropPeer(peer);
        }
      });
    }
  }

  /** Binds a data server and starts serving. */
  static async bind(
    opts: Partial<DataServerOptions> & { endpoint: string },
    handler: DataServerHandler,
  ): Promise<DataServer> {
    const full: DataServerOptions = { ...DATA_SERVER_DEFAULTS, ...opts };
    let listener: Listener;
    try {
      listener = await transportFor(full.transports, full.endpoint).listen(full.endpoint, {
        maxMessageBytes: full.maxMessageBytes,
        ...(full.security !== undefined ? { security: full.security } : {}),
        sendHighWaterMark: full.sendHighWaterMark,
        maxPeerBytes: full.maxPeerBytes,
      });
    } catch (err) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `cannot bind data endpoint ${full.endpoint}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const server = new DataServer(full, handler, listener);
    void server.#receiveLoop();
    return server;
  }

  /** The endpoint peers connect to (with the real port when bound to port 0). */
  get endpoint(): string {
    return this.#endpoint;
  }

  /** Connected peers. */
  get peerCount(): number {
    return this.#peers.size;
  }

  /** The open remote subscriptions to `topic`, whoever serves them now (a publisher created later adopts them). */
  subscribersOf(topic: string): RemoteSubscriber[] {
    const out: RemoteSubscriber[] = [];
    for (const peer of this.#peers.values())
      for (const sub of peer.subs.values()) if (!sub.closed && sub.topic === topic) out.push(sub);
    return out;
  }

  /**
   * Sends one message to a subscriber, honouring its credit.
   * @param payload the encoded message in its first `bytes` bytes (it may be a longer, reused
   *   buffer); copied before this returns, so a transient buffer is fine
   * @param frames instead of `payload`, a large message's codec frames (sent as a Blob, not copied)
   * @param bytes the message's size in bytes
   * @returns false when the message was dropped for lack of credit (best-effort)
   */
  deliver(
    sub: RemoteSubscriber,
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    payload: Uint8Array | null,
    frames: Uint8Array[] | null,
    bytes: number,
  ): boolean {
    if (sub.closed) return false;
    if (sub.canSendNow) {
      this.sendNow(sub, pub, seq, sec, nsec, payload, frames, bytes);
      return true;
    }
    if (!sub.reliable) {
      sub.dropped++;
      return false;
    }
    sub.park({
      pub,
      seq,
      sec,
      nsec,
      payload: payload === null ? null : Buffer.from(payload.subarray(0, bytes)),
      // A loaned buffer's slot may be reused before credit returns: what waits is a copy.
      frames: frames === null ? null : (this.shm?.detach(frames) ?? frames),
      bytes,
    });
    return true;
  }

  /**
   * Sends one small message to a subscriber that can take it now, written by `w` straight into the
   * peer's batch frame (one copy of the message instead of two). Returns the message's size in
   * bytes; past `maxBytes` nothing was sent (the caller reports it as too large). Returns -1,
   * nothing sent, when this path does not apply: no credit or messages parked (deliver() parks or
   * drops), a queue-group member (it keeps a copy), or `w` declined (a large message).
   */
  deliverWritten(
    sub: RemoteSubscriber,
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    w: RecordWriter,
    maxBytes: number,
  ): number {
    if (sub.closed || !sub.canSendNow || sub.body.group !== undefined) return -1;
    const peer = sub.peer;
    let batch = peer.batch;
    // The first message to a peer in this event-loop turn leaves at once (see sendNow).
    const alone = batch === null && !peer.busyThisTurn;
    if (batch === null) {
      batch = new DataFrameBuilder(
        alone ? 256 : Math.min(this.#opts.maxBatchBytes + 1024, peer.lastBatchBytes + 256),
      );
    }
    const n = batch.appendWith(sub.sid, pub, seq, sec, nsec, w, maxBytes);
    if (n < 0 || n > maxBytes) return n;
    sub.creditMsgs--;
    sub.creditBytes -= n;
    peer.sentSincePing = true;
    if (alone) {
      peer.busyThisTurn = true;
      this.#busy.push(peer);
      this.#scheduleFlush();
      const frame = batch.finish();
      this.#sendTo(peer, [frame], frame.length);
      return n;
    }
    if (peer.batch === null) {
      peer.batch = batch;
      this.#dirty.add(peer);
      this.#scheduleFlush();
    }
    if (batch.size >= this.#opts.maxBatchBytes) this.#flushPeer(peer);
    return n;
  }

  /** @internal Sends without checking credit; the caller did. */
  sendNow(
    sub: RemoteSubscriber,
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    payload: Uint8Array | null,
    frames: Uint8Array[] | null,
    bytes: number,
  ): void {
    sub.creditMsgs--;
    sub.creditBytes -= bytes;
    if (sub.body.group !== undefined) sub.track(pub, seq, sec, nsec, payload, frames, bytes);
    const peer = sub.peer;
    peer.sentSincePing = true;
    if (frames !== null) {
      this.#flushPeer(peer);
      const h = { sid: sub.sid, pub, seq, sec, nsec };
      const shm = this.shm;
      if (shm !== null) {
        // Same host, pool accepted: only a descriptor crosses the socket.
        const out = shm.encode(peer.shm, h, frames, (offer) => this.#listener.send(peer.id, [offer]));
        if (out !== null) {
          this.#sendTo(
            peer,
            out,
            out.reduce((n, b) => n + b.length, 0),
          );
          return;
        }
        frames = shm.detach(frames);
      }
      const header = encodeBlobHeader(h);
      this.#sendTo(peer, [header, ...(frames as Buffer[])], header.length + bytes);
      return;
    }
    let batch = peer.batch;
    if (batch === null && !peer.busyThisTurn) {
      // The first message to a peer in this event-loop turn leaves at once (no batching delay for
      // a lone message: request/reply, low rates); what follows in the same turn is coalesced.
      peer.busyThisTurn = true;
      this.#busy.push(peer);
      this.#scheduleFlush();
      const single = new DataFrameBuilder(4 + RECORD_HEADER_BYTES + bytes + 8);
      single.append(sub.sid, pub, seq, sec, nsec, payload!, bytes);
      const frame = single.finish();
      this.#sendTo(peer, [frame], frame.length);
      return;
    }
    if (batch === null) {
      batch = peer.batch = new DataFrameBuilder(
        Math.min(this.#opts.maxBatchBytes + 1024, peer.lastBatchBytes + 256),
      );
      this.#dirty.add(peer);
      this.#scheduleFlush();
    }
    batch.append(sub.sid, pub, seq, sec, nsec, payload!, bytes);
    if (batch.size >= this.#opts.maxBatchBytes) this.#flushPeer(peer);
  }

  /**
   * Ends the open remote subscriptions `refuse` returns an error for (e.g. the permission policy no
   * longer grants them): what is batched for the peer leaves first, then the peer gets the error
   * for that subscription, as when one is refused on asking. Returns how many ended.
   */
  endSubscriptions(refuse: (sub: RemoteSubscriber) => ErrorBody | undefined): number {
    let ended = 0;
    for (const peer of [...this.#peers.values()]) {
      for (const sub of [...peer.subs.values()]) {
        if (sub.closed) continue;
        const err = refuse(sub);
        if (err === undefined) continue;
        this.#flushPeer(peer);
        if (sub.closed) continue; // the peer was dropped for not reading what it was sent
        peer.subs.delete(sub.sid);
        this.#endSub(sub);
        if (!this.#closed) this.#listener.send(peer.id, [encodeError({ ...err, sid: sub.sid })]);
        ended++;
      }
    }
    return ended;
  }

  /** Drops every subscription of the peers of node `node` (the hub said it is gone). */
  dropNode(node: string): void {
    for (const peer of this.#peers.values()) if (peer.node === node) this.#dropPeer(peer);
  }

  /**
   * Stops serving. Reliable subscribers first take what is parked for them: close waits as long as
   * they make progress, and gives up on one that granted no credit for `lingerMs` (dead or stuck).
   * Then batched messages are flushed and get up to `lingerMs` to leave.
   */
  async close(lingerMs = 2000): Promise<void> {
    if (this.#closed) return;
    for (;;) {
      const parked: RemoteSubscriber[] = [];
      for (const peer of this.#peers.values())
        for (const sub of peer.subs.values()) if (sub.pending > 0) parked.push(sub);
      if (parked.length === 0) break;
      const before = parked.reduce((n, sub) => n + sub.pending, 0);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        ...parked.map((sub) => sub.waitBelow(sub.pending)),
        new Promise((r) => (timer = setTimeout(r, lingerMs))),
      ]);
      clearTimeout(timer);
      const after = parked.reduce((n, sub) => n + sub.pending, 0);
      if (after >= before) break; // no progress within lingerMs: give up on the rest
    }
    for (const peer of this.#dirty) this.#flushPeer(peer);
    this.#dirty.clear();
    // Flush barrier: a subscriber that echoes a ping has received everything sent before it.
    await Promise.all(
      [...this.#peers.values()]
        .filter((p) => p.subs.size > 0)
        .map((p, i) => this.#barrier(p, i + 1, lingerMs)),
    );
    this.#closed = true;
    clearInterval(this.#timer);
    this.#unwatchTrust?.();
    await this.#listener.drained(lingerMs);
    for (const peer of [...this.#peers.values()]) this.#dropPeer(peer);
    await this.#listener.close(lingerMs);
  }

  #barrier(peer: Peer, token: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        peer.barrier = undefined;
        resolve();
      }
      peer.barrier = (t) => {
        if (t === token) done();
      };
      this.#listener.send(peer.id, [encodePing(token)]);
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      for (const peer of this.#dirty) this.#flushPeer(peer);
      this.#dirty.clear();
      for (const peer of this.#busy) peer.busyThisTurn = false;
      this.#busy = [];
    });
  }

  #flushPeer(peer: Peer): void {
    const batch = peer.batch;
    if (batch === null) return;
    peer.batch = null;
    peer.lastBatchBytes = batch.size;
    const frame = batch.finish();
    this.#sendTo(peer, [frame], frame.length);
  }

  /**
   * Hands a message for `peer` to the carrier, counting its bytes; sends a read-proof ping every
   * eighth of `maxPeerBytes`, and drops the peer once it is `maxPeerBytes` behind what it proved
   * it read.
   */
  #sendTo(peer: Peer, frames: Buffer[], bytes: number): void {
    if (this.#banned.size > 0 && this.#banned.has(peer.id.toString("latin1"))) return;
    this.#listener.send(peer.id, frames);
    peer.sentBytes += bytes;
    // Never below two of the largest messages: one in flight must not get a reading peer dropped.
    const max = Math.max(this.#opts.maxPeerBytes, 2 * this.#opts.maxMessageBytes);
    if (peer.sentBytes - peer.probedAt >= max / 8) {
      peer.probedAt = peer.sentBytes;
      const token = (PROOF_TOKEN_BIT | (this.#nextProof++ % 0x7fffffff)) >>> 0;
      peer.proofs.push({ token, at: peer.sentBytes });
      this.#listener.send(peer.id, [encodePing(token)]);
    }
    if (peer.sentBytes - peer.provenBytes > max) {
      const behind = peer.sentBytes - peer.provenBytes;
      this.#dropForNotReading(
        peer,
        `it did not read ${behind} bytes sent to it (bound ${max} bytes, maxPeerBytes), whatever credit it granted`,
      );
    }
  }

  /** A read-proof ping came back: the peer read everything sent before it. */
  #proven(peer: Peer, token: number): void {
    const i = peer.proofs.findIndex((p) => p.token === token);
    if (i < 0) return;
    peer.provenBytes = peer.proofs[i]!.at;
    peer.proofs.splice(0, i + 1);
  }

  #dropForNotReading(peer: Peer, why: string): void {
    this.peersDropped++;
    const key = peer.id.toString("latin1");
    this.#banned.add(key);
    if (this.#banned.size > 10_000) this.#banned.delete(this.#banned.values().next().value!);
    for (const sub of peer.subs.values()) sub.droppedForNotReading = true;
    this.#dropPeer(peer);
    this.#listener.disconnect?.(peer.id);
    this.#handler.onPeerDropped?.(peer, why);
  }

  #sweep(): void {
    const now = Date.now();
    for (const peer of [...this.#peers.values()]) {
      if (now - peer.lastSeen > this.#opts.peerTimeoutMs) {
        this.#dropPeer(peer);
        continue;
      }
      // Subscribers and clients waiting for a reply hear from us, so they can tell a live peer
      // from a frozen or cut-off one.
      if (!peer.sentSincePing && (peer.subs.size > 0 || peer.inflight > 0))
        this.#listener.send(peer.id, [encodePing()]);
      peer.sentSincePing = false;
    }
  }

  #dropPeer(peer: Peer): void {
    this.#peers.delete(peer.id.toString("latin1"));
    this.#dirty.delete(peer);
    peer.batch = null;
    for (const sub of peer.subs.values()) this.#endSub(sub);
    peer.subs.clear();
    if (peer.shm !== null) this.shm?.dropPeer(peer.shm);
  }

  #endSub(sub: RemoteSubscriber): void {
    if (sub.closed) return;
    sub.close();
    this.#handler.onUnsubscribe(sub);
  }

  #receiveLoop(): Promise<void> {
    let peer: Peer | undefined;
    return receiveLoop(
      this.#listener,
      ({ peer: id, frames, identity }) => {
        const key = id.toString("latin1");
        if (this.#banned.has(key)) return; // dropped for not reading: nothing more from this link
        peer = this.#peers.get(key);
        if (peer === undefined) {
          peer = new Peer(Buffer.from(id), identity);
          this.#peers.set(key, peer);
        }
        peer.lastSeen = Date.now();
        this.#handle(peer, frames);
      },
      (err) => {
        this.badFrames++;
        if (peer !== undefined) this.#handler.onBadFrame(peer, err);
      },
    );
  }

  #handle(peer: Peer, frames: Buffer[]): void {
    const f = parseFrame(frames);
    if (!peer.greeted && f.kind !== FrameKind.Hello) {
      // A link always says hello first on a connection: one that talks without it is one this
      // server forgot (dropped for silence, or cut when its key was revoked and trusted again) on
      // a connection that stayed up. Ask it to say hello again, which repeats its subscriptions.
      peer.greeted = true;
      this.#listener.send(peer.id, [encodeHello({ node: "", process: "" })]);
    }
    switch (f.kind) {
      case FrameKind.Hello:
        peer.greeted = true;
        peer.node = f.body.node;
        peer.process = f.body.process;
        if (peer.shm !== null) this.shm?.dropPeer(peer.shm); // said hello again: it forgot our pools
        peer.shm = f.body.shm === true && this.shm !== null ? new ShmPeer() : null;
        return;
      case FrameKind.Shm: {
        const m = parseShmFrame(f.first, f.rest);
        if (peer.shm === null || this.shm === null)
          throw new DecodeError("ERR_DECODE", "shm frame from a peer that did not say it maps shared memory");
        if (m.sub === ShmKind.Accept) this.shm.accept(peer.shm, m.pool, m.nonce);
        else if (m.sub === ShmKind.Release) this.shm.release(peer.shm, m.slots);
        else throw new DecodeError("ERR_DECODE", `shm frame sub-kind ${m.sub} is only sent by a publisher`);
        return;
      }
      case FrameKind.Sub: {
        const old = peer.subs.get(f.body.sid);
        if (old !== undefined) this.#endSub(old);
        const sub = new RemoteSubscriber(peer, f.body, this);
        peer.subs.set(sub.sid, sub);
        const refused = this.#handler.onSubscribe(sub);
        if (refused !== undefined) {
          peer.subs.delete(sub.sid);
          sub.close();
          this.#listener.send(peer.id, [encodeError({ ...refused, sid: sub.sid })]);
        }
        return;
      }
      case FrameKind.Unsub: {
        const sub = peer.subs.get(f.sid);
        if (sub !== undefined) {
          peer.subs.delete(f.sid);
          this.#endSub(sub);
        }
        return;
      }
      case FrameKind.Credit: {
        const sub = peer.subs.get(f.sid);
        if (sub === undefined) {
          this.#listener.send(peer.id, [
            encodeError({
              sid: f.sid,
              code: "ERR_UNKNOWN_SUB",
              message: `no subscription ${f.sid} on this link`,
            }),
          ]);
          return;
        }
        sub.creditMsgs += f.msgs;
        sub.creditBytes += f.bytes;
        if (sub.body.group !== undefined) sub.release(f.msgs);
        sub.drain();
        return;
      }
      case FrameKind.Request:
        this.#serve(peer, f.header, f.parts);
        return;
      case FrameKind.Ping:
        if (f.token === undefined) return;
        if ((f.token & PROOF_TOKEN_BIT) !== 0) this.#proven(peer, f.token >>> 0);
        else peer.barrier?.(f.token);
        return;
      case FrameKind.Data:
      case FrameKind.Blob:
      case FrameKind.Reply:
      case FrameKind.Error:
        throw new DecodeError("ERR_DECODE", `frame kind ${f.kind} is only sent by a publisher, not to one`);
    }
  }

  #serve(peer: Peer, header: RequestHeader, parts: Buffer[]): void {
    peer.inflight++;
    const reply = (h: ReplyHeader, frames: Uint8Array[]): void => {
      peer.inflight--;
      if (this.#closed) return;
      const head = encodeReplyHeader(h);
      let bytes = head.length;
      for (const f of frames) bytes += f.length;
      this.#sendTo(peer, [head, ...(frames as Buffer[])], bytes);
    };
    this.#handler.onRequest(peer, header, parts).then(
      (r) => {
        if (r.ok) reply({ id: header.id, ok: true }, r.frames);
        else reply({ id: header.id, ok: false, error: r.error }, []);
      },
      (err: unknown) => {
        const e = err as { code?: unknown; message?: unknown };
        reply(
          {
            id: header.id,
            ok: false,
            error: {
              code: typeof e?.code === "string" ? e.code : "ERR_SERVICE_FAILED",
              message: typeof e?.message === "string" ? e.message : String(err),
            },
          },
          [],
        );
      },
    );
  }
}
