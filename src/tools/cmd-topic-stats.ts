/**
 * `myelin topic bw|delay`: the bandwidth of a topic and the delay of its messages, reported every
 * second over a window of the last messages, like `ros2 topic bw` and `ros2 topic delay`.
 */
import { encodeFrames } from "../codec/index.js";
import { MyelinError } from "../errors.js";
import type { MessageInfo, Node } from "../node/index.js";
import {
  absName,
  boolOpt,
  numOpt,
  pause,
  strOpt,
  UsageError,
  waitForTopic,
  withNode,
  type CommandSpec,
  type Context,
  type Invocation,
  type OptionSpec,
  type TopicView,
} from "./common.js";
import { toolQos, WAIT_OPTION } from "./cmd-topic.js";

// ---- statistics (pure) -----------------------------------------------------------------------

/** Bandwidth of a topic over a window of messages, like `ros2 topic bw`. */
export interface BandwidthReport {
  topic: string;
  /** Bytes of the messages in the window divided by the time from the first of them to now, in bytes/s. */
  bytesPerSec: number;
  /** Mean, smallest and largest encoded message size in the window, in bytes. */
  mean: number;
  min: number;
  max: number;
  /** Messages in the window. */
  window: number;
  /** Messages received since the start. */
  received: number;
}

/**
 * Computes a BandwidthReport from arrival times `times` (ms, ascending) and encoded `sizes` (bytes)
 * of the messages in the window, at time `now` (ms, same clock). Undefined with no message.
 */
export function bandwidthOf(
  topic: string,
  times: readonly number[],
  sizes: readonly number[],
  now: number,
  received: number,
): BandwidthReport | undefined {
  if (sizes.length === 0 || times.length !== sizes.length) return undefined;
  let total = 0;
  let min = Infinity;
  let max = 0;
  for (const s of sizes) {
    total += s;
    if (s < min) min = s;
    if (s > max) max = s;
  }
  const spanS = Math.max(now - times[0]!, 1) / 1000;
  return {
    topic,
    bytesPerSec: total / spanS,
    mean: total / sizes.length,
    min,
    max,
    window: sizes.length,
    received,
  };
}

/** Delay of a topic's messages over a window, like `ros2 topic delay`. */
export interface DelayReport {
  topic: string;
  /** Mean, smallest and largest delay and its standard deviation, in seconds. */
  mean: number;
  min: number;
  max: number;
  stdDev: number;
  /** Messages in the window. */
  window: number;
  /** Messages received since the start. */
  received: number;
  /** Which stamp the delays were measured from: the messages' header.stamp, the publish time, or both. */
  stamp: "header" | "publish" | "mixed";
}

/** Computes a DelayReport from `delays` (seconds) of the messages in the window. Undefined with none. */
export function delayOf(
  topic: string,
  delays: readonly number[],
  received: number,
  stamp: DelayReport["stamp"],
): DelayReport | undefined {
  if (delays.length === 0) return undefined;
  const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
  const variance = delays.reduce((a, d) => a + (d - mean) ** 2, 0) / delays.length;
  return {
    topic,
    mean,
    min: Math.min(...delays),
    max: Math.max(...delays),
    stdDev: Math.sqrt(variance),
    window: delays.length,
    received,
    stamp,
  };
}

/** `1.27 KB`, `930 B`, `3.45 MB`: a byte count in decimal units, as `ros2 topic bw` prints them. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(2)} ${units[i]}`;
}

/** The message's `header.stamp` (ms since the epoch), or undefined when it has none or a zero one. */
export function headerStampMs(msg: unknown): number | undefined {
  if (typeof msg !== "object" || msg === null) return undefined;
  const header = (msg as { header?: unknown }).header;
  if (typeof header !== "object" || header === null) return undefined;
  const stamp = (header as { stamp?: unknown }).stamp;
  if (typeof stamp !== "object" || stamp === null) return undefined;
  const { sec, nanosec } = stamp as { sec?: unknown; nanosec?: unknown };
  if (typeof sec !== "number" || typeof nanosec !== "number") return undefined;
  if (sec === 0 && nanosec === 0) return undefined;
  return sec * 1000 + nanosec / 1e6;
}

// ---- a windowed, once-a-second report loop ---------------------------------------------------

/** A ring of the last `size` samples (numbers). */
class Ring {
  readonly #a: Float64Array;
  #head = 0;
  #n = 0;

  constructor(size: number) {
    this.#a = new Float64Array(size);
  }

