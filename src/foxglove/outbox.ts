/**
 * The send side of one Foxglove client: what the server has to say to it, bounded in bytes.
 *
 * Three kinds of frames leave through one WebSocket:
 * - control frames (JSON ops, service responses): in order, before anything else; bounded by
 *   `controlBudgetBytes`, past which the client is too slow to be served (`onOverflow`);
 * - the server time: only the newest is kept;
 * - message data, one queue per subscription key (the topic): at most `budgetBytes` queued and in
 *   flight together. Past the budget the oldest message of the topic holding the most bytes is
 *   dropped (counted, and reported through `onDrop`), and the queues are served round-robin, one
 *   message each in turn, so a topic of large images never holds back a topic of small messages.
 *   A topic's newest message is never dropped to make room for another topic's, so the bytes held
 *   can pass the budget by at most one message per topic.
 *
 * At most `writeWindowBytes` (and at most half the budget) are handed to the socket and not yet
 * written to the OS, or one frame when it alone is larger; so a client that stops reading holds
 * the window, then the rest of its budget, and no more.
 * Sans-IO: the socket is the {@link OutboxSink}; time is not used.
 */

/** Where an outbox writes: one WebSocket message per call. */
export interface OutboxSink {
  /**
   * Sends `frames` as one WebSocket message (several frames are fragments of one message) and
   * calls `done` once it was written to the OS, or failed.
   */
  send(frames: readonly (string | Uint8Array)[], done: () => void): void;
}

/** Limits of an outbox, in bytes. */
export interface OutboxLimits {
  /** Message data queued and in flight, at most (one message per topic may pass it). */
  budgetBytes: number;
  /** Bytes handed to the socket and not yet written to the OS, at most (at least one frame; at most half the budget). */
  writeWindowBytes: number;
  /** Control frames queued, at most; past it `onOverflow` is called. */
  controlBudgetBytes: number;
}

/** What an outbox reports. */
export interface OutboxEvents {
  /** Messages of `key` were dropped to stay within the budget (`count` of them, `bytes` in all). */
  onDrop(key: string, count: number, bytes: number): void;
  /** More control bytes are queued than `controlBudgetBytes`: the client is not reading. */
  onOverflow(queuedBytes: number): void;
}

/** Counters of one key (topic) of an outbox. */
export interface OutboxKeyStats {
  /** Messages handed to the socket. */
  sent: number;
  /** Bytes handed to the socket. */
  sentBytes: number;
  /** Messages dropped to stay within the budget. */
  dropped: number;
  /** Bytes dropped to stay within the budget. */
  droppedBytes: number;
  /** Messages waiting now. */
  queued: number;
  /** Bytes waiting now. */
  queuedBytes: number;
}

/** Counters of an outbox. */
export interface OutboxStats {
  /** Message data waiting, in bytes. */
  queuedBytes: number;
  /** Bytes handed to the socket and not yet written to the OS (data, control and time). */
  inFlightBytes: number;
  /** Control frames waiting, in bytes. */
  controlQueuedBytes: number;
  /** Per key. */
  keys: Record<string, OutboxKeyStats>;
}

interface Item {
  frames: readonly (string | Uint8Array)[];
  bytes: number;
}

interface KeyQueue extends OutboxKeyStats {
  items: Item[];
}

/** The bounded outbox of one client; see the module comment. */
export class Outbox {
  readonly #sink: OutboxSink;
  readonly #limits: OutboxLimits;
  readonly #events: OutboxEvents;
  /** The write window: `writeWindowBytes`, at most half the budget. */
  readonly #window: number;
  readonly #control: Item[] = [];
  #controlBytes = 0;
  #time: Item | undefined;
  readonly #keys = new Map<string, KeyQueue>();
  /** Keys with queued data, in round-robin order. */
  #ring: string[] = [];
  #ringPos = 0;
  #queuedBytes = 0;
  #inFlightBytes = 0;
  #inFlightData = 0;
  #closed = false;
  #overflowed = false;
  #pumping = false;

  constructor(sink: OutboxSink, limits: OutboxLimits, events: OutboxEvents) {
    this.#sink = sink;
    this.#limits = limits;
    this.#events = events;
    this.#window = Math.max(1, Math.min(limits.writeWindowBytes, Math.floor(limits.budgetBytes / 2)));
  }

