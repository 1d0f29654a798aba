/**
 * Coalesced PUBLISH writes to one MQTT client's connection, for the gateway's delivery path.
 *
 * aedes writes each delivered packet in its own `setImmediate` through mqtt-packet, which makes
 * five stream writes (and some ten calls of a disabled debug logger, each allocating) per packet
 * and uncorks the stream after each: one `writev` system call per delivery on the broker and one
 * read on the client. With 50 subscribers, a quarter of the gateway's CPU time went to `writev`
 * and a third to collecting the garbage. A {@link PublishWriter} encodes a PUBLISH into one buffer
 * (the payload stays a separate chunk when large), writes it to the corked connection at once, and
 * uncorks once per turn of the event loop: the packets delivered within one turn leave in one
 * `writev`, in order. Each delivery's callback runs after the uncork, as aedes runs it after its
 * write, and only once the connection drained when the write had to be buffered.
 */

/** The part of a connection (net.Socket, TLSSocket, a WebSocket stream) the writer uses. */
interface Connection {
  cork(): void;
  uncork(): void;
  write(chunk: Buffer): boolean;
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
}

/** The aedes client methods the writer calls when the connection must drain or failed. */
interface DrainingClient {
  waitForDrain(cb: (err?: Error | null) => void): void;
  _onError(err: Error): void;
}

/** MQTT's largest remaining length (four length bytes). */
const MAX_REMAINING_LENGTH = 268_435_455;
/** Payloads up to this size are copied behind the header; larger ones are written as their own chunk. */
const COPY_PAYLOAD_BYTES = 16 * 1024;

/** Bytes of the remaining-length field for `n`. */
function varIntBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** True if `conn` can be corked and written as a {@link PublishWriter} needs. */
export function canCoalesce(conn: unknown): boolean {
  const c = conn as Partial<Connection> | null | undefined;
  return typeof c?.cork === "function" && typeof c.uncork === "function" && typeof c.write === "function";
}

/** The fields of a PUBLISH the writer encodes (MQTT 3.1.1: no properties). */
export interface PublishFields {
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  /** For QoS 1 and 2. */
  messageId: number;
}

/**
 * Encodes a PUBLISH (MQTT 3.1.1): the fixed header, topic, packet id and, up to 16 KiB, the payload
 * in one buffer; a larger payload is returned as its own chunk, not copied. Undefined if the packet
 * is too large for MQTT (remaining length over 268,435,455 bytes, topic over 65,535).
 */
export function encodePublish(p: PublishFields): { head: Buffer; payload: Buffer | undefined } | undefined {
  const payload = p.payload;
  const payloadBytes = typeof payload === "string" ? Buffer.byteLength(payload) : payload.length;
  const topicBytes = Buffer.byteLength(p.topic);
  const remaining = 2 + topicBytes + (p.qos > 0 ? 2 : 0) + payloadBytes;
  if (remaining > MAX_REMAINING_LENGTH || topicBytes > 65_535) return undefined;
  const copy = payloadBytes <= COPY_PAYLOAD_BYTES;
  const headBytes = 1 + varIntBytes(remaining) + remaining - payloadBytes;
  const buf = Buffer.allocUnsafe(copy ? headBytes + payloadBytes : headBytes);
  buf[0] = 0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0);
  let o = 1;
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buf[o++] = byte;
  } while (n > 0);
  buf[o++] = topicBytes >> 8;
  buf[o++] = topicBytes & 0xff;
  o += buf.write(p.topic, o, "utf8");
  if (p.qos > 0) {
    buf[o++] = p.messageId >> 8;
    buf[o++] = p.messageId & 0xff;
  }
  if (!copy) return { head: buf, payload: typeof payload === "string" ? Buffer.from(payload) : payload };
  if (typeof payload === "string") buf.write(payload, o, "utf8");
  else payload.copy(buf, o);
  return { head: buf, payload: undefined };
}

/** Coalesced PUBLISH writes for one client. */
export class PublishWriter {
  readonly #conn: Connection;
  readonly #client: DrainingClient;
  #callbacks: (() => void)[] = [];
  #scheduled = false;
  readonly #flush = (): void => this.#flushNow();

  /** `conn` must pass {@link canCoalesce}; `client` is the aedes client writing to it. */
  constructor(conn: unknown, client: unknown) {
    this.#conn = conn as Connection;
    this.#client = client as DrainingClient;
  }

  /**
   * Encodes and writes a PUBLISH; `done` runs once it is handed to the operating system (or the
   * connection failed). Returns false, writing nothing, if the packet is too large for MQTT.
   */
  write(p: PublishFields, done: () => void): boolean {
    const e = encodePublish(p);
    if (e === undefined) return false;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#conn.cork();
      setImmediate(this.#flush);
    }
    this.#conn.write(e.head);
    if (e.payload !== undefined) this.#conn.write(e.payload);
    this.#callbacks.push(done);
    return true;
  }

  #flushNow(): void {
    this.#scheduled = false;
    const callbacks = this.#callbacks;
    this.#callbacks = [];
    const conn = this.#conn;
    conn.uncork();
    const all = (): void => {
      for (const cb of callbacks) cb();
    };
    if (conn.writableNeedDrain && !conn.destroyed) {
      // As aedes' own write: wait for the client to read (bounded by its drainTimeout).
      this.#client.waitForDrain((err) => {
        if (err) this.#client._onError(err);
        all();
      });
      return;
    }
    all();
  }
}
