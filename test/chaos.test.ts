/**
 * Chaos suite: "nothing acknowledged is ever lost". The hub (the `myelin hub` CLI process) is
 * killed with SIGKILL at random moments, several rounds per scenario, and restarted on the same
 * runtime and data directories, while it
 *
 * 1. confirms persistent publishes (a fixture process publishing to a durable topic) and
 * 2. serves a durable consumer (a fixture process acking every message);
 * 3. carries MQTT QoS 1 and QoS 2 publishes through its gateway to persistent subscribers;
 * 4. bridges a Myelin topic to a Mosquitto the test starts, through the bridge's offline queue
 *    (the link to the broker is cut at random moments too).
 *
 * After every round and at the end it counts that nothing confirmed is lost: every confirmed
 * publish is in the store and reaches the consumer; every PUBACK'd / PUBCOMP'd MQTT message
 * reaches every persistent subscriber; every message the bridge accepted into its queue reaches
 * the broker. Duplicates (at least once) are allowed, counted and reported.
 *
 * The kill delays come from a seeded PRNG: the seed is printed (diagnostics, and in every failure
 * message). `MYELIN_CHAOS_SEED=N` replays a run, `MYELIN_CHAOS_ROUNDS=N` changes the number of
 * kill/restart rounds per scenario (default 4). Apart from the seeded kill delays (and load
 * pacing of the publishers), everything waits on events, with timeouts.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import mqtt, { Store, type MqttClient } from "mqtt";
import { msgpackCodec } from "../src/codec/index.js";
import { fetchBridgeStatus } from "../src/gateway/bridge-protocol.js";
import type { BridgeStatus } from "../src/gateway/bridge.js";
import { OfflineQueue } from "../src/gateway/offline-queue.js";
import { myelin_msgs, std_msgs } from "../src/msgs/index.js";
import { DurableLog } from "../src/store/log.js";
import { createNode } from "../src/node/index.js";
import { freePort, Mosquitto, TcpProxy } from "./bridge-peers.js";
import { fixture, tempRuntime } from "./helpers.js";
import { CLI } from "./mqtt-hub.js";

// ---- seed, rounds, kill delays ----------------------------------------------------------------

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error(`${name} must be a non-negative integer, got '${v}'`);
  return n;
}

const SEED = envInt("MYELIN_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 32);
const ROUNDS = Math.max(1, envInt("MYELIN_CHAOS_ROUNDS") ?? 4);
/** A kill comes this long (uniform, ms) after the round began. */
const KILL_MIN_MS = 200;
const KILL_MAX_MS = 2200;
/** Some rounds, the restarted hub is killed again this long (uniform, ms) after it was ready: in recovery. */
const RECOVERY_KILL_P = 0.35;
const RECOVERY_KILL_MIN_MS = 20;
const RECOVERY_KILL_MAX_MS = 700;
/** How long a round may take to show that what was confirmed came through. */
const RECOVERY_MS = 30000;

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The random choices of one scenario. */
interface Plan {
  /** Uniform in [0, 1). */
  rng(): number;
  /** When the round's kill comes, in ms after the round began. */
  killDelay(): number;
  /** Whether the restarted hub is killed again while it recovers, and when (ms after it was ready). */
  recoveryKill(): number | undefined;
}

/**
 * Runs one scenario (numbered as in the module comment) with its own PRNG, derived from the seed,
 * so that each can be replayed alone; prints what it counted, and a failure names the seed.
 */
