/**
 * The subscribing side of the data plane: one connection of the node's transport to one remote
 * node's DataServer, shared by every subscription and service client of this node towards that node.
 *
 * On every (re)connect the link says hello and repeats its subscriptions, so a publisher that
 * restarted on the same endpoint serves them again; subscribers drop repeats by sequence number.
 *
 * The link knows when its peer is gone: the transport reports the connection lost or refused (at once
 * on one host), or the peer sends nothing for `silentMs` while calls wait (a frozen process, a
 * cut network; the peer pings while it serves calls). Then `down` is true and the calls waiting
 * fail at once with ERR_UNAVAILABLE: their replies can no longer come.
 */
import { ClosedError, DecodeError, ServiceError } from "../errors.js";
import {
  FrameKind,
  encodeCredit,
  encodeHello,
  encodePing,
  encodeRequestHeader,
  encodeSub,
  encodeUnsub,
  forEachRecordIn,
  parseFrame,
  type ErrorBody,
  type HelloBody,
  type RecordHeader,
  type ReplyHeader,
  type RequestHeader,
  type SubBody,
} from "./frame.js";
import { DEFAULT_TRANSPORTS } from "./default-transports.js";
import { receiveLoop } from "./receive-loop.js";
import { transportFor, type Connection, type Transports, type TransportSecurity } from "./transport.js";
import { ShmReader, ShmRefusal } from "./shm/shm-reader.js";
import { INLINE, ShmKind, encodeAccept, encodeRelease, parseShmFrame } from "./shm/shm-frame.js";

/** Receives what a link gets for one subscription. */
export interface RecordSink {
  /** One small message: its payload is `frame[start, end)` (the received frame, not a copy). */
  onRecord(
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    frame: Buffer,
    start: number,
    end: number,
  ): void;
  /**
   * One large message as codec frames. When `release` is given, some parts are views into the
   * publisher's shared memory: call it once the message is consumed (the views must not be read
   * after); the sink may call it at once after copying the parts.
   */
  onBlob(header: RecordHeader, parts: Buffer[], release?: () => void): void;
  /** The publisher refused or ended the subscription. */
  onRefused(err: ErrorBody): void;
}

/** Options of a PeerLink. */
export interface PeerLinkOptions {
  endpoint: string;
  /** The transports by endpoint scheme (default DEFAULT_TRANSPORTS). */
  transports?: Transports;
  hello: HelloBody;
  /** Largest message accepted from the peer, in bytes. */
  maxMessageBytes: number;
  /** Interval of the pings that keep this link alive on the publisher's side, in ms. */
  pingIntervalMs: number;
  /**
   * Calls waiting while the peer sent nothing for this long fail with ERR_UNAVAILABLE, in ms
   * (default 3000; checked every `pingIntervalMs`).
   */
  silentMs?: number;
  /** Called for frames that are not valid; they are dropped. */
  onBadFrame(err: Error): void;
  /** Security of the connection (default none; CURVE with the remote host's key on tcp). */
  security?: TransportSecurity;
  /** The connection was lost or refused, with why (e.g. the peer refused this host's key). */
  onDown?: (why: string) => void;
}

interface PendingCall {
  resolve(r: { header: ReplyHeader; parts: Buffer[] }): void;
  reject(err: Error): void;
}

/** A connection to one remote node. */
export class PeerLink {
  readonly endpoint: string;
  readonly #conn: Connection;
  readonly #opts: PeerLinkOptions;
  readonly #subs = new Map<number, { body: SubBody; sink: RecordSink }>();
  readonly #calls = new Map<number, PendingCall>();
  #nextSid = 1;
  #nextCall = 1;
  #timer: NodeJS.Timeout;
  #closed = false;
  #connectedOnce = false;
  /** The connection is lost or refused (the transport said so). */
  #disconnected = false;
  /** The peer sent nothing for `silentMs` while calls waited. */
  #silent = false;
  /** Since when calls have been waiting (Date.now()), 0 when none. */
  #callsSince = 0;
  /** Shared memory for large frames from this peer, or null when off in this process. */
  readonly #shm: ShmReader | null = ShmReader.create();
  /** Counts connections: a release from an earlier one is not sent on a later one. */
  #epoch = 0;
  /** Time of the last frame received from the peer (Date.now()). */
  lastSeen = 0;
  /** When the link was opened (Date.now()). */
  readonly openedAt = Date.now();
  /** Frames dropped because they were not valid. */
  badFrames = 0;

