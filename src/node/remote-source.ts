/**
 * The receiving side of the data plane's flow control: one publisher node feeding one
 * subscription over a link. It decodes and validates what arrives (a raw subscription gets it as it
 * arrived, see raw-message.ts), drops repeats by sequence
 * number (counting gaps as lost), and grants the publisher credit as the subscription consumes.
 */
import { DecodeError, MyelinError, TypeMismatchError, ValidationError } from "../errors.js";
import type { MessageType } from "../msgs/index.js";
import { decodeCompiledIn, decodeFrames, MISMATCH, msgpackCodec } from "../codec/index.js";
import type { PeerLink, RecordSink } from "../transport/peer-link.js";
import type { ErrorBody, RecordHeader, SubBody } from "../transport/frame.js";
import type { RawMessage } from "./raw-message.js";
import type { Acker, Subscription } from "./subscription.js";

/**
 * One publisher node feeding one subscription, over a link.
 *
 * A queue-group member (`grouped`) credits the publisher only for a contiguous prefix of the
 * messages it received (a handler that finishes early waits for the earlier ones), and does so
 * at the end of each event-loop turn rather than per quarter window: the publisher's count of
 * uncredited messages is then exactly the messages not consumed yet, which it sends to another
 * member if this one goes away.
 */
export class RemoteSource implements RecordSink, Acker {
  sid = 0;
  alive = true;
  /** What the subscription asked the publisher for, kept to ask again. */
  request: Omit<SubBody, "sid"> | undefined;
  /**
   * The publisher's record changed while this subscription was open or being asked for: a refusal
   * arriving now may answer the ask made before the change, so it is asked once more at once (the
   * change that would have made it ask again was seen while the ask was pending).
   */
  recordChanged = false;
  #consumedMsgs = 0;
  #consumedBytes = 0;
  /** Last sequence number delivered, and the publisher's name, by publisher index (a u16). */
  readonly #lastSeq: number[] = [];
  readonly #names: string[] = [];
  /** Group members: index of the message being handled, of the next one, and of the first unconsumed. */
  #cur = 0;
  #nextIdx = 0;
  #doneIdx = 0;
  /** Group members: consumed out of order (index → bytes), waiting for the ones before. */
  readonly #early = new Map<number, number>();
  #flushScheduled = false;

  constructor(
    readonly sub: Subscription<unknown>,
    readonly type: MessageType<unknown> | undefined,
    readonly validate: boolean,
    readonly link: PeerLink,
    readonly publisherNode: string,
    readonly publisherName: string,
    readonly windowMsgs: number,
    readonly windowBytes: number,
    readonly grouped = false,
  ) {}