async function chaos(t: TestContext, scenario: number, body: (plan: Plan) => Promise<string>): Promise<void> {
  const rng = prng(SEED ^ Math.imul(scenario, 0x9e3779b9));
  const between = (a: number, b: number): number => Math.round(a + rng() * (b - a));
  const plan: Plan = {
    rng,
    killDelay: () => between(KILL_MIN_MS, KILL_MAX_MS),
    recoveryKill: () =>
      rng() < RECOVERY_KILL_P ? between(RECOVERY_KILL_MIN_MS, RECOVERY_KILL_MAX_MS) : undefined,
  };
  t.diagnostic(`chaos seed ${SEED}, ${ROUNDS} rounds (MYELIN_CHAOS_SEED / MYELIN_CHAOS_ROUNDS to change)`);
  try {
    t.diagnostic(await body(plan));
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    e.message += `\n[chaos seed ${SEED}, ${ROUNDS} rounds: replay with MYELIN_CHAOS_SEED=${SEED} MYELIN_CHAOS_ROUNDS=${ROUNDS}]`;
    throw e;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Up to `n` items of `xs`, for error messages. */
function some(xs: Iterable<string>, n = 8): string {
  const all = [...xs];
  return all.slice(0, n).join(", ") + (all.length > n ? `, … (${all.length} in all)` : "");
}

// ---- waiting on events ------------------------------------------------------------------------

/** Something changed (a line from a process, an MQTT message): waiters check their condition. */
class Events {
  readonly #waiters = new Set<() => void>();

  notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves when `cond()` holds at a notification (or at once); rejects after `timeoutMs`. */
  until(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      const check = (): void => {
        let ok: boolean;
        try {
          ok = cond();
        } catch (err) {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (ok) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }
}

/** Removes from `want` what `have` holds; true once nothing is left (cheap to call repeatedly). */
function allIn(want: Set<string>, have: { has(id: string): boolean }): boolean {
  for (const id of want) if (have.has(id)) want.delete(id);
  return want.size === 0;
}

// ---- processes --------------------------------------------------------------------------------

/** Every child still running: killed when this process exits, whatever happened. */
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

/** A Node.js child process whose stdout lines go to `onLine`; killed on dispose. */
class Child {
  readonly child: ChildProcess;
  readonly stderr: string[] = [];
  readonly closed: Promise<void>;
  exited = false;

  constructor(script: string, args: string[], env: Record<string, string>, onLine: (l: string) => void) {
    const e: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete e["MYELIN_HUB"];
    this.child = spawn(process.execPath, [script, ...args], { env: e, stdio: ["ignore", "pipe", "pipe"] });
    createInterface({ input: this.child.stdout! }).on("line", onLine);
    createInterface({ input: this.child.stderr! }).on("line", (l) => {
      this.stderr.push(l);
      if (this.stderr.length > 200) this.stderr.shift();
    });
    running.add(this.child);
    this.child.once("exit", () => {
      running.delete(this.child);
      this.exited = true;
      onLine(""); // wakes waiters
    });
    this.closed = new Promise((resolve) => this.child.once("close", () => resolve()));
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`; resolves once it is gone. */
  async stop(timeoutMs = 15000): Promise<void> {
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    await this.closed;
    clearTimeout(timer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.closed;
  }
}

/** The `myelin hub` CLI, killed and restarted on the same runtime and data directories. */
class HubRunner {
  #proc: Child | undefined;
  #life = 0;
  /** Every line of every life, `[life] line`. */
  readonly log: string[] = [];

  constructor(
    readonly args: string[],
    readonly env: Record<string, string>,
    readonly ready: RegExp,
    readonly events: Events,
  ) {}

  /** Starts a hub and resolves once it printed its `ready` line. */
  async start(timeoutMs = 30000): Promise<void> {
    const life = ++this.#life;
    let ready = false;
    const p = new Child(CLI, ["hub", ...this.args], this.env, (l) => {
      if (l !== "") this.log.push(`[${life}] ${l}`);
      if (this.ready.test(l)) ready = true;
      this.events.notify();
    });
    this.#proc = p;
    await this.events
      .until(
        () => ready || p.exited,
        timeoutMs,
        () => `hub life ${life} to be ready`,
      )
      .catch((err: Error) => {
        p.kill("SIGKILL");
        throw err;
      });
    if (!ready) throw new Error(`hub life ${life} exited before it was ready: ${this.tail()}`);
  }

  /** kill -9, and resolves once the process is gone. */
  async kill9(): Promise<void> {
    const p = this.#proc;
    if (p === undefined) return;
    p.kill("SIGKILL");
    await p.closed;
  }

  tail(n = 15): string {
    return [...this.log.slice(-n), ...(this.#proc?.stderr.slice(-10) ?? []).map((l) => `stderr: ${l}`)].join(
      "\n",
    );
  }

  async stop(): Promise<void> {
    await this.#proc?.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#proc?.[Symbol.asyncDispose]();
  }
}

/** A fixture of test/fixtures/chaos-proc.ts; its JSON lines go to `onEvent`. */
function chaosProc(
  args: Record<string, unknown>,
  env: Record<string, string>,
  events: Events,
  onEvent: (l: Record<string, unknown> & { event: string }) => void,
): Child {
  return new Child(fixture("chaos-proc"), [JSON.stringify(args)], env, (line) => {
    if (line.startsWith("{")) onEvent(JSON.parse(line) as Record<string, unknown> & { event: string });
    events.notify();
  });
}

/** Polls `probe` (a remote state with no event to wait on) until `cond` holds; bounded. */
async function pollUntil<T>(
  probe: () => Promise<T>,
  cond: (v: T) => boolean,
  timeoutMs: number,
  what: (last: T | undefined, err: unknown) => string,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await probe();
      if (cond(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what(last, lastErr)}`);
    await sleep(100); // poll interval
  }
}

// ---- 1 + 2: persistent publishes and a durable consumer ---------------------------------------

/** Every record of a durable topic, read from the hub's store with a fresh node: message id → seqs. */
async function readStore(
  runtimeDir: string,
  topic: string,
): Promise<{ ids: Map<string, number[]>; last: number }> {
  await using node = await createNode({ name: "_chaos_reader", runtimeDir });
  if (!(await node.waitForServer("/_store/read", 20000))) throw new Error("the store did not come back");
  const read = node.createClient("/_store/read", myelin_msgs.StoreRead, { timeoutMs: 15000 });
  const ids = new Map<string, number[]>();
  let next = 1;
  for (;;) {
    const r = await read.call({ topic, from_seq: next, from_time_ms: 0, max: 10000 });
    if (r.seqs.length === 0) break;
    for (let i = 0; i < r.seqs.length; i++) {
      const seq = r.seqs[i]!;
      assert.equal(seq, next, `the store's log is contiguous: expected seq ${next}, got ${seq}`);
      next++;
      const id = (msgpackCodec.decode(r.payloads[i]!) as { data: string }).data;
      const seqs = ids.get(id);
      if (seqs === undefined) ids.set(id, [seq]);
      else seqs.push(seq);
    }
  }
  return { ids, last: next - 1 };
}

test(
  "chaos: kill -9 of the hub under confirmed persistent publishes and a durable consumer loses no confirmed message",
  { timeout: 100000 },
  (t) =>
    chaos(t, 1, async (plan) => {
      const TOPIC = "/chaos/orders";
      using rt = tempRuntime();
      const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_DATA_DIR: join(rt.dir, "data") };
      const events = new Events();
      await using hub = new HubRunner([], env, /myelin hub \S+ started/, events);
      await hub.start();

      const confirmed = new Set<string>();
      let publishFailures = 0;
      let pubDone = false;
      const got = new Map<string, number>();
      const acked = new Set<string>();
      let gotAfterAck = 0;
      let ackFailures = 0;
      await using pub = chaosProc({ role: "pub", topic: TOPIC, workers: 4, pauseMs: 5 }, env, events, (l) => {
        if (l.event === "confirmed") confirmed.add(l["id"] as string);
        else if (l.event === "failed") publishFailures++;
        else if (l.event === "done") pubDone = true;
      });
      await using consumer = chaosProc(
        { role: "consume", topic: TOPIC, name: "billing", maxInFlight: 64, ackTimeoutMs: 5000 },
        env,
        events,
        (l) => {
          const id = l["id"] as string;
          if (l.event === "got") {
            got.set(id, (got.get(id) ?? 0) + 1);
            if (acked.has(id)) gotAfterAck++;
          } else if (l.event === "acked") acked.add(id);
          else if (l.event === "ackfail") ackFailures++;
        },
      );
      const procsAlive = (): void => {
        if (pub.exited && !pubDone) throw new Error(`the publisher died: ${pub.stderr.join("\n")}`);
        if (consumer.exited) throw new Error(`the consumer died: ${consumer.stderr.join("\n")}`);
      };
      await events.until(
        () => (procsAlive(), confirmed.size >= 20 && got.size >= 1),
        30000,
        () =>
          `the first confirmed publishes and deliveries (${confirmed.size} confirmed, ${got.size} delivered)`,
      );

      /** Every confirmed publish is in the store now, and reaches the consumer. */
      const check = async (when: string): Promise<{ stored: number; storedTwice: number }> => {
        const snapshot = new Set(confirmed); // before the read: all of these were confirmed already
        const store = await readStore(rt.dir, TOPIC);
        const lost = [...snapshot].filter((id) => !store.ids.has(id));
        assert.deepEqual(
          lost.slice(0, 20),
          [],
          `${when}: ${lost.length} of ${snapshot.size} confirmed persistent publishes are not in the store ` +
            `(last seq ${store.last}): ${some(lost)}\nhub log:\n${hub.tail()}`,
        );
        const want = new Set(snapshot);
        await events.until(
          () => (procsAlive(), allIn(want, got)),
          RECOVERY_MS,
          () =>
            `${when}: the durable consumer to receive ${want.size} more confirmed messages: ${some(want)}`,
        );
        return {
          stored: store.ids.size,
          storedTwice: [...store.ids.values()].filter((s) => s.length > 1).length,
        };
      };

      const kills: string[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        const delay = plan.killDelay();
        const again = plan.recoveryKill();
        kills.push(`${delay} ms${again === undefined ? "" : ` (again ${again} ms after the restart)`}`);
        await sleep(delay); // the seeded kill moment
        await hub.kill9();
        await hub.start();
        if (again !== undefined) {
          await sleep(again); // killed again while it recovers
          await hub.kill9();
          await hub.start();
        }
        const confirmedAtKill = confirmed.size;
        // The publisher goes on against the restarted hub (its publishes wait for the store).
        await events.until(
          () => (procsAlive(), confirmed.size > confirmedAtKill),
          RECOVERY_MS,
          () => `round ${round}: a publish confirmed by the restarted hub`,
        );
        await check(`round ${round} (killed after ${kills[round - 1]})`);
      }

      // The end: the publisher stops (what it has in flight is confirmed or retried), the consumer
      // catches up and the store counts every message acknowledged.
      pub.kill("SIGTERM");
      await events.until(
        () => pubDone || pub.exited,
        30000,
        () => "the publisher to finish",
      );
      assert.ok(pubDone, `the publisher finished: ${pub.stderr.join("\n")}`);
      const final = await check("at the end");
      {
        await using node = await createNode({ name: "_chaos_info", runtimeDir: rt.dir });
        const info = node.createClient("/_store/info", myelin_msgs.StoreInfo, { timeoutMs: 5000 });
        await pollUntil(
          () => info.call({ topic: TOPIC }),
          (r) => {
            const i = r.consumers.indexOf("billing");
            return i >= 0 && r.lags[i] === 0 && r.pending[i] === 0;
          },
          RECOVERY_MS,
          (r, err) =>
            `the durable consumer to have acknowledged everything: ${r === undefined ? String(err) : JSON.stringify({ consumers: r.consumers, lags: r.lags, pending: r.pending })}`,
        );
      }
      await consumer.stop();
      await hub.stop();

      const deliveries = [...got.values()].reduce((a, b) => a + b, 0);
      return (
        `store + durable consumer: ${ROUNDS} rounds, kills at ${kills.join(", ")}; ${confirmed.size} publishes confirmed ` +
        `(${publishFailures} failed attempts, published again with the same id); all ${confirmed.size} in the store ` +
        `(${final.stored} distinct ids stored, ${final.storedTwice} stored twice); the consumer received all of them: ` +
        `${deliveries} deliveries of ${got.size} messages (${deliveries - got.size} duplicates, ${gotAfterAck} after ` +
        `a successful ack; ${ackFailures} acks failed at a kill); 0 lost`
      );
    }),
);

// ---- 3: MQTT QoS 1 and 2 through the gateway, persistent subscribers --------------------------

/** A persistent (clean session false) MQTT subscriber of the gateway, reconnected after each restart. */
class PersistentSub {
  client: MqttClient | undefined;
  /** Kept across connections, so a QoS 2 message PUBREC'd before a restart completes after it. */
  readonly #incoming = new Store({ clean: false });
  readonly count = new Map<string, number>();
  subscribed = false;

  constructor(
    readonly id: string,
    readonly qos: 1 | 2,
    readonly port: number,
    readonly events: Events,
  ) {}

  /** Connects; the first time it subscribes, afterwards the session must still be there. */
  async connect(): Promise<void> {
    const client = mqtt.connect({
      host: "127.0.0.1",
      port: this.port,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10000,
      clientId: this.id,
      clean: false,
      incomingStore: this.#incoming,
    });
    // Before CONNACK: queued messages may come in the same packet as the CONNACK.
    client.on("message", (_topic, payload) => {
      const label = payload.toString();
      this.count.set(label, (this.count.get(label) ?? 0) + 1);
      this.events.notify();
    });
    const present = await new Promise<boolean>((resolve, reject) => {
      client.once("connect", (ack) => resolve(ack.sessionPresent));
      client.once("error", reject);
    }).catch((err: unknown) => {
      client.end(true);
      throw err;
    });
    client.on("error", () => undefined); // a killed hub resets the connection
    this.client = client;
    if (this.subscribed) {
      assert.ok(
        present,
        `the persistent session of ${this.id} survived the restart (CONNACK session present)`,
      );
    } else {
      await client.subscribeAsync("chaos/#", { qos: this.qos });
      this.subscribed = true;
    }
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  async disconnect(force: boolean): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.endAsync(force).catch(() => undefined);
  }

  duplicates(): number {
    let n = 0;
    for (const c of this.count.values()) n += c - 1;
    return n;
  }
}

/**
 * Publishes `<prefix>-<i>` at `qos` with `window` in flight, at most `perSecond` (load pacing: the
 * load, and so the run time, does not grow with the machine's speed), until stopped or
 * disconnected.
 */
function publishLoop(
  client: MqttClient,
  topic: string,
  qos: 1 | 2,
  prefix: string,
  window: number,
  perSecond: number,
  acked: Set<string>,
  events: Events,
): { stop(): void; done: Promise<number> } {
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  let isStopped = false;
  void stopped.then(() => (isStopped = true));
  const closed = new Promise<void>((r) => client.once("close", () => r()));
  const done = (async () => {
    const inflight = new Set<Promise<void>>();
    const start = Date.now();
    let i = 0;
    for (;;) {
      if (isStopped || !client.connected) break;
      if (inflight.size >= window) {
        await Promise.race([...inflight, closed, stopped]);
        continue;
      }
      const due = start + (i * 1000) / perSecond;
      if (due > Date.now()) {
        await Promise.race([sleep(due - Date.now()), closed, stopped]);
        continue;
      }
      const label = `${prefix}-${i++}`;
      const p: Promise<void> = client
        .publishAsync(topic, label, { qos })
        .then(
          () => {
            acked.add(label);
            events.notify();
          },
          () => undefined, // never acknowledged: may or may not arrive
        )
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    // Stopped while connected: let what is in flight be acknowledged (or the connection drop).
    if (client.connected) await Promise.race([Promise.all(inflight), closed]);
    return i;
  })();
  return { stop: () => stop(), done };
}

test(
  "chaos: kill -9 of the hub under MQTT QoS 1 and QoS 2 traffic loses no PUBACK'd or PUBCOMP'd message for persistent sessions",
  { timeout: 100000 },
  (t) =>
    chaos(t, 3, async (plan) => {
      using rt = tempRuntime();
      const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_DATA_DIR: join(rt.dir, "data") };
      const port = await freePort();
      const events = new Events();
      await using hub = new HubRunner(
        ["--mqtt-port", String(port), "--no-store"],
        env,
        /MQTT gateway: \d+ mapping rules/,
        events,
      );
      await hub.start();
      const subs = [
        new PersistentSub("chaos-sub-q1", 1, port, events),
        new PersistentSub("chaos-sub-q2", 2, port, events),
      ];
      const publishers: MqttClient[] = [];
      const acked = new Set<string>();
      let published = 0;
      const offlineRounds: string[] = [];
      try {
        for (const s of subs) await s.connect();

        const waitForAll = async (when: string): Promise<void> => {
          for (const s of subs) {
            const want = new Set(acked);
            await events.until(
              () => allIn(want, s.count),
              RECOVERY_MS,
              () =>
                `${when}: ${s.id} (QoS ${s.qos} subscription) to receive ${want.size} of ${acked.size} acknowledged messages: ${some(want)}\nhub log:\n${hub.tail()}`,
            );
          }
        };

        const kills: string[] = [];
        for (let round = 1; round <= ROUNDS + 1; round++) {
          const last = round === ROUNDS + 1; // a last round without a kill: all is well afterwards
          // Some rounds, a subscriber is away: its messages queue in its session.
          for (const s of subs) {
            const away = !last && plan.rng() < 0.35;
            if (away) {
              offlineRounds.push(`${s.id}@${round}`);
              await s.disconnect(false);
            } else if (!s.connected) await s.connect();
          }
          const p1 = await mqtt.connectAsync({
            host: "127.0.0.1",
            port,
            protocolVersion: 4,
            reconnectPeriod: 0,
            clientId: `chaos-pub1-${round}`,
          });
          const p2 = await mqtt.connectAsync({
            host: "127.0.0.1",
            port,
            protocolVersion: 4,
            reconnectPeriod: 0,
            clientId: `chaos-pub2-${round}`,
          });
          for (const p of [p1, p2]) {
            p.on("error", () => undefined);
            publishers.push(p);
          }
          // QoS 2 in a window well under the gateway's 100 inbound messages awaiting PUBREL.
          const loops = [
            publishLoop(p1, "chaos/q1", 1, `r${round}-q1`, 16, 1500, acked, events),
            publishLoop(p2, "chaos/q2", 2, `r${round}-q2`, 8, 500, acked, events),
          ];
          const ackedBefore = acked.size;
          if (last) {
            await events.until(
              () => acked.size >= ackedBefore + 400,
              RECOVERY_MS,
              () => "400 acknowledged publishes in the last round",
            );
            for (const l of loops) l.stop();
            for (const l of loops) published += await l.done;
            await waitForAll("after the last round");
            break;
          }
          const delay = plan.killDelay();
          const again = plan.recoveryKill();
          kills.push(`${delay} ms${again === undefined ? "" : ` (again ${again} ms after the restart)`}`);
          await sleep(delay); // the seeded kill moment
          await hub.kill9();
          for (const l of loops) l.stop();
          for (const l of loops) published += await l.done;
          for (const p of publishers.splice(0)) await p.endAsync(true).catch(() => undefined);
          for (const s of subs) await s.disconnect(true);
          await hub.start();
          for (const s of subs) await s.connect();
          if (again !== undefined) {
            await sleep(again); // killed again while queued messages go out to the subscribers
            await hub.kill9();
            for (const s of subs) await s.disconnect(true);
            await hub.start();
            for (const s of subs) await s.connect();
          }
          await waitForAll(`round ${round} (killed after ${kills[round - 1]})`);
        }
        const q1 = [...acked].filter((l) => l.includes("-q1-")).length;
        return (
          `MQTT QoS 1/2: ${ROUNDS} rounds, kills at ${kills.join(", ")}; ${published} publishes, ${acked.size} acknowledged ` +
          `(${q1} PUBACK, ${acked.size - q1} PUBCOMP); subscribers away during rounds: ${offlineRounds.join(" ") || "none"}; ` +
          subs.map((s) => `${s.id} received all ${acked.size} (${s.duplicates()} duplicates)`).join("; ") +
          "; 0 lost"
        );
      } finally {
        for (const p of publishers) await p.endAsync(true).catch(() => undefined);
        for (const s of subs) await s.disconnect(true);
        await hub.stop();
      }
    }),
);

// ---- 4: a bridge's offline queue ----------------------------------------------------------------

/**
 * What a bridge's offline queue holds on disk, read from a copy (the hub is dead): the labels of
 * every record of every generation still there (acknowledged or not: each one was written to the
 * queue, so it must reach the broker), and of the unacknowledged ones, as the queue recovers them.
 */
async function queueOnDisk(
  queueDir: string,
  scratch: string,
): Promise<{ records: string[]; unacked: string[] }> {
  const copy = join(scratch, `queue-copy-${Date.now()}`);
  // Without the dead hub's LOCK: the copy is ours.
  cpSync(queueDir, copy, { recursive: true, filter: (src) => !src.endsWith("/LOCK") });
  try {
    const records: string[] = [];
    for (const gen of readdirSync(copy).filter((n) => /^g\d+$/.test(n))) {
      const log = await DurableLog.open({ dir: join(copy, gen, "log"), fsync: "never" });
      try {
        for await (const r of log.records()) records.push(labelOf(r.payload));
      } finally {
        await log.close();
      }
    }
    const q = await OfflineQueue.open({ dir: copy });
    try {
      const unacked: string[] = [];
      for (;;) {
        const batch = await q.take(500);
        if (batch.length === 0) break;
        for (const m of batch) unacked.push(labelOf(m.payload));
      }
      return { records, unacked };
    } finally {
      await q.close();
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/** `b-17` from a bridged message `{"data":"b-17 xxxx…"}`. */
function labelOf(payload: Uint8Array): string {
  const data = (JSON.parse(Buffer.from(payload).toString()) as { data: string }).data;
  return data.slice(0, data.indexOf(" "));
}

test(
  "chaos: kill -9 of the hub while a bridge forwards to Mosquitto loses no message its offline queue accepted",
  { timeout: 100000 },
  (t) =>
    chaos(t, 4, async (plan) => {
      using rt = tempRuntime();
      const dataDir = join(rt.dir, "data");
      const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_DATA_DIR: dataDir };
      const events = new Events();
      await using broker = await Mosquitto.start();
      await using proxy = await TcpProxy.start(broker.port);
      const config = join(rt.dir, "bridges.yaml");
      writeFileSync(
        config,
        [
          "bridges:",
          "  - name: chaos",
          "    kind: mqtt",
          `    url: mqtt://127.0.0.1:${proxy.port}`,
          "    clientId: myelin-chaos",
          "    reconnect: { initialMs: 100, maxMs: 400, factor: 2, connectTimeoutMs: 3000 }",
          "    mapping:",
          "      - { myelin: /chaos/out, external: chaos/out, type: std_msgs/String, direction: out, qos: 1 }",
          "",
        ].join("\n"),
      );
      const queueDir = join(dataDir, "bridges", "chaos", "queue");
      await using hub = new HubRunner(
        ["--bridge-config", config, "--no-store"],
        env,
        /bridges: chaos \(mqtt\)/,
        events,
      );
      await hub.start();

      // The broker side: a persistent subscriber, always connected (the broker is never cut off from it).
      const received = new Map<string, number>();
      const sub = await mqtt.connectAsync(broker.url, {
        clientId: "chaos-bridge-sub",
        clean: false,
        reconnectPeriod: 0,
      });
      sub.on("error", () => undefined);
      sub.on("message", (_t, payload) => {
        const label = labelOf(payload);
        received.set(label, (received.get(label) ?? 0) + 1);
        events.notify();
      });
      await sub.subscribeAsync("chaos/#", { qos: 1 });

      // The Myelin side: a reliable publisher in this process, paced; and the bridge's status.
      await using node = await createNode({ name: "chaos_bridge_pub", runtimeDir: rt.dir });
      const pub = await node.createPublisher("/chaos/out", std_msgs.String);
      const bridgeStatus = (): Promise<BridgeStatus> =>
        pollUntil(
          async () => {
            const list = await fetchBridgeStatus(node, { timeoutMs: 3000 });
            const b = list.find((x) => x.name === "chaos");
            if (b?.queue === undefined) throw new Error(`no queue in ${JSON.stringify(list)}`);
            return b;
          },
          () => true,
          20000,
          (_l, err) => `the bridge's status: ${String(err)}`,
        );
      const pad = "x".repeat(3000); // the queue rolls over to new generations (4 MiB each) during the test
      let published = 0;
      let stopPublishing = false;
      // Paused for the count after each round, so that the bridge's counters stand still.
      let gate: { opened: Promise<void>; open(): void } | undefined;
      let idle = false;
      let ended = false;
      const publishing = (async () => {
        while (!stopPublishing) {
          if (gate !== undefined) {
            idle = true;
            events.notify();
            await gate.opened;
            idle = false;
            continue;
          }
          await pub.publish({ data: `b-${published} ${pad}` });
          published++;
          events.notify();
          if (published % 4 === 0) await sleep(8); // load pacing (~400 messages/s at most)
        }
      })().finally(() => {
        ended = true;
        events.notify();
      });
      publishing.catch(() => undefined); // awaited below; a publish refused at close ends it
      const pausePublishing = async (): Promise<void> => {
        let open!: () => void;
        const opened = new Promise<void>((r) => (open = r));
        gate = { opened, open };
        await events.until(
          () => idle || ended,
          RECOVERY_MS,
          () => "the publisher to pause",
        );
      };
      const resumePublishing = (): void => {
        const g = gate;
        gate = undefined;
        g?.open();
      };

      try {
        await events.until(
          () => received.size >= 20,
          30000,
          () => `the first bridged messages at the broker (${received.size})\nhub log:\n${hub.tail()}`,
        );
        let accepted = 0; // messages the bridge's queue accepted in the lives that were killed
        const mustArrive = new Set<string>(); // found in the queue's files after a kill
        const kills: string[] = [];
        const recovered: number[] = [];
        let unackedTotal = 0;
        /**
         * The bridge's count of accepted messages, then at once the kill: whatever it counted (and
         * the few it may accept in between) must reach the broker; so must every message its
         * queue's files hold afterwards (read from a copy), and the restarted bridge must recover
         * the unacknowledged ones.
         */
        const killAndRestart = async (round: number, restoreBeforeRestart: boolean): Promise<void> => {
          const before = await bridgeStatus();
          await hub.kill9();
          accepted += before.queue!.enqueued;
          const onDisk = await queueOnDisk(queueDir, rt.dir);
          unackedTotal += onDisk.unacked.length;
          for (const l of onDisk.records) mustArrive.add(l);
          if (restoreBeforeRestart) proxy.restore();
          await hub.start();
          proxy.restore();
          const after = await bridgeStatus();
          recovered.push(after.queue!.recovered);
          assert.equal(
            after.queue!.recovered,
            onDisk.unacked.length,
            `round ${round}: the restarted bridge recovered as many queued messages as its queue holds on disk`,
          );
        };
        /**
         * With the publisher paused and the queue drained (the counters stand still): every
         * message found in the queue's files after the kills reached the broker, and as many
         * distinct messages as the queue accepted in all lives (in the killed ones, as counted just
         * before each kill). Only accepted messages go to the broker, so the count covers the
         * messages of generations deleted between two kills (all acknowledged, or so the queue
         * thought); it could hide such a loss only behind one of the few messages accepted between
         * the last status and the kill.
         */
        const count = async (when: string): Promise<BridgeStatus> => {
          await pausePublishing();
          const now = await pollUntil(
            bridgeStatus,
            (b) => b.queue!.messages === 0,
            RECOVERY_MS,
            (b) => `${when}: the bridge's queue to drain: ${JSON.stringify(b?.queue)}`,
          );
          const want = new Set(mustArrive);
          const expected = accepted + now.queue!.enqueued;
          await events.until(
            () => allIn(want, received) && received.size >= expected,
            RECOVERY_MS,
            () =>
              `${when}: the broker to receive ${want.size} of the messages found in the queue's files after the ` +
              `kills (${some(want)}) and ${expected} distinct messages, as many as the bridge's queue accepted ` +
              `(${received.size} arrived)\nhub log:\n${hub.tail()}`,
          );
          return now;
        };
        for (let round = 1; round <= ROUNDS; round++) {
          const delay = plan.killDelay();
          // Most rounds, the link to the broker is cut some time before the kill: messages pile
          // up in the queue; it comes back before or after the hub's restart.
          const cutAt = plan.rng() < 0.7 ? Math.floor(plan.rng() * delay) : -1;
          const restoreBeforeRestart = plan.rng() < 0.5;
          const again = plan.recoveryKill();
          kills.push(
            `${delay} ms${cutAt >= 0 ? ` (link cut at ${cutAt} ms)` : ""}` +
              (again === undefined ? "" : ` + again ${again} ms after the restart`),
          );
          if (cutAt >= 0) {
            await sleep(cutAt);
            proxy.cut();
            await sleep(delay - cutAt);
          } else await sleep(delay); // the seeded kill moment
          await killAndRestart(round, restoreBeforeRestart);
          if (again !== undefined) {
            await sleep(again); // killed again while it sends what it recovered
            await killAndRestart(round, true);
          }
          await count(`round ${round} (killed after ${kills[round - 1]})`);
          resumePublishing();
        }

        // The end: once the publisher sees the restarted bridge again, it publishes some more (what
        // it published before that went to no subscriber: volatile, no promise made, and that can be
        // all it published since the last kill), then stops; everything the last life accepted
        // arrives too.
        await pub.waitForSubscribers(1, RECOVERY_MS);
        const matchedAt = published;
        await events.until(
          () => published >= matchedAt + 20 || ended,
          RECOVERY_MS,
          () => `20 more messages published once the bridge was matched (${published - matchedAt})`,
        );
        stopPublishing = true;
        await publishing;
        // Messages reach the bridge in order: once the last one is at the broker, no other is on
        // its way to the queue.
        const lastLabel = `b-${published - 1}`;
        await events.until(
          () => received.has(lastLabel),
          RECOVERY_MS,
          () => `the last message published, ${lastLabel}, at the broker`,
        );
        const final = await count("at the end");
        accepted += final.queue!.enqueued;
        assert.equal(
          final.queue!.acked,
          final.queue!.recovered + final.queue!.enqueued,
          "the last life acknowledged everything it recovered and accepted",
        );
        // Stopped cleanly, the queue's files hold nothing unacknowledged, and nothing that did not arrive.
        await hub.stop();
        const left = await queueOnDisk(queueDir, rt.dir);
        assert.deepEqual(left.unacked, [], "nothing is left unacknowledged in the queue");
        const notArrived = left.records.filter((l) => !received.has(l));
        assert.deepEqual(notArrived, [], "every message in the queue's files reached the broker");
        const deliveries = [...received.values()].reduce((a, b) => a + b, 0);
        return (
          `bridge offline queue: ${ROUNDS} rounds, kills at ${kills.join(", ")}; ${published} messages published, ` +
          `${accepted} accepted by the bridge's queue (${published - accepted} never were: published while the ` +
          `hub was down, or on their way to the bridge at a kill; volatile, no promise made); ` +
          `${mustArrive.size} found in the queue's files after the kills (${unackedTotal} unacknowledged; ` +
          `recovered ${recovered.join(", ")}); the broker got ` +
          `${received.size} distinct messages (${deliveries - received.size} duplicates); 0 lost`
        );
      } finally {
        stopPublishing = true;
        await hub.stop();
        await Promise.race([publishing.catch(() => undefined), sleep(5000)]);
        await sub.endAsync(true).catch(() => undefined);
      }
    }),
);
