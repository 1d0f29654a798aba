/**
 * A benchmark worker process, forked by `run.ts`. It plays one role (sender or receiver side of one
 * case) for one implementation, driven by the runner over the fork IPC channel:
 * `init` → `ready` (with the sender's endpoint) → `warmup`/`start`/... → results → `close`.
 */
import { EventEmitter } from "node:events";
// msgpackr/pack and /unpack, as src/codec imports them: the package root would also load the native
// string extractor (msgpackr-extract, ~6 MiB of RSS) into every worker, which Myelin never loads.
import { pack } from "msgpackr/pack";
import { unpack } from "msgpackr/unpack";
import type { EndpointOptions, Impl, Receiver, Sender, Twist } from "./impl.js";
import { loadImpl } from "./impls/index.js";
import {
  makePayload,
  makeTwist,
  TAG_DATA,
  TAG_END,
  TAG_WARM,
  twistTag,
  type FromWorker,
  type InitMsg,
  type Tag,
  type ToWorker,
} from "./protocol.js";
import { percentileSorted, sortedCopy } from "./stats.js";

const hr = (): bigint => process.hrtime.bigint();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const yieldToIo = (): Promise<void> => new Promise((r) => setImmediate(r));

function report(msg: FromWorker): void {
  process.send?.(msg);
}

function fail(err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  report({ type: "error", message });
  // Give the IPC message a moment to leave, then go.
  setTimeout(() => process.exit(1), 50).unref();
}

process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
// The runner went away (crash, SIGKILL): do not linger as an orphan.
process.on("disconnect", () => process.exit(0));

// ---------------------------------------------------------------------------------------------------
// Mailbox: runner messages may arrive before the role code waits for them.

const bus = new EventEmitter();
const arrived = new Map<string, ToWorker>();
const closers: (() => Promise<void>)[] = [];

function waitFor<T extends ToWorker["type"]>(type: T): Promise<Extract<ToWorker, { type: T }>> {
  const got = arrived.get(type);
  if (got !== undefined) {
    arrived.delete(type);
    return Promise.resolve(got as Extract<ToWorker, { type: T }>);
  }
  return new Promise((resolve) =>
    bus.once(type, (m: ToWorker) => {
      arrived.delete(type);
      resolve(m as Extract<ToWorker, { type: T }>);
    }),
  );
}

function hasArrived(type: ToWorker["type"]): boolean {
  return arrived.has(type);
}

async function closeAndExit(): Promise<void> {
  const timer = setTimeout(() => process.exit(0), 3000);
  timer.unref();
  for (const c of closers.reverse()) await c().catch(() => undefined);
  process.exit(0);
}

process.on("message", (m: ToWorker) => {
  if (m.type === "close") {
    void closeAndExit();
    return;
  }
  if (m.type === "preload") {
    loadImpl(m.impl).catch(fail);
    return;
  }
  arrived.set(m.type, m);
  if (m.type === "init") runRole(m).catch(fail);
  else bus.emit(m.type, m);
});

// ---------------------------------------------------------------------------------------------------
// Helpers over the impl interface

type SendFn = () => void | Promise<void>;

/** Functions sending a data / warm-up / end message in the case's message type. */
function senderFns(sender: Sender, init: InitMsg): Record<Tag, SendFn> {
  if (init.caseSpec.message === "twist") {
    const tw: Record<Tag, Twist> = {
      [TAG_DATA]: makeTwist(TAG_DATA),
      [TAG_WARM]: makeTwist(TAG_WARM),
      [TAG_END]: makeTwist(TAG_END),
    };
    if (sender.sendTwist !== undefined) {
      const st = sender.sendTwist.bind(sender);
      return {
        [TAG_DATA]: () => st(tw[TAG_DATA]),
        [TAG_WARM]: () => st(tw[TAG_WARM]),
        [TAG_END]: () => st(tw[TAG_END]),
      };
    }
    // Encode every message, as a typed publisher would.
    return {
      [TAG_DATA]: () => sender.send(pack(tw[TAG_DATA])),
      [TAG_WARM]: () => sender.send(pack(tw[TAG_WARM])),
      [TAG_END]: () => sender.send(pack(tw[TAG_END])),
    };
  }
  const size = init.caseSpec.payloadBytes;
  const data = makePayload(size, TAG_DATA);
  const warm = makePayload(size, TAG_WARM);
  const end = makePayload(size, TAG_END);
  return {
    [TAG_DATA]: () => sender.send(data),
    [TAG_WARM]: () => sender.send(warm),
    [TAG_END]: () => sender.send(end),
  };
}

/**
 * Subscribe `onTag(tag, bytes)` to every message; data messages go to `onData(bytes)` instead (hot path).
 */
function subscribe(
  receiver: Receiver,
  init: InitMsg,
  onData: (bytes: number) => void,
  onOther: (tag: number) => void,
): void {
  if (init.caseSpec.message === "twist") {
    const bytes = init.caseSpec.payloadBytes;
    const handle = (t: Twist): void => {
      const tag = twistTag(t);
      if (tag === TAG_DATA) onData(bytes);
      else onOther(tag);
    };
    if (receiver.onTwist !== undefined) receiver.onTwist(handle);
    else receiver.onMessage((p) => handle(unpack(p) as Twist));
    return;
  }
  receiver.onMessage((p) => {
    if (p[0] === TAG_DATA) onData(p.length);
    else onOther(p[0]!);
  });
}

