/**
 * A carrier loaded on first use: a {@link Transport} whose module (and the libraries it needs, such
 * as zeromq.js with its native addon and I/O threads) is imported by the first `listen` or
 * `connect`, so a process that never uses that carrier does not load it. `listen` waits for the
 * load; `connect` returns at once, as every carrier's does: a connection made before the module
 * is loaded keeps what is sent and the handlers it is given, and hands them to the real
 * connection once there (in order). Connections made after the load are the carrier's own, with
 * nothing in between.
 *
 * A carrier that cannot be loaded (a missing native addon) fails `listen` with the loader's
 * error, and a connection reports it through `down`.
 */
import { MyelinError } from "../errors.js";
import { receiveLoop } from "./receive-loop.js";
import type {
  ConnectOptions,
  Connection,
  ConnectionEvents,
  Frames,
  Listener,
  Transport,
  TransportOptions,
} from "./transport.js";

/**
 * A transport named `name` whose implementation `load` imports on first use.
 * @param load imports the carrier's module and returns its transport
 */
export function lazyTransport(name: string, load: () => Promise<Transport>): Transport {
  let loaded: Transport | undefined;
  let loading: Promise<Transport> | undefined;
  const get = (): Promise<Transport> =>
    (loading ??= load().then(
      (t) => (loaded = t),
      (err: unknown) => {
        loading = undefined; // a later use tries again
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `the ${name} carrier could not be loaded (${(err as Error).message}); reinstall myelin's dependencies (npm ci) or choose another carrier`,
          { cause: err },
        );
      },
    ));
  return {
    name,
    async listen(endpoint: string, opts: TransportOptions): Promise<Listener> {
      return (loaded ?? (await get())).listen(endpoint, opts);
    },
    connect(endpoint: string, opts: ConnectOptions): Connection {
      if (loaded !== undefined) return loaded.connect(endpoint, opts);
      return new PendingConnection(endpoint, opts, get());
    },
  };
}

/** A connection made before its carrier was loaded: it becomes the carrier's own once loaded. */
class PendingConnection implements Connection {
  readonly endpoint: string;
  readonly #hwm: number;
  #real: Connection | undefined;
  /** Set once the carrier could not be loaded. */
  #failed = false;
  #closed = false;
  /** Sent before the load, in order. */
  readonly #held: Frames[] = [];
  readonly #listeners: { [E in keyof ConnectionEvents]: ConnectionEvents[E][] } = { up: [], down: [] };
  readonly #ready: Promise<Connection | undefined>;

  constructor(endpoint: string, opts: ConnectOptions, transport: Promise<Transport>) {
    this.endpoint = endpoint;
    this.#hwm = opts.highWaterMark ?? Infinity;
    this.#ready = transport.then(
      (t) => {
        if (this.#closed) return undefined;
        const real = t.connect(endpoint, opts);
        for (const fn of this.#listeners.up) real.on("up", fn);
        for (const fn of this.#listeners.down) real.on("down", fn);
        for (const frames of this.#held.splice(0)) real.send(frames);
        this.#real = real;
        return real;
      },
      (err: unknown) => {
        this.#failed = true;
        this.#held.length = 0;
        if (!this.#closed) for (const fn of this.#listeners.down) fn((err as Error).message);
        return undefined;
      },
    );
  }

  get up(): boolean {
    return this.#real?.up ?? false;
  }

  on<E extends keyof ConnectionEvents>(event: E, fn: ConnectionEvents[E]): void {
    if (this.#real !== undefined) this.#real.on(event, fn);
    else this.#listeners[event].push(fn);
  }

  send(frames: Frames): boolean {
    if (this.#real !== undefined) return this.#real.send(frames);
    if (this.#closed || this.#failed) return false;
    this.#held.push(frames);
    return this.#held.length < this.#hwm;
  }

  get queued(): number {
    return this.#real?.queued ?? this.#held.length;
  }

  async drained(timeoutMs: number): Promise<void> {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const real = await Promise.race([
      this.#ready,
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
    if (real !== undefined) await real.drained(Math.max(0, timeoutMs - (performance.now() - t0)));
  }

  async close(lingerMs: number): Promise<void> {
    if (this.#real !== undefined) return this.#real.close(lingerMs);
    this.#closed = true;
    this.#held.length = 0;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Frames> {
    const real = await this.#ready;
    if (real === undefined) return;
    yield* real;
  }

  /** Push mode when the carrier offers it, else its iterator read the way the receive loop does. */
  async consume(handle: (msg: Frames) => void): Promise<void> {
    const real = await this.#ready;
    if (real === undefined) return;
    if (real.consume !== undefined) return real.consume(handle);
    return receiveLoop(real, handle, () => {});
  }
}