  push(v: number): void {
    this.#a[this.#head] = v;
    this.#head = (this.#head + 1) % this.#a.length;
    if (this.#n < this.#a.length) this.#n++;
  }

  /** The samples, oldest first. */
  values(): number[] {
    const out: number[] = [];
    const len = this.#a.length;
    for (let i = 0; i < this.#n; i++) out.push(this.#a[(this.#head - this.#n + i + len) % len]!);
    return out;
  }
}

/** Options bw and delay share. */
function reportOptions(defaultWindow: number, jsonHelp: string): Record<string, OptionSpec> {
  return {
    window: {
      type: "string",
      short: "w",
      arg: "N",
      help: `compute over the last N messages (default ${defaultWindow})`,
    },
    "count-reports": { type: "string", arg: "N", help: "exit after N reports (default: run until Ctrl-C)" },
    json: { type: "boolean", help: jsonHelp },
    "best-effort": {
      type: "boolean",
      help: "subscribe best-effort (never slows the publisher down; may drop)",
    },
    "wait-ms": WAIT_OPTION,
  };
}

/** What one windowed command does with each message and each report. */
interface Measure {
  /** Takes one message; may throw to end the command (the error is reported). */
  onMessage(msg: unknown, info: MessageInfo, now: number): void;
  /** Prints the report of the window; `fresh` is false when nothing arrived since the last one. */
  report(fresh: boolean, received: number): void;
}

/**
 * Subscribes to the topic of `inv` and calls `measure` for each message, then reports once a second
 * until Ctrl-C or `--count-reports`.
 */
async function runWindowed(
  ctx: Context,
  inv: Invocation,
  cmd: string,
  make: (view: TopicView, node: Node) => Measure,
): Promise<number> {
  const topic = absName(inv.positionals[0]!);
  const reports = numOpt(inv, "count-reports", { min: 1, integer: true, command: cmd }) ?? Infinity;
  const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: cmd }) ?? 5000;
  return withNode(ctx, inv, cmd.replace(" ", "_"), async (node, graph) => {
    const view = await waitForTopic(ctx, node, graph, topic, waitMs);
    const measure = make(view, node);
    let received = 0;
    let lastReported = 0;
    let failure: Error | undefined;
    const stop = new AbortController();
    const signal = AbortSignal.any([ctx.signal, stop.signal]);
    const sub = await node.createSubscription<unknown>(
      topic,
      view.type,
      (msg, info) => {
        if (failure !== undefined) return;
        try {
          measure.onMessage(msg, info, performance.timeOrigin + performance.now());
          received++;
        } catch (err) {
          failure = err as Error;
          stop.abort();
        }
      },
      { qos: toolQos(view, boolOpt(inv, "best-effort")), validate: false },
    );
    sub.on("refused", (err) => {
      failure = err;
      stop.abort();
    });
    let done = 0;
    try {
      while (done < reports && (await pause(1000, signal))) {
        done++;
        measure.report(received !== lastReported, received);
        lastReported = received;
      }
    } finally {
      sub.close();
    }
    if (failure !== undefined) throw failure;
    return 0;
  });
}

// ---- bw --------------------------------------------------------------------------------------

/** The encoded size of a message: as it arrived, else as the wire codec encodes it. */
function sizeOf(msg: unknown, info: MessageInfo): number {
  if (info.bytes !== undefined) return info.bytes;
  let n = 0;
  for (const f of encodeFrames(msg)) n += f.byteLength;
  return n;
}

