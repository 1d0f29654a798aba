/**
 * The player behind `myelin play`: publishes the messages of an MCAP file on their topics with the
 * recorded timing (by log time, scaled by `rate`), optionally looping, starting at an offset, on a
 * subset of topics, under other names (`remap`), with a `/clock` topic carrying the recording's time.
 * It can be paused, resumed and stepped one message at a time. A stall (this process or the system
 * busy for more than 50 ms) shifts the rest of the playback rather than bursting to catch up, so the
 * spacing between messages is kept.
 *
 * Each channel is published with the Myelin type its schema names (found in the type registry); a
 * channel whose type is not known here is skipped and reported, never guessed.
 */
import { EventEmitter } from "node:events";
import { DecodeError, MyelinError } from "../errors.js";
import { rosgraph_msgs } from "../msgs/index.js";
import type { Node, Publisher } from "../node/index.js";
import { openBag, type Bag } from "./bag-reader.js";
import { channelEncodingForSchema, type ChannelEncoding } from "./channel-encoding.js";

/** Options of {@link Player}. */
export interface PlayerOptions {
  /** The MCAP file. */
  file: string;
  /** Speed factor: 2 plays twice as fast, 0.5 at half speed (default 1). */
  rate?: number;
  /** Start again from the beginning at the end, until stopped. */
  loop?: boolean;
  /** Skip this many ms from the start of the recording. */
  startOffsetMs?: number;
  /** Play only these topics (recorded names; default every topic). */
  topics?: readonly string[];
  /** Recorded topic name → name to publish on. */
  remap?: ReadonlyMap<string, string>;
  /** Publish the recording's time on `/clock` (`rosgraph_msgs/Clock`) at this many Hz (0: off, the default). */
  clockHz?: number;
}

/** What a player did so far. */
export interface PlayerStats {
  /** Messages published. */
  published: number;
  /** Messages of the file in the played range. */
  total: number;
  /** Position in the recording, ms from its start. */
  positionMs: number;
  /** Length of the recording, ms. */
  durationMs: number;
  /** Loops completed. */
  loops: number;
  paused: boolean;
  /** Channels not played, with the reason. */
  skipped: { topic: string; reason: string }[];
}

/** Events: `message` (after each publish: topic, log time in ns), `skip` (a channel cannot be played), `loop`. */
export interface PlayerEvents {
  message: [{ topic: string; logTime: bigint }];
  skip: [{ topic: string; reason: string }];
  loop: [number];
}

interface Track {
  topic: string;
  enc: ChannelEncoding<unknown>;
  pub: Publisher<unknown>;
}

const DEFAULTS = { rate: 1, loop: false, startOffsetMs: 0, clockHz: 0 };

/** A message later than this (ms) shifts the rest of the playback instead of being caught up. */
const LATE_MS = 50;

/** Plays an MCAP file into the running system; see the module comment. */
export class Player extends EventEmitter<PlayerEvents> {
  readonly #node: Node;
  readonly #opts: PlayerOptions & typeof DEFAULTS;
  #bag: Bag | undefined;
  readonly #tracks = new Map<number, Track | null>();
  readonly #skipped: { topic: string; reason: string }[] = [];
  #clock: Publisher<{ clock: { sec: number; nanosec: number } }> | undefined;
  #published = 0;
  #total = 0;
  #loops = 0;
  #startNs = 0n;
  #endNs = 0n;
  #positionNs = 0n;
  #paused = false;
  #resume: (() => void) | undefined;
  #steps = 0;
  #stopped = false;
  #wake: (() => void) | undefined;
  /** Wall-clock ms at which recording time `#anchorNs` is (was) played. */
  #anchorWall = 0;
  #anchorNs = 0n;