/** Send warm-up messages every few ms until stopped (each send awaited, never two at once). */
function warmLoop(send: SendFn): { stop(): Promise<void> } {
  let on = true;
  const done = (async () => {
    while (on) {
      const r = send();
      if (r !== undefined) await r;
      await sleep(5);
    }
  })();
  return {
    stop: async () => {
      on = false;
      await done;
    },
  };
}

function endpointOptions(init: InitMsg, channel: string): EndpointOptions {
  return { channel, dir: init.dir, payloadBytes: init.caseSpec.payloadBytes, env: init.env };
}

async function newSender(impl: Impl, init: InitMsg, channel: string): Promise<Sender> {
  const s = await impl.createSender(endpointOptions(init, channel));
  closers.push(() => s.close());
  return s;
}

async function newReceiver(impl: Impl, init: InitMsg, channel: string, endpoint: string): Promise<Receiver> {
  const r = await impl.createReceiver({ ...endpointOptions(init, channel), endpoint });
  closers.push(() => r.close());
  return r;
}

function requireEndpoint(init: InitMsg): string {
  if (init.endpoint === undefined) throw new Error(`${init.role}: no endpoint in init`);
  return init.endpoint;
}

// ---------------------------------------------------------------------------------------------------
// Roles

async function runRole(init: InitMsg): Promise<void> {
  if (init.role === "rss-baseline") {
    report({ type: "ready" });
    await waitFor("measure");
    report({ type: "rss", rssBytes: await idleRss() });
    return;
  }
  const impl = await loadImpl(init.impl);
  switch (init.role) {
    case "tp-sender":
      return throughputSender(impl, init);
    case "tp-receiver":
      return throughputReceiver(impl, init);
    case "rt-client":
      return roundtripClient(impl, init);
    case "rt-server":
      return roundtripServer(impl, init);
    case "lj-sender":
      return lateJoinerSender(impl, init);
    case "lj-receiver":
      return lateJoinerReceiver(impl, init);
    case "rss-sender":
      return rssSender(impl, init);
    case "rss-receiver":
      return rssReceiver(impl, init);
  }
}

async function throughputSender(impl: Impl, init: InitMsg): Promise<void> {
  const sender = await newSender(impl, init, init.channel);
  const fns = senderFns(sender, init);
  report({ type: "ready", endpoint: sender.endpoint });
  await waitFor("warmup");
  const warm = warmLoop(fns[TAG_WARM]);
  await waitFor("start");
  await warm.stop();

  const send = fns[TAG_DATA];
  const size = init.caseSpec.payloadBytes;
  // Look at the clock every ~64 KiB sent; yield to the event loop every ~5 ms so impls whose send
  // never blocks still get their I/O done.
  const mask = size >= 65536 ? 0 : size >= 4096 ? 15 : size >= 1024 ? 63 : 1023;
  const t0 = hr();
  const deadline = t0 + BigInt(init.durationMs) * 1_000_000n;
  let lastYield = t0;
  let sent = 0;
  for (;;) {
    const r = send();
    if (r !== undefined) await r;
    sent++;
    if ((sent & mask) === 0) {
      const now = hr();
      if (now >= deadline) break;
      if (now - lastYield > 5_000_000n) {
        await yieldToIo();
        lastYield = hr();
      }
    }
  }
  const elapsedNs = Number(hr() - t0);
  // End marker three times (a lossy impl may drop one), then flush.
  for (let i = 0; i < 3; i++) {
    const r = fns[TAG_END]();
    if (r !== undefined) await r;
    if (i === 0) await sender.flush();
    await sleep(10);
  }
  await sender.flush();
  report({ type: "sent", sent, elapsedNs });
}

async function throughputReceiver(impl: Impl, init: InitMsg): Promise<void> {
  const receiver = await newReceiver(impl, init, init.channel, requireEndpoint(init));
  const size = init.caseSpec.payloadBytes;
  const mask = size >= 1024 ? 0 : 255;
  let count = 0;
  let bytes = 0;
  let first = 0n;
  let spanAt = 0n;
  let spanCount = 0;
  let warmSeen = false;
  let reported = false;
  const finish = (): void => {
    if (reported) return;
    reported = true;
    report({ type: "received", received: count, bytes, spanCount, spanNs: Number(spanAt - first) });
  };
  subscribe(
    receiver,
    init,
    (n) => {
      count++;
      bytes += n;
      if ((count & mask) === 0) {
        spanAt = hr();
        spanCount = count;
      }
      if (count === 1) first = hr();
    },
    (tag) => {
      if (tag === TAG_WARM) {
        if (!warmSeen) {
          warmSeen = true;
          report({ type: "warm" });
        }
      } else if (tag === TAG_END && count > 0) {
        spanAt = hr();
        spanCount = count;
        finish();
      }
    },
  );
  report({ type: "ready" });
  await waitFor("drain");
  // The sender is done. A lossy impl may have dropped the end markers: report once quiet for 300 ms.
  let last = -1;
  let quiet = 0;
  while (!reported) {
    await sleep(100);
    if (count === last) quiet++;
    else quiet = 0;
    last = count;
    if (quiet >= 3) finish();
  }
}