/** `myelin topic bw TOPIC`: bytes per second and message sizes over a window, once a second. */
export const topicBwCommand: CommandSpec = {
  path: ["topic", "bw"],
  summary: "print the bandwidth of a topic every second (bytes/s, message sizes)",
  args: [{ name: "TOPIC", help: "topic name" }],
  options: reportOptions(
    100,
    'one JSON object per report: {"topic","bytesPerSec","mean","min","max","window","received"} (bytes)',
  ),
  details: [
    "Sizes are those of the encoded messages as they arrive (msgpack, large bytes fields as their own frames),",
    "without transport overhead. The rate is the bytes of the last N messages over the time from the first of them to now.",
    "Units are decimal: 1 KB = 1000 B.",
  ],
  examples: [
    "myelin topic bw /camera/front/image",
    "myelin topic bw /scan --window 50 --count-reports 5 --json",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "topic bw";
    const windowSize = numOpt(inv, "window", { min: 1, integer: true, command: cmd }) ?? 100;
    const json = boolOpt(inv, "json");
    return runWindowed(ctx, inv, cmd, (view) => {
      const times = new Ring(windowSize);
      const sizes = new Ring(windowSize);
      return {
        onMessage(msg, info, now) {
          times.push(now);
          sizes.push(sizeOf(msg, info));
        },
        report(fresh, received) {
          const r = fresh
            ? bandwidthOf(
                view.topic,
                times.values(),
                sizes.values(),
                performance.timeOrigin + performance.now(),
                received,
              )
            : undefined;
          if (json) ctx.out(JSON.stringify(r ?? { topic: view.topic, bytesPerSec: 0, received }));
          else if (r === undefined) ctx.out(received === 0 ? "no messages yet" : "no new messages");
          else {
            ctx.out(`${formatBytes(r.bytesPerSec)}/s from ${r.window} messages`);
            ctx.out(
              `\tMessage size mean: ${formatBytes(r.mean)} min: ${formatBytes(r.min)} max: ${formatBytes(r.max)}`,
            );
          }
        },
      };
    });
  },
};

// ---- delay -----------------------------------------------------------------------------------

/** `myelin topic delay TOPIC`: delay from header.stamp (or publish time) to arrival, once a second. */
export const topicDelayCommand: CommandSpec = {
  path: ["topic", "delay"],
  summary: "print the delay from a message's stamp to its arrival, every second",
  args: [{ name: "TOPIC", help: "topic name" }],
  options: {
    ...reportOptions(
      10000,
      'one JSON object per report: {"topic","mean","min","max","stdDev","window","received","stamp"} (seconds)',
    ),
    stamp: {
      type: "string",
      arg: "FROM",
      help: "measure from: header (the message's header.stamp), publish (the time the publisher sent it), auto (default: header.stamp when set, else the publish time)",
    },
  },
  details: [
    "The delay is the arrival time here minus the stamp, by this host's clock: a publisher on another host",
    "with a clock off by X adds X (a negative delay means its clock is ahead). `myelin doctor` checks the hub's clock.",
  ],
  examples: [
    "myelin topic delay /camera/front/image",
    "myelin topic delay /odom --stamp publish --count-reports 3 --json",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "topic delay";
    const windowSize = numOpt(inv, "window", { min: 1, integer: true, command: cmd }) ?? 10000;
    const from = strOpt(inv, "stamp") ?? "auto";
    if (from !== "auto" && from !== "header" && from !== "publish") {
      throw new UsageError(`${cmd}: --stamp must be auto, header or publish, got '${from}'`, cmd);
    }
    const json = boolOpt(inv, "json");
    return runWindowed(ctx, inv, cmd, (view) => {
      const delays = new Ring(windowSize);
      const kinds = new Ring(windowSize); // 1: header.stamp, 0: publish time
      return {
        onMessage(msg, info, now) {
          const header = from === "publish" ? undefined : headerStampMs(msg);
          if (header === undefined && from === "header") {
            throw new MyelinError(
              "ERR_INVALID_ARGUMENT",
              `messages on ${view.topic} (${view.type}) have no header.stamp (or a zero one); measure from the publish time with --stamp publish`,
            );
          }
          const t = header ?? info.sourceTime.sec * 1000 + info.sourceTime.nanosec / 1e6;
          delays.push((now - t) / 1000);
          kinds.push(header === undefined ? 0 : 1);
        },
        report(fresh, received) {
          const k = kinds.values();
          const headers = k.filter((x) => x === 1).length;
          const stamp = headers === 0 ? "publish" : headers === k.length ? "header" : "mixed";
          const r = fresh ? delayOf(view.topic, delays.values(), received, stamp) : undefined;
          if (json) ctx.out(JSON.stringify(r ?? { topic: view.topic, received }));
          else if (r === undefined) ctx.out(received === 0 ? "no messages yet" : "no new messages");
          else {
            const what =
              stamp === "header"
                ? ""
                : stamp === "publish"
                  ? " (from publish time)"
                  : " (header.stamp and publish time)";
            ctx.out(`average delay: ${r.mean.toFixed(3)}${what}`);
            ctx.out(
              `\tmin: ${r.min.toFixed(3)}s max: ${r.max.toFixed(3)}s std dev: ${r.stdDev.toFixed(5)}s window: ${r.window}`,
            );
          }
        },
      };
    });
  },
};
