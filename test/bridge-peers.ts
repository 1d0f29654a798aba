/**
 * Real brokers for the bridge tests: Mosquitto and nats-server processes started on free ports
 * with their own temporary directories (stopped and restarted on demand), RabbitMQ as the
 * machine's service, and a TCP proxy that can cut a bridge off from a broker it cannot restart.
 * Readiness is awaited on the broker's own log line or answer, never on a sleep.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A temporary directory, removed on dispose. */
export function tempDir(prefix: string): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resolves when `port` on 127.0.0.1 accepts a TCP connection; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: "127.0.0.1" });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end)
      throw new Error(`${what} did not accept connections on port ${port} within ${timeoutMs} ms`);
    // A refused connection comes back at once: give the broker a moment before asking again.
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A broker process that prints a known line when it is ready. */
export class BrokerProcess {
  #child: ChildProcess | undefined;
  readonly #log: string[] = [];

  constructor(
    readonly name: string,
    readonly bin: string,
    readonly args: string[],
    readonly readyLine: RegExp,
  ) {}

  /** Starts the process and resolves when it printed its ready line. */
  start(timeoutMs = 15000): Promise<void> {
    const child = spawn(this.bin, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL"); // never leave a broker behind
        reject(
          new Error(
            `${this.name} not ready within ${timeoutMs} ms; output:\n${this.#log.slice(-20).join("\n")}`,
          ),
        );
      }, timeoutMs);
      const onLine = (l: string): void => {
        this.#log.push(l);
        if (this.#log.length > 200) this.#log.shift();
        if (this.readyLine.test(l)) {
          clearTimeout(timer);
          resolve();
        }
      };
      createInterface({ input: child.stdout }).on("line", onLine);
      createInterface({ input: child.stderr }).on("line", onLine);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${this.bin}: ${err.message}`));
      });
      child.once("exit", (code, sig) => {
        clearTimeout(timer);
        reject(
          new Error(
            `${this.name} exited (${code ?? sig}) before it was ready:\n${this.#log.slice(-20).join("\n")}`,
          ),
        );
      });
    });
  }

  /** Stops the process with `signal` and resolves when it exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10000): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
  }
}

/** A Mosquitto broker on a free port with persistence in a temp dir; restartable on the same port. */
export class Mosquitto {
  readonly #proc: BrokerProcess;
  readonly #tmp: { dir: string; [Symbol.dispose](): void };

  private constructor(
    readonly port: number,
    tmp: { dir: string; [Symbol.dispose](): void },
  ) {
    this.#tmp = tmp;
    const conf = join(tmp.dir, "mosquitto.conf");
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "persistence true",
        `persistence_location ${tmp.dir}/`,
        "log_dest stderr", // unbuffered, unlike stdout into a pipe
        // Stay the user the test runs as (as root, it would switch to `mosquitto` and could not
        // write its persistence file in our temp directory).
        `user ${userInfo().username}`,
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "max_queued_messages 10000",
        "",
      ].join("\n"),
    );
    this.#proc = new BrokerProcess(
      "mosquitto",
      "/usr/sbin/mosquitto",
      ["-c", conf],
      /running|Opening ipv4 listen socket/,
    );
  }

  /** Starts Mosquitto on a free port. */
  static async start(): Promise<Mosquitto> {
    const m = new Mosquitto(await freePort(), tempDir("myelin-mosq-"));
    await m.#proc.start();
    await waitForPort(m.port, 10000, "mosquitto");
    return m;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Stops it (SIGTERM: it saves its sessions and queued messages to the persistence file). */
  stop(): Promise<void> {
    return this.#proc.stop("SIGTERM");
  }

  /** Starts it again on the same port, from its persistence file. */
  async restart(): Promise<void> {
    await this.#proc.start();
    await waitForPort(this.port, 10000, "mosquitto");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#proc.stop("SIGKILL");
    this.#tmp[Symbol.dispose]();
  }
}

/** A nats-server with JetStream (file store in a temp dir) on a free port; restartable on the same port. */
export class NatsServer {
  readonly #proc: BrokerProcess;
  readonly #tmp: { dir: string; [Symbol.dispose](): void };