async function roundtripClient(impl: Impl, init: InitMsg): Promise<void> {
  const ping = await newSender(impl, init, `${init.channel}-ping`);
  const fns = senderFns(ping, init);
  report({ type: "ready", endpoint: ping.endpoint });
  const { endpoint } = await waitFor("connect");
  const pong = await newReceiver(impl, init, `${init.channel}-pong`, endpoint);
  let waiter: (() => void) | null = null;
  let warmSeen = false;
  pong.onMessage((p) => {
    if (p[0] === TAG_DATA) {
      const w = waiter;
      waiter = null;
      w?.();
    } else if (p[0] === TAG_WARM) warmSeen = true;
  });
  report({ type: "ready" });
  await waitFor("start");

  // Both directions established once a warm-up ping came back.
  while (!warmSeen) {
    const r = fns[TAG_WARM]();
    if (r !== undefined) await r;
    await sleep(10);
  }
  const send = fns[TAG_DATA];
  const once = async (): Promise<void> => {
    const back = new Promise<void>((resolve) => (waiter = resolve));
    const r = send();
    if (r !== undefined) await r;
    await back;
  };
  // Warm the JIT and the path for 10% of the duration (at most 300 ms), not recorded.
  const warmUntil = hr() + BigInt(Math.min(300, Math.ceil(init.durationMs / 10))) * 1_000_000n;
  while (hr() < warmUntil) await once();

  const samples: number[] = [];
  const t0 = hr();
  const deadline = t0 + BigInt(init.durationMs) * 1_000_000n;
  for (;;) {
    const a = hr();
    await once();
    const b = hr();
    samples.push(Number(b - a) / 1000);
    if (b >= deadline) break;
  }
  const elapsedNs = Number(hr() - t0);
  const sorted = sortedCopy(samples);
  report({
    type: "roundtrip",
    count: samples.length,
    elapsedNs,
    p50Us: percentileSorted(sorted, 0.5),
    p99Us: percentileSorted(sorted, 0.99),
    p999Us: percentileSorted(sorted, 0.999),
  });
}

async function roundtripServer(impl: Impl, init: InitMsg): Promise<void> {
  const pongSender = await newSender(impl, init, `${init.channel}-pong`);
  const pingReceiver = await newReceiver(impl, init, `${init.channel}-ping`, requireEndpoint(init));
  pingReceiver.onMessage((p) => {
    // Echo everything (warm-up and data); copy because the payload is only valid in the callback.
    const r = pongSender.send(p.slice());
    if (r !== undefined) r.catch(fail);
  });
  report({ type: "ready", endpoint: pongSender.endpoint });
}

async function lateJoinerSender(impl: Impl, init: InitMsg): Promise<void> {
  const sender = await newSender(impl, init, init.channel);
  const send = senderFns(sender, init)[TAG_DATA];
  report({ type: "ready", endpoint: sender.endpoint });
  await waitFor("start");
  // ~1 kHz against absolute deadlines (timers fire no earlier than 1 ms, so slightly below 1 kHz).
  let next = Number(hr() / 1000n) / 1000;
  while (!hasArrived("stop")) {
    const r = send();
    if (r !== undefined) await r;
    next += 1;
    const now = Number(hr() / 1000n) / 1000;
    if (next < now - 10) next = now; // fell far behind: do not burst
    await sleep(Math.max(0, next - now));
  }
}

async function lateJoinerReceiver(impl: Impl, init: InitMsg): Promise<void> {
  // The impl's code is loaded (runRole did it): the clock starts when subscribing starts.
  const t0 = hr();
  const receiver = await newReceiver(impl, init, init.channel, requireEndpoint(init));
  let joined = false;
  receiver.onMessage(() => {
    if (joined) return;
    joined = true;
    report({ type: "joined", joinUs: Number(hr() - t0) / 1000 });
  });
  report({ type: "ready" });
}

async function rssSender(impl: Impl, init: InitMsg): Promise<void> {
  const sender = await newSender(impl, init, init.channel);
  report({ type: "ready", endpoint: sender.endpoint });
  await waitFor("warmup");
  const warm = warmLoop(senderFns(sender, init)[TAG_WARM]);
  await waitFor("stop");
  await warm.stop();
}

async function rssReceiver(impl: Impl, init: InitMsg): Promise<void> {
  const receiver = await newReceiver(impl, init, init.channel, requireEndpoint(init));
  let warmSeen = false;
  receiver.onMessage(() => {
    if (warmSeen) return;
    warmSeen = true;
    report({ type: "warm" });
  });
  report({ type: "ready" });
  await waitFor("measure");
  report({ type: "rss", rssBytes: await idleRss() });
}

async function idleRss(): Promise<number> {
  await sleep(500);
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await sleep(100);
  gc?.();
  await sleep(100);
  return process.memoryUsage.rss();
}