  /** Queues a control frame; it goes before any message data. */
  control(frame: string | Uint8Array): void {
    if (this.#closed) return;
    const bytes = typeof frame === "string" ? Buffer.byteLength(frame) : frame.byteLength;
    this.#control.push({ frames: [frame], bytes });
    this.#controlBytes += bytes;
    if (this.#controlBytes > this.#limits.controlBudgetBytes && !this.#overflowed) {
      this.#overflowed = true;
      this.#events.onOverflow(this.#controlBytes);
      return;
    }
    this.#pump();
  }

  /** Sets the time frame to send next; a time frame not sent yet is replaced. */
  time(frame: Uint8Array): void {
    if (this.#closed) return;
    this.#time = { frames: [frame], bytes: frame.byteLength };
    this.#pump();
  }

  /**
   * Queues one message of `key` made of `frames` (`bytes` long in all), dropping the oldest
   * messages of the fullest topic while over the budget.
   */
  data(key: string, frames: readonly (string | Uint8Array)[], bytes: number): void {
    if (this.#closed) return;
    let q = this.#keys.get(key);
    if (q === undefined) {
      q = { items: [], sent: 0, sentBytes: 0, dropped: 0, droppedBytes: 0, queued: 0, queuedBytes: 0 };
      this.#keys.set(key, q);
    }
    if (q.items.length === 0) this.#ring.push(key);
    q.items.push({ frames, bytes });
    q.queued++;
    q.queuedBytes += bytes;
    this.#queuedBytes += bytes;
    this.#evict();
    this.#pump();
  }

  /** Forgets the queued messages of `key` (not counted as dropped) and its counters. */
  removeKey(key: string): void {
    const q = this.#keys.get(key);
    if (q === undefined) return;
    this.#queuedBytes -= q.queuedBytes;
    this.#keys.delete(key);
    this.#ring = this.#ring.filter((k) => k !== key);
    if (this.#ringPos >= this.#ring.length) this.#ringPos = 0;
  }

  /** The counters now. */
  stats(): OutboxStats {
    const keys: Record<string, OutboxKeyStats> = {};
    for (const [k, q] of this.#keys) {
      keys[k] = {
        sent: q.sent,
        sentBytes: q.sentBytes,
        dropped: q.dropped,
        droppedBytes: q.droppedBytes,
        queued: q.queued,
        queuedBytes: q.queuedBytes,
      };
    }
    return {
      queuedBytes: this.#queuedBytes,
      inFlightBytes: this.#inFlightBytes,
      controlQueuedBytes: this.#controlBytes,
      keys,
    };
  }

  /** Drops everything queued; nothing is sent afterwards. */
  close(): void {
    this.#closed = true;
    this.#control.length = 0;
    this.#controlBytes = 0;
    this.#time = undefined;
    for (const q of this.#keys.values()) {
      q.items = [];
      q.queued = 0;
      q.queuedBytes = 0;
    }
    this.#ring = [];
    this.#queuedBytes = 0;
  }

  #evict(): void {
    const dropped = new Map<string, { count: number; bytes: number }>();
    while (this.#queuedBytes + this.#inFlightData > this.#limits.budgetBytes) {
      // The fullest topic that has more than its newest message gives up its oldest one.
      let victim: KeyQueue | undefined;
      let victimKey = "";
      for (const [k, q] of this.#keys) {
        if (q.items.length < 2) continue;
        if (victim === undefined || q.queuedBytes > victim.queuedBytes) {
          victim = q;
          victimKey = k;
        }
      }
      if (victim === undefined) break;
      const item = victim.items.shift()!;
      victim.queued--;
      victim.queuedBytes -= item.bytes;
      victim.dropped++;
      victim.droppedBytes += item.bytes;
      this.#queuedBytes -= item.bytes;
      const d = dropped.get(victimKey) ?? { count: 0, bytes: 0 };
      d.count++;
      d.bytes += item.bytes;
      dropped.set(victimKey, d);
    }
    for (const [k, d] of dropped) this.#events.onDrop(k, d.count, d.bytes);
  }

  #pump(): void {
    // A sink may call `done` before `send` returns: the loop below then simply goes on.
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      this.#pumpLoop();
    } finally {
      this.#pumping = false;
    }
  }

  /** Whether an item of `bytes` may be handed to the socket now. */
  #fits(bytes: number): boolean {
    return this.#inFlightBytes === 0 || this.#inFlightBytes + bytes <= this.#window;
  }

  #pumpLoop(): void {
    while (!this.#closed) {
      const c = this.#control[0];
      if (c !== undefined) {
        if (!this.#fits(c.bytes)) return;
        this.#control.shift();
        this.#controlBytes -= c.bytes;
        this.#write(c, false);
        continue;
      }
      const t = this.#time;
      if (t !== undefined) {
        if (!this.#fits(t.bytes)) return;
        this.#time = undefined;
        this.#write(t, false);
        continue;
      }
      if (this.#ring.length === 0) return;
      if (this.#ringPos >= this.#ring.length) this.#ringPos = 0;
      const key = this.#ring[this.#ringPos]!;
      const q = this.#keys.get(key)!;
      if (!this.#fits(q.items[0]!.bytes)) return;
      const item = q.items.shift()!;
      q.queued--;
      q.queuedBytes -= item.bytes;
      q.sent++;
      q.sentBytes += item.bytes;
      this.#queuedBytes -= item.bytes;
      if (q.items.length === 0) this.#ring.splice(this.#ringPos, 1);
      else this.#ringPos++;
      this.#write(item, true);
    }
  }

  #write(item: Item, isData: boolean): void {
    this.#inFlightBytes += item.bytes;
    if (isData) this.#inFlightData += item.bytes;
    let called = false;
    this.#sink.send(item.frames, () => {
      if (called) return;
      called = true;
      this.#inFlightBytes -= item.bytes;
      if (isData) this.#inFlightData -= item.bytes;
      this.#pump();
    });
  }
}
