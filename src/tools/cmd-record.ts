/** `myelin record` and `myelin play`: record topics into MCAP files, play them back. */
import { MyelinError } from "../errors.js";
import { openBag } from "../record/bag-reader.js";
import { Player } from "../record/player.js";
import { Recorder, type RecordFrom, type RecorderStats } from "../record/recorder.js";
import type { Compression } from "../record/mcap-file-writer.js";
import {
  absName,
  aborted,
  boolOpt,
  listOpt,
  numOpt,
  strOpt,
  UsageError,
  withNode,
  type CommandSpec,
} from "./common.js";
import { table } from "./format.js";

const MB = 1_000_000;

/** `1 topic`, `2 topics`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `12.3 MB`, `512 kB`, `17 B`. */
export function formatSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= MB) return `${(bytes / MB).toFixed(1)} MB`;
  if (bytes >= 1000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${bytes} B`;
}

/** `1:02:03.4`, `2:03.4`, `3.4 s`. */
export function formatElapsed(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = (s % 60).toFixed(1).padStart(4, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/**
 * A duration: a number of seconds (`90`, `1.5`) or with a unit (`500ms`, `30s`, `10m`, `2h`), in ms.
 * @throws UsageError naming the option
 */
export function parseDuration(text: string, option: string, command: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) {
    throw new UsageError(
      `--${option} must be seconds or a duration like 500ms, 30s, 10m, 2h; got '${text}'`,
      command,
    );
  }
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] ?? "s"]!;
  return n * unit;
}

function regexes(texts: string[], option: string): RegExp[] {
  return texts.map((t) => {
    try {
      return new RegExp(t);
    } catch (err) {
      throw new UsageError(
        `--${option} '${t}' is not a valid regular expression: ${(err as Error).message}`,
        "record",
      );
    }
  });
}

function defaultOutput(d = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `myelin_${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}_${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}.mcap`;
}

/** The summary table of a recording. */
function summaryLines(s: RecorderStats): string[] {
  const secs = Math.max(s.elapsedMs, 1) / 1000;
  const rows = s.topics.map((t) => [
    t.topic,
    t.type,
    String(t.messages),
    formatSize(t.bytes),
    `${(t.messages / secs).toFixed(1)}/s`,
    String(t.dropped + t.lost),
  ]);
  return table(["TOPIC", "TYPE", "MESSAGES", "SIZE", "RATE", "DROPS"], rows);
}

/** The progress block on a terminal: one line overall, one per topic. */
function progressLines(s: RecorderStats, prev: Map<string, { n: number; at: number }>): string[] {
  const now = s.elapsedMs;
  const total = s.topics.reduce((a, t) => a + t.messages, 0);
  const drops = s.topics.reduce((a, t) => a + t.dropped + t.lost, 0);
  const lines = [
    `recording ${formatElapsed(now)}  ${total} msgs  ${formatSize(s.bytes)}  ${s.topics.length} topics` +
      `  queued ${formatSize(s.queuedBytes)}  drops ${drops}${drops > 0 ? " (!)" : ""}`,
  ];
  for (const t of s.topics) {
    const p = prev.get(t.topic);
    const rate = p !== undefined && now > p.at ? ((t.messages - p.n) * 1000) / (now - p.at) : 0;
    prev.set(t.topic, { n: t.messages, at: now });
    const d = t.dropped + t.lost;
    lines.push(
      `  ${t.topic}  ${t.messages} msgs  ${formatSize(t.bytes)}  ${rate.toFixed(1)}/s${d > 0 ? `  drops ${d}` : ""}`,
    );
  }
  return lines;
}

export const recordCommand: CommandSpec = {
  path: ["record"],
  summary: "record topics into an MCAP file (opens in Foxglove and Lichtblick)",
  args: [
    { name: "TOPIC", help: "topics to record (recorded once they appear)", optional: true, variadic: true },
  ],
  options: {
    output: { type: "string", short: "o", arg: "FILE", help: "the file (default myelin_<date>_<time>.mcap)" },
    all: {
      type: "boolean",
      short: "a",
      help: "record every topic (not hidden ones, whose name has a segment starting with _)",
    },
    regex: {
      type: "string",
      short: "e",
      multiple: true,
      arg: "RE",
      help: "record topics matching RE (repeatable)",
    },
    exclude: {
      type: "string",
      short: "x",
      multiple: true,
      arg: "RE",
      help: "do not record topics matching RE (repeatable)",
    },
    compression: { type: "string", arg: "C", help: "chunk compression: zstd (default) or none" },
    "chunk-size": { type: "string", arg: "MB", help: "uncompressed chunk size in MB (default 4)" },
    "split-size": {
      type: "string",
      arg: "MB",
      help: "start a new file (FILE_0.mcap, FILE_1.mcap, …) every MB megabytes",
    },
    "split-duration": {
      type: "string",
      arg: "DUR",
      help: "start a new file every DUR (e.g. 10m, 1h, or seconds)",
    },
    duration: { type: "string", short: "d", arg: "DUR", help: "stop after DUR (default: run until Ctrl-C)" },
    from: {
      type: "string",
      arg: "SEQ",
      help: "record durable topics from the store from sequence SEQ (history included)",
    },
    "from-time": {
      type: "string",
      arg: "TIME",
      help: "record durable topics from the store from TIME (ISO 8601, or ms since the epoch)",
    },
    "max-queue": {
      type: "string",
      arg: "MB",
      help: "drop (and count) messages while MB wait for the recording thread and the disk (default 512)",
    },
    json: { type: "boolean", help: "print the final counters as JSON on stdout" },
  },
  details: [
    "Images, compressed images and point clouds are written as ROS 2 CDR (ros2msg schemas), every other",
    "type as JSON with a JSON Schema: Foxglove and Lichtblick open the file without plugins. Each message",
    "keeps its publish time, its publisher's sequence number and its log (receive) time; the file is",
    "chunked, zstd-compressed and indexed.",
    "The recorder subscribes best-effort and never slows a publisher down. What it cannot keep is counted",
    "per topic: dropped (the recording thread and the disk fell more than --max-queue behind), lost (gaps",
    "in a publisher's sequence) and invalid (payloads that do not decode as the topic's type: messages are",
    "validated on the recording thread, not on the one receiving), printed at the end and written into the",
    "file's myelin.recording metadata.",
    "Ctrl-C or SIGTERM closes a valid, indexed file. A file cut short by kill -9 or a full disk holds every",
    "chunk written before (chunks close at least every second); `myelin bag repair FILE` makes it valid.",
    "With --from or --from-time, the topics are read from the hub's store (durable topics): history first,",
    "then new messages as they are stored; nothing is acknowledged and no consumer is created.",
  ],
  examples: [
    "myelin record -o run.mcap /camera/front/image /detections",
    "myelin record -a -o run.mcap --exclude '^/debug/'",
    "myelin record -e '^/camera/' -o cams.mcap --split-duration 10m",
    "myelin record /orders --from 1 -o orders.mcap --duration 30s   # a durable topic, history included",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "record";
    const topics = inv.positionals.map(absName);
    const compression = (strOpt(inv, "compression") ?? "zstd") as Compression;
    if (compression !== "zstd" && compression !== "none") {
      throw new UsageError(`--compression must be zstd or none, got '${String(compression)}'`, cmd);
    }
    const chunkMb = numOpt(inv, "chunk-size", { min: 0.01, max: 1024, command: cmd }) ?? 4;
    const splitMb = numOpt(inv, "split-size", { min: 1, command: cmd });
    const splitText = strOpt(inv, "split-duration");
    const durationText = strOpt(inv, "duration");
    const maxQueueMb = numOpt(inv, "max-queue", { min: 1, command: cmd }) ?? 512;
    let from: RecordFrom | undefined;
    const fromSeq = numOpt(inv, "from", { min: 1, integer: true, command: cmd });
    const fromTimeText = strOpt(inv, "from-time");
    if (fromSeq !== undefined && fromTimeText !== undefined) {
      throw new UsageError("give --from or --from-time, not both", cmd);
    }
    if (fromSeq !== undefined) from = { seq: fromSeq };
    if (fromTimeText !== undefined) {
      const t = /^\d+$/.test(fromTimeText) ? Number(fromTimeText) : Date.parse(fromTimeText);
      if (!Number.isFinite(t)) {
        throw new UsageError(`--from-time '${fromTimeText}' is neither ISO 8601 nor ms since the epoch`, cmd);
      }
      from = { timeMs: t };
    }
    const output = strOpt(inv, "output") ?? defaultOutput();
    const opts = {
      output,
      topics,
      all: boolOpt(inv, "all"),
      regex: regexes(listOpt(inv, "regex"), "regex"),
      exclude: regexes(listOpt(inv, "exclude"), "exclude"),
      compression,
      chunkBytes: Math.round(chunkMb * MB),
      maxQueueBytes: Math.round(maxQueueMb * MB),
      ...(splitMb !== undefined ? { splitBytes: Math.round(splitMb * MB) } : {}),
      ...(splitText !== undefined ? { splitMs: parseDuration(splitText, "split-duration", cmd) } : {}),
      ...(from !== undefined ? { from } : {}),
    };
    if (topics.length === 0 && !opts.all && opts.regex.length === 0) {
      throw new UsageError("nothing to record: name topics, or give --all (-a) or --regex (-e)", cmd);
    }
    const durationMs = durationText !== undefined ? parseDuration(durationText, "duration", cmd) : undefined;
    return withNode(ctx, inv, "record", async (node) => {
      const rec = new Recorder(node, opts);
      const tty = process.stderr.isTTY === true && !boolOpt(inv, "json");
      // Lines printed on a terminal go above the progress block: clear it, print, redraw at the next tick.
      let drawn = 0;
      const say = (line: string): void => {
        if (!tty) return ctx.err(line);
        process.stderr.write(`${drawn > 0 ? `\x1b[${drawn}A\x1b[J` : "\r\x1b[K"}${line}\n`);
        drawn = 0;
      };
      rec.on("skip", ({ topic, reason }) => say(`myelin: not recording ${topic}: ${reason}`));
      rec.on("error", (err) => say(`myelin: ${err.message}`));
      rec.on("file", (f) => say(`wrote ${f}`));
      if (!tty)
        rec.on("topic", (t) =>
          ctx.err(`recording ${t.topic} (${t.type}${t.source === "store" ? ", from the store" : ""})`),
        );
      await rec.start();
      ctx.err(
        `recording to ${output}${opts.splitBytes !== undefined || opts.splitMs !== undefined ? " (split into numbered files)" : ""}; Ctrl-C stops`,
      );
      for (const t of topics) {
        const seen = rec.stats().topics.some((x) => x.topic === t);
        if (!seen) ctx.err(`waiting for ${t} to appear…`);
      }
      const prev = new Map<string, { n: number; at: number }>();
      const draw = (): void => {
        const lines = progressLines(rec.stats(), prev);
        let out = drawn > 0 ? `\x1b[${drawn}A` : "";
        for (const l of lines) out += `\r\x1b[K${l.slice(0, (process.stderr.columns || 120) - 1)}\n`;
        process.stderr.write(out);
        drawn = lines.length;
      };
      const timer = tty ? setInterval(draw, 500) : undefined;
      try {
        const stop = [aborted(ctx.signal)];
        if (durationMs !== undefined) {
          stop.push(new Promise((resolve) => setTimeout(resolve, durationMs).unref()));
        }
        await Promise.race(stop);
      } finally {
        clearInterval(timer);
      }
      const s = await rec.stop();
      if (tty && drawn > 0) process.stderr.write(`\x1b[${drawn}A\x1b[J`);
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(s, null, 2));
      } else {
        const total = s.topics.reduce((a, t) => a + t.messages, 0);
        ctx.err(
          `recorded ${plural(total, "message")} on ${plural(s.topics.length, "topic")} in ${formatElapsed(s.elapsedMs)}, ` +
            `${formatSize(s.bytes)} in ${s.files.join(", ")}`,
        );
        for (const l of summaryLines(s)) ctx.err(l);
      }
      const drops = s.topics.reduce((a, t) => a + t.dropped + t.lost, 0);
      if (drops > 0) {
        const which = s.topics
          .filter((t) => t.dropped + t.lost > 0)
          .map((t) => `${t.topic} ${t.dropped} dropped, ${t.lost} lost`)
          .join("; ");
        ctx.err(
          `myelin: some messages were not recorded: ${which} (also in the file's myelin.recording metadata)`,
        );
      }
      return 0;
    });
  },
};