  /**
   * @throws MyelinError ERR_INVALID_ARGUMENT when no transport serves the endpoint's scheme
   */
  constructor(opts: PeerLinkOptions) {
    this.endpoint = opts.endpoint;
    this.#opts = opts;
    this.#conn = transportFor(opts.transports ?? DEFAULT_TRANSPORTS, opts.endpoint).connect(opts.endpoint, {
      maxMessageBytes: opts.maxMessageBytes,
      reconnectMs: { min: 100, max: 1000 },
      ...(opts.security !== undefined ? { security: opts.security } : {}),
    });
    this.#conn.on("up", () => {
      this.#disconnected = false;
      if (this.#connectedOnce) this.#resend();
      this.#connectedOnce = true;
    });
    this.#conn.on("down", (why) => {
      this.#epoch++;
      this.#shm?.linkDown();
      if (this.#closed) return;
      opts.onDown?.(why);
      this.#disconnected = true;
      this.failCalls(`the connection to ${this.endpoint} was lost or refused (its node stopped or crashed)`);
    });
    this.#send(encodeHello(this.#hello()));
    this.#timer = setInterval(() => {
      this.#send(encodePing());
      this.#checkSilence();
    }, opts.pingIntervalMs);
    this.#timer.unref();
    void this.#receiveLoop();
  }

  /** Subscriptions carried by this link. */
  get subscriptionCount(): number {
    return this.#subs.size;
  }

  /** Service calls waiting for a reply. */
  get pendingCalls(): number {
    return this.#calls.size;
  }

  /**
   * True while the peer is known to be unreachable: the connection was lost or refused (until it
   * connects again), or the peer fell silent while calls waited (until it sends again).
   */
  get down(): boolean {
    return this.#disconnected || this.#silent;
  }

  /** Starts a subscription; returns its id on this link. */
  subscribe(body: Omit<SubBody, "sid">, sink: RecordSink): number {
    this.#check();
    const sid = this.#nextSid++;
    const full = { ...body, sid };
    this.#subs.set(sid, { body: full, sink });
    this.#send(encodeSub(full));
    return sid;
  }

  /** Ends a subscription. */
  unsubscribe(sid: number): void {
    if (!this.#subs.delete(sid) || this.#closed) return;
    this.#send(encodeUnsub(sid));
  }

  /** Grants the publisher `msgs` more messages and `bytes` more payload bytes for `sid`. */
  credit(sid: number, msgs: number, bytes: number): void {
    if (this.#closed || !this.#subs.has(sid)) return;
    this.#send(encodeCredit(sid, msgs, bytes));
  }

  /**
   * Sends a service request and resolves with the reply. Never times out by itself: the caller
   * sets its timer and calls `cancel(id)`.
   */
  request(
    header: Omit<RequestHeader, "id">,
    frames: Uint8Array[],
  ): { id: number; reply: Promise<{ header: ReplyHeader; parts: Buffer[] }> } {
    this.#check();
    const id = this.#nextCall++ >>> 0;
    if (this.#calls.size === 0) this.#callsSince = Date.now();
    const reply = new Promise<{ header: ReplyHeader; parts: Buffer[] }>((resolve, reject) => {
      this.#calls.set(id, { resolve, reject });
    });
    this.#conn.send([encodeRequestHeader({ ...header, id }), ...(frames as Buffer[])]);
    return { id, reply };
  }

  /** Forgets a pending call (its caller gave up); a late reply is dropped. */
  cancel(id: number): void {
    this.#calls.delete(id);
  }

  /** Fails every waiting call with ERR_UNAVAILABLE saying `why` (the peer is known to be gone). */
  failCalls(why: string): void {
    if (this.#calls.size === 0) return;
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const c of calls) c.reject(new ServiceError("ERR_UNAVAILABLE", why));
  }

  #checkSilence(): void {
    if (this.#calls.size === 0 || this.#silent) return;
    const silentMs = this.#opts.silentMs ?? 3000;
    const now = Date.now();
    if (now - Math.max(this.lastSeen, this.#callsSince) > silentMs) {
      this.#silent = true;
      this.failCalls(
        `${this.endpoint} sent nothing for ${silentMs} ms while calls waited (frozen or cut off)`,
      );
    }
  }

  /** Closes the link; pending calls fail with ERR_CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const c of this.#calls.values())
      c.reject(new ClosedError("ERR_CLOSED", `link to ${this.endpoint} closed`));
    this.#calls.clear();
    this.#subs.clear();
    void this.#conn.close(0);
  }

  #send(...frames: Buffer[]): void {
    this.#conn.send(frames);
  }

  #hello(): HelloBody {
    return this.#shm === null ? this.#opts.hello : { ...this.#opts.hello, shm: true };
  }

  #check(): void {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `link to ${this.endpoint} is closed`);
  }

  #resend(): void {
    this.#send(encodeHello(this.#hello()));
    for (const { body } of this.#subs.values()) this.#send(encodeSub(body));
  }

  #receiveLoop(): Promise<void> {
    return receiveLoop(
      this.#conn,
      (msg) => {
        this.lastSeen = Date.now();
        this.#silent = false;
        this.#handle(msg);
      },
      (err) => {
        this.badFrames++;
        this.#opts.onBadFrame(err);
      },
    );
  }

  #handle(msg: Buffer[]): void {
    const f = parseFrame(msg);
    switch (f.kind) {
      case FrameKind.Data:
        forEachRecordIn(f.frame, (sid, pub, seq, sec, nsec, frame, start, end) => {
          this.#subs.get(sid)?.sink.onRecord(pub, seq, sec, nsec, frame, start, end);
        });
        return;
      case FrameKind.Blob:
        this.#subs.get(f.header.sid)?.sink.onBlob(f.header, f.parts);
        return;
      case FrameKind.Shm:
        this.#handleShm(f.first, f.rest);
        return;
      case FrameKind.Reply: {
        const call = this.#calls.get(f.header.id);
        if (call !== undefined) {
          this.#calls.delete(f.header.id);
          call.resolve({ header: f.header, parts: f.parts });
        }
        return;
      }
      case FrameKind.Error: {
        const sid = f.body.sid;
        if (sid === undefined)
          throw new DecodeError("ERR_DECODE", `peer error: ${f.body.code}: ${f.body.message}`);
        const s = this.#subs.get(sid);
        if (s === undefined) return;
        if (f.body.code === "ERR_UNKNOWN_SUB") {
          // The publisher restarted and lost our subscription: ask again.
          this.#send(encodeSub(s.body));
          return;
        }
        this.#subs.delete(sid);
        s.sink.onRefused(f.body);
        return;
      }
      case FrameKind.Ping:
        if (f.token !== undefined) this.#send(encodePing(f.token)); // flush barrier: echo
        return;
      case FrameKind.Hello:
        // The publisher forgot this link while its connection stayed up (it dropped it for
        // silence, or cut it when this host's key was revoked and then trusted again).
        this.#resend();
        return;
      case FrameKind.Sub:
      case FrameKind.Unsub:
      case FrameKind.Credit:
      case FrameKind.Request:
        throw new DecodeError("ERR_DECODE", `frame kind ${f.kind} is only sent to a publisher, not by one`);
    }
  }

  #handleShm(first: Buffer, rest: Buffer[]): void {
    const m = parseShmFrame(first, rest);
    const shm = this.#shm;
    if (shm === null)
      throw new DecodeError("ERR_DECODE", "shm frame on a link that does not map shared memory");
    switch (m.sub) {
      case ShmKind.Offer:
        if (shm.offer(m.pool, m.name, m.nonce)) this.#send(encodeAccept(m.pool, m.nonce));
        return;
      case ShmKind.Blob: {
        let r: ReturnType<ShmReader["resolve"]>;
        try {
          r = shm.resolve(m.parts, m.inline);
        } catch (err) {
          if (!(err instanceof ShmRefusal)) throw err;
          // Give back whatever the descriptors named (the publisher ignores what we do not hold).
          const named = m.parts
            .filter((p) => p.pool !== INLINE)
            .map((p) => ({ pool: p.pool, slot: p.slot, gen: p.gen }));
          if (named.length > 0) this.#send(encodeRelease(named));
          throw new DecodeError("ERR_DECODE", err.message, { cause: err });
        }
        const epoch = this.#epoch;
        let released = false;
        const release = (): void => {
          if (released) return;
          released = true;
          if (!this.#closed && epoch === this.#epoch) this.#send(encodeRelease(r.slots));
        };
        const sink = this.#subs.get(m.header.sid)?.sink;
        if (sink === undefined) {
          release();
          return;
        }
        sink.onBlob(m.header, r.parts, release);
        return;
      }
      case ShmKind.Accept:
      case ShmKind.Release:
        throw new DecodeError("ERR_DECODE", `shm frame sub-kind ${m.sub} is only sent to a publisher`);
    }
  }
}
