/**
 * The interface every benchmarked implementation (Myelin and its peers) implements.
 *
 * One implementation lives in one file under `bench/impls/`, default-exports an {@link Impl}, and is
 * registered with one line in `bench/impls/index.ts`.
 *
 * How the harness uses an implementation:
 *
 * - In the **runner process**, once per case (before the first run of that case, after the last one):
 *   {@link Impl.unavailable} (skip with a note), then {@link Impl.setup}, whose `env` is merged into the
 *   environment of every worker process of that case, and finally the returned `teardown`. This is where
 *   a broker or hub process is started and stopped (see `impls/nats.ts`).
 * - In **worker processes** (one sender process and one receiver process per run, forked by the runner):
 *   a sender process calls {@link Impl.createSender}, reports {@link Sender.endpoint} to the runner over
 *   the fork IPC channel, and the runner passes it to the receiver process, which calls
 *   {@link Impl.createReceiver} with it. The sender binds/listens/advertises, receivers connect: like a
 *   publisher and its subscribers. A sender may get several receivers over its life (the late-joiner
 *   case connects receivers one after the other), and may have none (messages are then dropped).
 * - A round trip uses two channels: the sender process publishes pings on channel "ping", the receiver
 *   process subscribes to it and publishes each message back on its own sender (channel "pong").
 *
 * The harness tags its messages itself (first payload byte, or `linear.x` of a {@link Twist}) to tell
 * warm-up, data and end markers apart, so an implementation only moves opaque payloads (or Twists).
 */

/** The small typed message of the `throughput-twist` case: geometry_msgs/Twist, all fields f64. */
export interface Twist {
  linear: { x: number; y: number; z: number };
  angular: { x: number; y: number; z: number };
}

/** What the runner gives {@link Impl.setup}. */
export interface SetupContext {
  /** Name of the case about to be measured, e.g. `throughput-64`. */
  readonly caseName: string;
  /**
   * A private temporary directory for this case, removed after teardown. Workers get the same directory
   * as {@link EndpointOptions.dir}.
   */
  readonly dir: string;
  /**
   * Register a child process (a broker, a hub) that the runner must kill if it exits early (error,
   * Ctrl-C, hard timeout) without reaching `teardown`. Teardown should still stop it gracefully.
   */
  track(child: import("node:child_process").ChildProcess): void;
  /** Print a diagnostic line (goes to stderr, prefixed with the impl name). */
  log(message: string): void;
}

/** What {@link Impl.setup} returns. */
export interface SetupResult {
  /** Extra environment variables for every worker process of this case (e.g. a broker URL). */
  readonly env?: Readonly<Record<string, string>>;
  /** Called once after the last run of the case, also when a run failed. Must not throw. */
  readonly teardown?: () => Promise<void>;
}

/** Options common to {@link Impl.createSender} and {@link Impl.createReceiver}. */
export interface EndpointOptions {
  /**
   * A logical channel name, unique within the case, safe as a file name, topic or subject
   * (`[a-z0-9-]`), e.g. `r0-data`, `r1-ping`, `r1-pong`.
   */
  readonly channel: string;
  /** The case's private temporary directory (short path, suitable for Unix/ipc:// socket files). */
  readonly dir: string;
  /**
   * Payload size of the case in bytes (for `throughput-twist`: the msgpackr size of the Twist). An impl
   * may use it to size buffers or limits; it must still accept any size.
   */
  readonly payloadBytes: number;
  /** The `env` returned by {@link Impl.setup} (also present in `process.env`). Empty without setup. */
  readonly env: Readonly<Record<string, string>>;
}

/** Options of {@link Impl.createReceiver}. */
export interface ReceiverOptions extends EndpointOptions {
  /** The {@link Sender.endpoint} of the sender to receive from. */
  readonly endpoint: string;
}

/** The publishing side, created in a worker process. */
export interface Sender {
  /**
   * Opaque string a receiver needs to connect to this sender: a socket path, an `ipc://` URL, a
   * subject, a topic name. Sent to the receiver process as-is over the IPC channel.
   */
  readonly endpoint: string;
  /**
   * Send one message to every connected receiver. Return `undefined` when the message was accepted
   * synchronously, or a promise when the caller must wait before the next send (backpressure, or an
   * API that is awaited per message). The harness never sends again before that promise settles.
   *
   * The harness does not modify `payload` after the call, so an impl may keep a reference to it instead
   * of copying it (the same payload object is sent many times).
   */
  send(payload: Uint8Array): void | Promise<void>;
  /**
   * Optional typed send for the `throughput-twist` case. Without it the harness encodes the Twist with
   * msgpackr (`pack`) for every message and calls {@link send}.
   */
  sendTwist?(msg: Twist): void | Promise<void>;
  /** Resolve when everything sent so far has been handed to the OS/transport (best effort for lossy impls). */
  flush(): Promise<void>;
  /** Release sockets and connections. Called once, after all receivers are done. */
  close(): Promise<void>;
}

/** The subscribing side, created in a worker process. */
export interface Receiver {
  /**
   * Set the message callback (called once, synchronously right after `createReceiver` resolves, so an
   * impl that dispatches from I/O events loses nothing). `payload` may be a view into a buffer the impl
   * reuses: it is valid only during the callback (the harness copies it when it keeps it).
   */
  onMessage(cb: (payload: Uint8Array) => void): void;
  /**
   * Optional typed receive for the `throughput-twist` case. When present the harness calls this instead
   * of {@link onMessage} for that case; without it the harness decodes each payload with msgpackr.
   */
  onTwist?(cb: (msg: Twist) => void): void;
  /** Unsubscribe and release sockets and connections. */
  close(): Promise<void>;
}

/** One benchmarked implementation. Default-export an object of this type from `bench/impls/<name>.ts`. */
export interface Impl {
  /** Name used in `--impls`, the table and the JSON (e.g. `zeromq`). */
  readonly name: string;
  /** One line describing what is measured (printed under the table). */
  readonly description: string;
  /**
   * Runner process: return a reason to skip this impl (e.g. a missing server binary), or `undefined`
   * when it can run. Skipped impls are listed under the table and left out of the JSON.
   */
  unavailable?(): Promise<string | undefined>;
  /** Runner process: per-case setup (start a broker/hub). See {@link SetupResult}. */
  setup?(ctx: SetupContext): Promise<SetupResult>;
  /** Worker process: create a sender that receivers can reach through its `endpoint`. */
  createSender(opts: EndpointOptions): Promise<Sender>;
  /**
   * Worker process: create a receiver connected to `opts.endpoint`. Resolve once it is connected and
   * subscribed as far as the impl can tell; the harness still warms up (sends until the first message
   * arrives) before it measures.
   */
  createReceiver(opts: ReceiverOptions): Promise<Receiver>;
}