  private constructor(
    readonly port: number,
    tmp: { dir: string; [Symbol.dispose](): void },
  ) {
    this.#tmp = tmp;
    this.#proc = new BrokerProcess(
      "nats-server",
      "/usr/sbin/nats-server",
      ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", tmp.dir],
      /Server is ready/,
    );
  }

  /** Starts nats-server on a free port. */
  static async start(): Promise<NatsServer> {
    const n = new NatsServer(await freePort(), tempDir("myelin-nats-"));
    await n.#proc.start();
    return n;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  stop(): Promise<void> {
    return this.#proc.stop("SIGTERM");
  }

  async restart(): Promise<void> {
    await this.#proc.start();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#proc.stop("SIGKILL");
    this.#tmp[Symbol.dispose]();
  }
}

/** The machine's RabbitMQ: `amqp://guest:guest@127.0.0.1:5672`; fails with a clear message when it is not running. */
export async function rabbitUrl(): Promise<string> {
  try {
    await waitForPort(5672, 3000, "RabbitMQ");
  } catch {
    throw new Error(
      "RabbitMQ does not answer on 127.0.0.1:5672: the AMQP bridge tests need it. Start it " +
        "(e.g. `sudo service rabbitmq-server start` or `rabbitmq-server -detached`) and run the tests again.",
    );
  }
  return "amqp://guest:guest@127.0.0.1:5672";
}

/**
 * A TCP proxy from a free local port to `target`; `cut()` drops every connection and refuses new
 * ones until `restore()`: a broker outage as the bridge sees it. With `delayMs`, every chunk is
 * forwarded that long after it arrived, in order, each way: a link's latency, which this kernel
 * cannot add (no `sch_netem`).
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #up = true;
  readonly #delayMs: number;

  private constructor(
    readonly port: number,
    server: Server,
    delayMs: number,
  ) {
    this.#server = server;
    this.#delayMs = delayMs;
  }

  static async start(
    targetPort: number,
    targetHost = "127.0.0.1",
    opts: { delayMs?: number } = {},
  ): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const proxy = new TcpProxy((server.address() as { port: number }).port, server, opts.delayMs ?? 0);
    server.on("connection", (client: Socket) => proxy.#accept(client, targetPort, targetHost));
    return proxy;
  }

  #accept(client: Socket, targetPort: number, targetHost: string): void {
    if (!this.#up) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ port: targetPort, host: targetHost });
    this.#sockets.add(client);
    this.#sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    this.#forward(client, upstream);
    this.#forward(upstream, client);
  }

  /** Copies `from` to `to`, each chunk `delayMs` after it arrived; pauses `from` above 4 MiB held. */
  #forward(from: Socket, to: Socket): void {
    const delay = this.#delayMs;
    if (delay === 0) {
      from.pipe(to);
      return;
    }
    const held: { at: number; chunk: Buffer }[] = [];
    let bytes = 0;
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const flush = (): void => {
      timer = undefined;
      const now = performance.now();
      while (held.length > 0 && held[0]!.at <= now) {
        const e = held.shift()!;
        bytes -= e.chunk.length;
        if (!to.destroyed) to.write(e.chunk);
      }
      if (bytes < 4 * 1024 * 1024 && from.isPaused()) from.resume();
      if (held.length > 0) timer = setTimeout(flush, Math.max(1, held[0]!.at - now));
      else if (ended && !to.destroyed) to.end();
    };
    from.on("data", (chunk: Buffer) => {
      held.push({ at: performance.now() + delay, chunk });
      bytes += chunk.length;
      if (bytes >= 4 * 1024 * 1024) from.pause();
      timer ??= setTimeout(flush, delay);
    });
    from.on("end", () => {
      ended = true;
      timer ??= setTimeout(flush, 0);
    });
    from.on("close", () => {
      if (timer !== undefined) clearTimeout(timer);
    });
  }

  /** Drops every connection and refuses new ones. */
  cut(): void {
    this.#up = false;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  /** Accepts connections again. */
  restore(): void {
    this.#up = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