  ack(bytes: number): void {
    if (this.grouped) {
      this.#ackAt(this.#cur, bytes);
      return;
    }
    this.#consumedMsgs++;
    this.#consumedBytes += bytes;
    if (this.#consumedMsgs * 4 >= this.windowMsgs || this.#consumedBytes * 4 >= this.windowBytes) {
      this.link.credit(this.sid, this.#consumedMsgs, this.#consumedBytes);
      this.#consumedMsgs = 0;
      this.#consumedBytes = 0;
    }
  }

  #ackAt(i: number, bytes: number): void {
    if (i !== this.#doneIdx) {
      this.#early.set(i, bytes);
      return;
    }
    let msgs = 1;
    let total = bytes;
    this.#doneIdx++;
    for (let b = this.#early.get(this.#doneIdx); b !== undefined; b = this.#early.get(this.#doneIdx)) {
      this.#early.delete(this.#doneIdx);
      this.#doneIdx++;
      msgs++;
      total += b;
    }
    this.#consumedMsgs += msgs;
    this.#consumedBytes += total;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      if (this.#consumedMsgs === 0) return;
      this.link.credit(this.sid, this.#consumedMsgs, this.#consumedBytes);
      this.#consumedMsgs = 0;
      this.#consumedBytes = 0;
    });
  }

  onRecord(
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    frame: Buffer,
    start: number,
    end: number,
  ): void {
    const bytes = end - start;
    if (this.grouped) this.#cur = this.#nextIdx++;
    else if (!this.#sequence(pub, seq)) {
      this.ack(bytes);
      return;
    }
    if (this.sub.raw) {
      const payload = frame.subarray(start, end);
      const raw: RawMessage = { frames: [payload], bytes };
      this.#deliver(raw, pub, seq, sec, nsec, bytes);
      return;
    }
    if (this.validate && this.type !== undefined) {
      // One pass that decodes and validates; anything unusual takes the generic path below,
      // which also names what is wrong.
      const fast = decodeCompiledIn(this.type, frame, start, end);
      if (fast !== MISMATCH) {
        this.#deliver(fast, pub, seq, sec, nsec, bytes);
        return;
      }
    }
    let msg: unknown;
    try {
      msg = msgpackCodec.decode(frame.subarray(start, end));
    } catch (err) {
      this.#invalid(err, bytes);
      return;
    }
    this.#accept(msg, pub, seq, sec, nsec, bytes);
  }

  /**
   * A large message. With `release`, parts are views into the publisher's shared memory: a callback
   * subscription reads them in place and the slot goes back once the callback is done; a queue
   * (async iterator) may keep messages, so it gets a copy and the slot goes back at once.
   */
  onBlob(h: RecordHeader, parts: Buffer[], release?: () => void): void {
    if (release !== undefined && !this.sub.callback) {
      parts = parts.map((p) => Buffer.from(p));
      release();
      release = undefined;
    }
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    if (this.grouped) this.#cur = this.#nextIdx++;
    else if (!this.#sequence(h.pub, h.seq)) {
      release?.();
      this.ack(bytes);
      return;
    }
    if (this.sub.raw) {
      const raw: RawMessage = { frames: parts, bytes };
      this.#deliver(raw, h.pub, h.seq, h.sec, h.nsec, bytes, release);
      return;
    }
    let msg: unknown;
    try {
      msg = decodeFrames(parts);
    } catch (err) {
      release?.();
      this.#invalid(err, bytes);
      return;
    }
    this.#accept(msg, h.pub, h.seq, h.sec, h.nsec, bytes, release);
  }

  onRefused(err: ErrorBody): void {
    const e =
      err.code === "ERR_TYPE_MISMATCH"
        ? new TypeMismatchError("ERR_TYPE_MISMATCH", err.message)
        : new MyelinError(
            err.code === "ERR_UNKNOWN_TOPIC" || err.code === "ERR_NOT_AUTHORIZED" ? err.code : "ERR_PROTOCOL",
            err.message,
          );
    this.sid = 0;
    if (err.code !== "ERR_UNKNOWN_TOPIC") this.sub.refuse(e);
    if (!this.recordChanged || this.request === undefined || this.sub.closed) return;
    this.recordChanged = false;
    try {
      this.sid = this.link.subscribe(this.request, this);
    } catch {
      // The link is closed: the next change of the graph asks again.
    }
  }

  /** Returns false for a repeat (already delivered); counts gaps as lost. */
  #sequence(pub: number, seq: number): boolean {
    const last = this.#lastSeq[pub] ?? 0;
    if (seq <= last) return false;
    if (last > 0 && seq > last + 1) this.sub.countLost(seq - last - 1);
    this.#lastSeq[pub] = seq;
    return true;
  }

  #accept(
    msg: unknown,
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    bytes: number,
    release?: () => void,
  ): void {
    if (this.validate && this.type !== undefined) {
      const r = this.type.validate(msg);
      if (!r.ok) {
        release?.();
        const detail = r.errors.map((e) => `${e.path || "(message)"}: ${e.reason}`).join("; ");
        this.#invalid(
          new ValidationError(
            "ERR_VALIDATION",
            `message on ${this.sub.topic} from ${this.publisherName} is not a valid ${this.type.name}: ${detail}`,
          ),
          bytes,
        );
        return;
      }
    }
    this.#deliver(msg, pub, seq, sec, nsec, bytes, release);
  }

  #deliver(
    msg: unknown,
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    bytes: number,
    release?: () => void,
  ): void {
    let name = this.#names[pub];
    if (name === undefined) this.#names[pub] = name = `${this.publisherName}#${pub}`;
    const info = { seq, publisher: name, sourceTime: { sec, nanosec: nsec }, bytes };
    if (this.grouped) {
      const i = this.#cur;
      const ack =
        release === undefined
          ? (b: number) => this.#ackAt(i, b)
          : (b: number) => {
              release();
              this.#ackAt(i, b);
            };
      this.sub.deliverEncoded(msg, info, { ack }, bytes, this.link.lastSeen);
      return;
    }
    if (release !== undefined) {
      this.sub.deliverEncoded(
        msg,
        info,
        {
          ack: (b) => {
            release();
            this.ack(b);
          },
        },
        bytes,
        this.link.lastSeen,
      );
      return;
    }
    // The arrival time is when the link received the frame (it reads the clock once a frame).
    this.sub.deliverEncoded(msg, info, this, bytes, this.link.lastSeen);
  }

  #invalid(err: unknown, bytes: number): void {
    this.ack(bytes);
    const e = err instanceof Error ? err : new Error(String(err));
    const msg =
      e instanceof ValidationError
        ? e.message
        : `message on ${this.sub.topic} from ${this.publisherName} could not be decoded: ${e.message}`;
    this.sub.rejectInvalid(
      e instanceof ValidationError ? e : new DecodeError("ERR_DECODE", msg, { cause: e }),
    );
  }
}