/** `/a:=/b` → ["/a", "/b"]. */
function parseRemap(text: string): [string, string] {
  const i = text.indexOf(":=");
  if (i <= 0 || i === text.length - 2) {
    throw new UsageError(`--remap '${text}' must look like /from:=/to`, "play");
  }
  return [absName(text.slice(0, i)), absName(text.slice(i + 2))];
}

/** Puts the terminal in raw mode and calls `onKey` per key; returns the undo. */
function keyboard(onKey: (key: string) => void): () => void {
  const stdin = process.stdin;
  if (stdin.isTTY !== true) return () => undefined;
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  const listener = (k: string): void => onKey(k);
  stdin.on("data", listener);
  return () => {
    stdin.off("data", listener);
    stdin.setRawMode(false);
    stdin.pause();
  };
}

export const playCommand: CommandSpec = {
  path: ["play"],
  summary: "publish the messages of an MCAP file with their recorded timing",
  args: [
    {
      name: "FILE",
      help: "an MCAP file (recorded by myelin record, or any with json or ROS 2 cdr channels)",
    },
  ],
  options: {
    rate: { type: "string", short: "r", arg: "R", help: "speed factor: 2 plays twice as fast (default 1)" },
    loop: { type: "boolean", short: "l", help: "start again at the end, until Ctrl-C" },
    start: {
      type: "string",
      short: "s",
      arg: "OFFSET",
      help: "skip OFFSET from the start (seconds, or 500ms, 2m, …)",
    },
    topics: {
      type: "string",
      multiple: true,
      arg: "TOPIC",
      help: "play only these recorded topics (repeatable, or comma-separated)",
    },
    remap: {
      type: "string",
      multiple: true,
      arg: "/a:=/b",
      help: "publish recorded topic /a on /b (repeatable)",
    },
    clock: { type: "boolean", help: "publish the recording's time on /clock (rosgraph_msgs/Clock)" },
    "clock-hz": { type: "string", arg: "HZ", help: "how often /clock is published, in Hz (default 40)" },
    "wait-ms": {
      type: "string",
      arg: "N",
      help: "wait up to N ms for the graph's subscribers to connect before playing (default 2000)",
    },
    quiet: { type: "boolean", short: "q", help: "no progress line" },
  },
  details: [
    "Messages are published in log-time order, spaced as recorded (divided by --rate). Each channel is",
    "published with the Myelin type its schema names; a channel whose type is not known here is skipped",
    "(load its module with --import). Messages keep their header stamps as recorded.",
    "On a terminal: space pauses and resumes, s (or →) publishes one message while paused, q quits.",
  ],
  examples: [
    "myelin play run.mcap",
    "myelin play run.mcap --rate 2 --loop",
    "myelin play run.mcap --topics /camera/front/image --remap /camera/front/image:=/replay/image",
    "myelin play run.mcap --start 30s --clock",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "play";
    const file = inv.positionals[0]!;
    const rate = numOpt(inv, "rate", { min: 0.001, max: 1000, command: cmd }) ?? 1;
    const startText = strOpt(inv, "start");
    const startOffsetMs = startText !== undefined ? parseDuration(startText, "start", cmd) : 0;
    const topicList = listOpt(inv, "topics")
      .flatMap((t) => t.split(","))
      .filter((t) => t !== "")
      .map(absName);
    const remap = new Map(listOpt(inv, "remap").map(parseRemap));
    const clockHz = boolOpt(inv, "clock")
      ? (numOpt(inv, "clock-hz", { min: 0.1, max: 1000, command: cmd }) ?? 40)
      : 0;
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: cmd }) ?? 2000;
    // A bad file is reported as such, before (and whether or not) a hub runs.
    await (await openBag(file)).close();
    return withNode(ctx, inv, "play", async (node) => {
      await using player = new Player(node, {
        file,
        rate,
        loop: boolOpt(inv, "loop"),
        startOffsetMs,
        clockHz,
        remap,
        ...(topicList.length > 0 ? { topics: topicList } : {}),
      });
      player.on("skip", ({ topic, reason }) => ctx.err(`myelin: not playing ${topic}: ${reason}`));
      await player.open();
      if (player.publishers.length === 0) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `nothing to play in ${file}: no channel can be published here`,
        );
      }
      if (waitMs > 0) await player.waitForSubscribers(waitMs);
      const tty = process.stderr.isTTY === true && !boolOpt(inv, "quiet");
      const undoKeys = tty
        ? keyboard((k) => {
            if (k === " ") {
              if (player.paused) player.resume();
              else player.pause();
            } else if (k === "s" || k === "\x1b[C") player.step();
            else if (k === "q" || k === "\x03") player.stop();
          })
        : () => undefined;
      const onAbort = (): void => player.stop();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      const timer = tty
        ? setInterval(() => {
            const s = player.stats();
            process.stderr.write(
              `\r\x1b[K${s.paused ? "[paused] " : "[playing]"} ${formatElapsed(s.positionMs)} / ${formatElapsed(s.durationMs)}` +
                `  ${s.published} msgs${s.loops > 0 ? `  loop ${s.loops}` : ""}  (space: pause, s: step, q: quit)`,
            );
          }, 200)
        : undefined;
      let s;
      try {
        s = await player.run();
      } finally {
        clearInterval(timer);
        undoKeys();
        ctx.signal.removeEventListener("abort", onAbort);
        if (tty) process.stderr.write("\r\x1b[K");
      }
      ctx.err(
        `published ${plural(s.published, "message")} on ${plural(player.publishers.length, "topic")}` +
          `${s.loops > 0 ? ` (${s.loops} loops)` : ""} from ${file}`,
      );
      return 0;
    });
  },
};
