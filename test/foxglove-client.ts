/**
 * Clients of the hub's Foxglove server for tests: `@foxglove/ws-protocol`'s FoxgloveClient over a
 * `ws` WebSocket, with every event recorded and waited on (with a timeout), and a raw WebSocket
 * client that does the handshake by hand and can stop reading its socket, to play a client that
 * never reads.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import wsProtocol from "@foxglove/ws-protocol";
import type {
  Channel,
  ConnectionGraphUpdate,
  MessageData,
  ParameterValues,
  Service,
  ServiceCallFailure,
  ServiceCallResponse,
  StatusMessage,
} from "@foxglove/ws-protocol";
import { WebSocket, type ClientOptions } from "ws";

const { FoxgloveClient } = wsProtocol;

/** Everything a client was sent, by kind, in order. */
export interface Received {
  channels: Map<number, Channel>;
  services: Map<number, Service>;
  statuses: StatusMessage[];
  messages: MessageData[];
  parameterValues: ParameterValues[];
  graphs: ConnectionGraphUpdate[];
  responses: ServiceCallResponse[];
  failures: ServiceCallFailure[];
  times: bigint[];
}

/** A FoxgloveClient whose events are kept and can be waited on. */
export class TestClient {
  readonly ws: WebSocket;
  readonly client: InstanceType<typeof FoxgloveClient>;
  readonly got: Received = {
    channels: new Map(),
    services: new Map(),
    statuses: [],
    messages: [],
    parameterValues: [],
    graphs: [],
    responses: [],
    failures: [],
    times: [],
  };
  /** Arrival time (Date.now) of each message, index for index with `got.messages`. */
  readonly arrivals: number[] = [];
  #listeners = new Set<() => void>();
  closed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.client = new FoxgloveClient({ ws: ws as never });
    const c = this.client;
    c.on("advertise", (chs) => this.#add(() => chs.forEach((ch) => this.got.channels.set(ch.id, ch))));
    c.on("unadvertise", (ids) => this.#add(() => ids.forEach((id) => this.got.channels.delete(id))));
    c.on("advertiseServices", (ss) => this.#add(() => ss.forEach((s) => this.got.services.set(s.id, s))));
    c.on("unadvertiseServices", (ids) => this.#add(() => ids.forEach((id) => this.got.services.delete(id))));
    c.on("status", (s) => this.#add(() => this.got.statuses.push(s)));
    c.on("message", (m) =>
      this.#add(() => {
        this.got.messages.push(m);
        this.arrivals.push(Date.now());
      }),
    );
    c.on("parameterValues", (p) => this.#add(() => this.got.parameterValues.push(p)));
    c.on("connectionGraphUpdate", (g) => this.#add(() => this.got.graphs.push(g)));
    c.on("serviceCallResponse", (r) => this.#add(() => this.got.responses.push(r)));
    c.on("serviceCallFailure", (f) => this.#add(() => this.got.failures.push(f)));
    c.on("time", (t) => this.#add(() => this.got.times.push(t.timestamp)));
    c.on("close", () => this.#add(() => (this.closed = true)));
  }

  /** Connects with `subprotocol` to `url` (with its query) and waits for the connection to open. */
  static connect(url: string, subprotocol: string, timeoutMs = 10000): Promise<TestClient> {
    return TestClient.attach(new WebSocket(url, [subprotocol]), timeoutMs);
  }

  /** A client on `ws` (e.g. made with TLS options), once the connection is open. */
  static async attach(ws: WebSocket, timeoutMs = 10000): Promise<TestClient> {
    const url = ws.url;
    const c = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no connection to ${url} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      ws.once("open", () => (clearTimeout(timer), resolve()));
      ws.once("error", (err) => (clearTimeout(timer), reject(err)));
    });
    return c;
  }

  #add(f: () => void): void {
    f();
    for (const l of [...this.#listeners]) l();
  }

  /** Resolves with `pred`'s first non-undefined value, checked now and after each event; rejects after `timeoutMs`. */
  until<T>(pred: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const v = pred();
        if (v === undefined) return false;
        done();
        resolve(v);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; statuses: ${JSON.stringify(this.got.statuses.slice(-3))}`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = (): void => void check();
      if (!check()) this.#listeners.add(listener);
    });
  }

  /** The advertised channel of `topic`, waited for. */
  channel(topic: string, timeoutMs = 10000): Promise<Channel> {
    return this.until(
      () => [...this.got.channels.values()].find((c) => c.topic === topic),
      timeoutMs,
      `channel ${topic}`,
    );
  }

  /** The advertised service `name`, waited for. */
  service(name: string, timeoutMs = 10000): Promise<Service> {
    return this.until(
      () => [...this.got.services.values()].find((s) => s.name === name),
      timeoutMs,
      `service ${name}`,
    );
  }

  /** Messages of subscription `subId` received so far. */
  messagesOf(subId: number): MessageData[] {
    return this.got.messages.filter((m) => m.subscriptionId === subId);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** What the server answered to an upgrade it refused. */
export async function refusal(
  url: string,
  protocols: string[],
  opts: ClientOptions = {},
): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(url, protocols, opts);
  return new Promise((resolve, reject) => {
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on("open", () => {
      ws.terminate();
      reject(new Error(`${url} accepted the connection`));
    });
    ws.on("error", () => {});
  });
}

/** One WebSocket frame as a client sends it (masked). */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.alloc(4);
  if (len >= 126) {
    if (len > 0xffff) throw new Error("test frames stay under 64 KiB");
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  }
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([head, mask, masked]);
}

/**
 * A WebSocket client written by hand on a TCP socket: it can subscribe, then stop reading (its
 * socket paused: the server's writes back up into the kernel and then into its outbox), and
 * later read again and parse what the server sent (text frames only).
 */
export class RawClient {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  readonly texts: Record<string, unknown>[] = [];
  #listeners = new Set<() => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Connects to `path` (with its query) on `port` with `subprotocol`; resolves after the 101 response. */
  static async connect(port: number, path: string, subprotocol: string): Promise<RawClient> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Protocol: ${subprotocol}\r\n\r\n`,
    );
    const c = new RawClient(socket);
    const head = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no upgrade response within 10 s")), 10000);
      const onData = (d: Buffer): void => {
        c.#buf = Buffer.concat([c.#buf, d]);
        const end = c.#buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        clearTimeout(timer);
        socket.off("data", onData);
        const h = c.#buf.subarray(0, end).toString("latin1");
        c.#buf = c.#buf.subarray(end + 4);
        resolve(h);
      };
      socket.on("data", onData);
    });
    if (!head.startsWith("HTTP/1.1 101")) throw new Error(`upgrade refused: ${head}`);
    socket.pause();
    return c;
  }

  /** Sends a JSON op. */
  send(op: Record<string, unknown>): void {
    this.socket.write(clientFrame(0x1, Buffer.from(JSON.stringify(op))));
  }

  /** Starts reading again; text frames go to `texts`. */
  read(): void {
    this.socket.on("data", (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#parse();
    });
    this.#parse();
    this.socket.resume();
  }

  #parse(): void {
    for (;;) {
      if (this.#buf.length < 2) return;
      const opcode = this.#buf[0]! & 0x0f;
      let len = this.#buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.#buf.length < 4) return;
        len = this.#buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.#buf.length < 10) return;
        len = Number(this.#buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.#buf.length < off + len) return;
      const payload = this.#buf.subarray(off, off + len);
      this.#buf = this.#buf.subarray(off + len);
      if (opcode === 0x1) this.texts.push(JSON.parse(payload.toString("utf8")) as Record<string, unknown>);
      for (const l of [...this.#listeners]) l();
    }
  }

  /** Resolves with the first text op matching `pred`; rejects after `timeoutMs`. */
  waitText(
    pred: (m: Record<string, unknown>) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.texts.find(pred);
        if (hit === undefined) return false;
        done();
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.texts.length} text messages`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = (): void => void check();
      if (!check()) this.#listeners.add(listener);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