  constructor(node: Node, options: PlayerOptions) {
    super();
    const opts = { ...DEFAULTS, ...options };
    if (!(opts.rate > 0) || !Number.isFinite(opts.rate)) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `rate must be a positive number, got ${opts.rate}`);
    }
    if (!(opts.startOffsetMs >= 0)) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `start offset must be ≥ 0 ms, got ${opts.startOffsetMs}`);
    }
    if (!(opts.clockHz >= 0) || opts.clockHz > 1000) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `clock rate must be 0..1000 Hz, got ${opts.clockHz}`);
    }
    this.#node = node;
    this.#opts = opts;
  }

  /**
   * Opens the file and creates a publisher per played channel. Call before `run()`.
   * @throws DecodeError ERR_DECODE if the file is not a valid MCAP file (see `openBag`).
   * @throws MyelinError ERR_INVALID_ARGUMENT if `topics` names a topic the file does not have.
   */
  async open(): Promise<void> {
    const bag = await openBag(this.#opts.file);
    this.#bag = bag;
    const r = bag.reader;
    const stats = r.statistics;
    this.#startNs = stats?.messageStartTime ?? 0n;
    this.#endNs = stats?.messageEndTime ?? 0n;
    const recorded = new Set([...r.channelsById.values()].map((c) => c.topic));
    for (const t of this.#opts.topics ?? []) {
      if (!recorded.has(t)) {
        await bag.close();
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `${this.#opts.file} has no topic ${t}; it has ${[...recorded].sort().join(", ") || "no topics"}`,
        );
      }
    }
    for (const ch of r.channelsById.values()) {
      if (this.#opts.topics !== undefined && !this.#opts.topics.includes(ch.topic)) continue;
      const schema = r.schemasById.get(ch.schemaId);
      let enc: ChannelEncoding<unknown>;
      try {
        enc = channelEncodingForSchema({
          schemaName: schema?.name ?? "",
          schemaEncoding: schema?.encoding ?? "",
          messageEncoding: ch.messageEncoding,
        });
      } catch (err) {
        this.#skip(ch.id, ch.topic, (err as Error).message);
        continue;
      }
      const topic = this.#opts.remap?.get(ch.topic) ?? ch.topic;
      try {
        const pub = await this.#node.createPublisher(topic, enc.type, {
          validate: false,
        });
        this.#tracks.set(ch.id, { topic, enc, pub });
      } catch (err) {
        this.#skip(ch.id, ch.topic, (err as Error).message);
      }
    }
    if (this.#opts.clockHz > 0) this.#clock = await this.#node.createPublisher("/clock", rosgraph_msgs.Clock);
  }

  #skip(channel: number, topic: string, reason: string): void {
    this.#tracks.set(channel, null);
    this.#skipped.push({ topic, reason });
    this.emit("skip", { topic, reason });
  }

  /** The publishers, by the topic they publish on (after remapping). */
  get publishers(): Publisher<unknown>[] {
    return [...this.#tracks.values()].filter((t): t is Track => t !== null).map((t) => t.pub);
  }

  /**
   * Waits until every subscriber the graph shows for a played topic is connected to its publisher, so
   * that none misses the first messages; gives up quietly after `timeoutMs`. Returns how many were
   * expected and how many connected.
   */
  async waitForSubscribers(timeoutMs: number): Promise<{ expected: number; connected: number }> {
    const deadline = Date.now() + timeoutMs;
    const g = await this.#node.queryGraph();
    let expected = 0;
    let connected = 0;
    for (const t of this.#tracks.values()) {
      if (t === null) continue;
      let n = 0;
      for (const node of g.nodes)
        for (const s of node.subs) if (s.topic === t.topic && s.type === t.enc.type.name) n++;
      expected += n;
      try {
        await t.pub.waitForSubscribers(n, Math.max(1, deadline - Date.now()));
      } catch {
        // timed out: play anyway, the count says who was missing
      }
      connected += Math.min(n, t.pub.subscriberCount);
    }
    return { expected, connected };
  }

  /** Counters so far. */
  stats(): PlayerStats {
    return {
      published: this.#published,
      total: this.#total,
      positionMs: Number(this.#positionNs - this.#startNs) / 1e6,
      durationMs: Number(this.#endNs - this.#startNs) / 1e6,
      loops: this.#loops,
      paused: this.#paused,
      skipped: [...this.#skipped],
    };
  }

  /** Pauses publishing (the position is kept). */
  pause(): void {
    this.#paused = true;
  }

  /** Resumes after `pause()`: the remaining messages keep their spacing. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#resume?.();
  }

  /** While paused: publishes the next message at once. */
  step(): void {
    if (!this.#paused) return;
    this.#steps++;
    this.#resume?.();
  }

  /** True while paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Stops a running `run()` after the message being published. */
  stop(): void {
    this.#stopped = true;
    this.#wake?.();
    this.#resume?.();
  }

  /**
   * Publishes the file's messages with their recorded timing until the end (or forever with `loop`,
   * until `stop()`). Resolves with the counters.
   */
  async run(): Promise<PlayerStats> {
    const bag = this.#bag;
    if (bag === undefined) throw new MyelinError("ERR_INVALID_ARGUMENT", "Player.run() before open()");
    const from = this.#startNs + BigInt(Math.round(this.#opts.startOffsetMs * 1e6));
    const topics = [...this.#tracks.entries()].filter(([, t]) => t !== null);
    if (topics.length === 0) return this.stats();
    const channelTopics = [...new Set(topics.map(([id]) => bag.reader.channelsById.get(id)!.topic))];
    let lastClockWall = -Infinity;
    try {
      await this.#play(
        bag,
        from,
        channelTopics,
        () => lastClockWall,
        (t) => (lastClockWall = t),
      );
    } catch (err) {
      if (err instanceof MyelinError) throw err;
      throw new DecodeError(
        "ERR_DECODE",
        `${this.#opts.file} could not be read after ${this.#published} messages: ${(err as Error).message}; ` +
          `\`myelin bag repair ${this.#opts.file}\` keeps what is intact`,
        { cause: err },
      );
    }
    return this.stats();
  }

  async #play(
    bag: Bag,
    from: bigint,
    channelTopics: string[],
    lastClock: () => number,
    setLastClock: (t: number) => void,
  ): Promise<void> {
    do {
      this.#anchorWall = performance.now();
      this.#anchorNs = from;
      for await (const m of bag.reader.readMessages({ topics: channelTopics, startTime: from })) {
        if (this.#stopped) break;
        const track = this.#tracks.get(m.channelId);
        if (track === undefined || track === null) continue;
        this.#total++;
        await this.#waitUntil(m.logTime);
        if (this.#stopped) break;
        this.#positionNs = m.logTime;
        if (this.#clock !== undefined && performance.now() - lastClock() >= 1000 / this.#opts.clockHz) {
          setLastClock(performance.now());
          const ns = m.logTime;
          await this.#clock.publish({
            clock: { sec: Number(ns / 1_000_000_000n), nanosec: Number(ns % 1_000_000_000n) },
          });
        }
        await track.pub.publish(track.enc.decode(m.data));
        this.#published++;
        this.emit("message", { topic: track.topic, logTime: m.logTime });
      }
      if (this.#stopped || !this.#opts.loop) break;
      this.#loops++;
      this.emit("loop", this.#loops);
    } while (!this.#stopped);
  }

  /** Waits until recording time `ns` is due (rate-scaled), honouring pause and step. */
  async #waitUntil(ns: bigint): Promise<void> {
    if (this.#paused) {
      if (this.#steps > 0) this.#steps--;
      else {
        await new Promise<void>((resolve) => (this.#resume = resolve));
        this.#resume = undefined;
        if (this.#steps > 0) this.#steps--;
      }
      // Stepping or resuming: this message is due now, and the ones after keep their spacing.
      this.#anchorWall = performance.now();
      this.#anchorNs = ns;
      return;
    }
    const due = this.#anchorWall + Number(ns - this.#anchorNs) / 1e6 / this.#opts.rate;
    const wait = due - performance.now();
    if (wait < -LATE_MS) {
      // Late by more than LATE_MS (a stall of this process or of a subscriber): the rest of the
      // recording shifts by as much, keeping its spacing, rather than bursting to catch up.
      this.#anchorWall = performance.now();
      this.#anchorNs = ns;
      return;
    }
    if (wait <= 0.5) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, wait);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.#wake = done;
    });
    this.#wake = undefined;
    // Paused while waiting: wait for resume or step now.
    if (this.#paused && !this.#stopped) await this.#waitUntil(ns);
  }

  /** Closes the file and the publishers. */
  async close(): Promise<void> {
    this.stop();
    for (const t of this.#tracks.values()) t?.pub.close();
    this.#clock?.close();
    await this.#bag?.close();
    this.#bag = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
