/**
 * What the runner and the worker processes share: the cases, the message tagging, and the messages
 * exchanged over the fork IPC channel.
 */
import { pack } from "msgpackr/pack";
import type { Twist } from "./impl.js";

// ---------------------------------------------------------------------------------------------------
// Cases

export type CaseKind = "throughput" | "roundtrip" | "late-joiner" | "idle-rss";

export interface CaseSpec {
  readonly name: string;
  readonly kind: CaseKind;
  /** Payload size in bytes; for the Twist case, its msgpackr size. */
  readonly payloadBytes: number;
  /** `twist`: the harness sends Twist objects (see {@link Twist}), else opaque byte payloads. */
  readonly message: "bytes" | "twist";
  readonly description: string;
  /** Run only when named in `--cases` (large-frame cases: shared memory against the peers). */
  readonly optional?: boolean;
}

// Tags. Byte payloads carry the tag in byte 0; Twists carry it in linear.x (data messages use a
// non-negative non-integer so msgpackr always encodes an f64 and the size never changes).
export const TAG_DATA = 0;
export const TAG_WARM = 1;
export const TAG_END = 2;
export type Tag = typeof TAG_DATA | typeof TAG_WARM | typeof TAG_END;

const TWIST_X: Record<Tag, number> = { [TAG_DATA]: 0.5, [TAG_WARM]: -1.5, [TAG_END]: -2.5 };

export function makeTwist(tag: Tag): Twist {
  return { linear: { x: TWIST_X[tag], y: 1.25, z: -0.75 }, angular: { x: 0.125, y: -3.5, z: 2.0625 } };
}

export function twistTag(t: Twist): Tag {
  const x = t.linear.x;
  return x >= 0 ? TAG_DATA : x === TWIST_X[TAG_WARM] ? TAG_WARM : TAG_END;
}

export function makePayload(bytes: number, tag: Tag): Uint8Array {
  const p = new Uint8Array(Math.max(1, bytes));
  for (let i = 1; i < p.length; i++) p[i] = i & 0xff;
  p[0] = tag;
  return p;
}

/** msgpackr size of the Twist (the payload of the peers in `throughput-twist`). */
export const TWIST_BYTES = pack(makeTwist(TAG_DATA)).length;

export const CASES: readonly CaseSpec[] = [
  {
    name: "throughput-64",
    kind: "throughput",
    payloadBytes: 64,
    message: "bytes",
    description: "64 B payloads, as fast as the impl allows",
  },
  {
    name: "throughput-4k",
    kind: "throughput",
    payloadBytes: 4096,
    message: "bytes",
    description: "4 KiB payloads",
  },
  {
    name: "throughput-1m",
    kind: "throughput",
    payloadBytes: 1024 * 1024,
    message: "bytes",
    description: "1 MiB payloads",
  },
  {
    name: "throughput-twist",
    kind: "throughput",
    payloadBytes: TWIST_BYTES,
    message: "twist",
    description: "Twist {linear,angular}{x,y,z} f64; peers encode/decode each message with msgpackr",
  },
  {
    name: "roundtrip-64",
    kind: "roundtrip",
    payloadBytes: 64,
    message: "bytes",
    description: "ping-pong, one 64 B message in flight, latency on the sender (hrtime)",
  },
  {
    name: "throughput-8m",
    kind: "throughput",
    payloadBytes: 8 * 1024 * 1024,
    message: "bytes",
    description: "8 MiB payloads (camera frames, point clouds)",
    optional: true,
  },
  ...[4096, 65536, 1024 * 1024, 8 * 1024 * 1024].map((bytes): CaseSpec => ({
    name: `roundtrip-${bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)}m` : `${bytes / 1024}k`}`,
    kind: "roundtrip",
    payloadBytes: bytes,
    message: "bytes",
    description: `ping-pong, one ${bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`} message in flight`,
    optional: true,
  })),
  {
    name: "late-joiner",
    kind: "late-joiner",
    payloadBytes: 64,
    message: "bytes",
    description:
      "time from a new receiver process starting to subscribe to its first message (sender at ~1 kHz)",
  },
  {
    name: "idle-rss",
    kind: "idle-rss",
    payloadBytes: 64,
    message: "bytes",
    description: "RSS of an idle, subscribed receiver process (after gc)",
  },
];

// ---------------------------------------------------------------------------------------------------
// IPC messages

export type Role =
  | "tp-sender"
  | "tp-receiver"
  | "rt-client"
  | "rt-server"
  | "lj-sender"
  | "lj-receiver"
  | "rss-sender"
  | "rss-receiver"
  | "rss-baseline";

export interface InitMsg {
  readonly type: "init";
  readonly role: Role;
  readonly impl: string;
  readonly caseSpec: CaseSpec;
  readonly dir: string;
  readonly channel: string;
  /** Sender endpoint, for receiver roles. */
  readonly endpoint?: string;
  readonly durationMs: number;
  readonly env: Readonly<Record<string, string>>;
}

/** Runner to worker. */
export type ToWorker =
  | InitMsg
  /** Load the impl's modules now, before `init` (a receiver forked while its sender starts up). */
  | { readonly type: "preload"; readonly impl: string }
  /** Senders: send warm-up messages every few ms until `start`/`stop`. */
  | { readonly type: "warmup" }
  /** Senders: start the measurement (tp: send for the duration; lj: publish at ~1 kHz; rt: ping-pong). */
  | { readonly type: "start" }
  /** Senders: stop warm-up or periodic publishing. */
  | { readonly type: "stop" }
  /** rt-client: connect to the pong channel of the rt-server. */
  | { readonly type: "connect"; readonly endpoint: string }
  /** tp-receiver: the sender is done; report once no message arrived for a while. */
  | { readonly type: "drain" }
  /** rss-receiver: settle, gc, measure. */
  | { readonly type: "measure" }
  /** Close the impl objects and exit. */
  | { readonly type: "close" };

export interface ThroughputSent {
  readonly type: "sent";
  readonly sent: number;
  readonly elapsedNs: number;
}

export interface ThroughputReceived {
  readonly type: "received";
  readonly received: number;
  readonly bytes: number;
  /** Data messages received when the last timestamp was taken (the span covers count-1 intervals). */
  readonly spanCount: number;
  /** Nanoseconds from the first data message to the message number spanCount. */
  readonly spanNs: number;
}

export interface RoundtripResult {
  readonly type: "roundtrip";
  readonly count: number;
  readonly elapsedNs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
}

/** Worker to runner. */
export type FromWorker =
  | { readonly type: "ready"; readonly endpoint?: string }
  | { readonly type: "warm" }
  | ThroughputSent
  | ThroughputReceived
  | RoundtripResult
  | { readonly type: "joined"; readonly joinUs: number }
  | { readonly type: "rss"; readonly rssBytes: number }
  | { readonly type: "error"; readonly message: string };
