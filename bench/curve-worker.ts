/**
 * One side of the CURVE benchmark (bench/curve.ts), run inside a network namespace. argv[2] is a
 * JSON {@link WorkerArgs}; it prints JSON lines: `ready` (with what the other side needs) and
 * `result`. Side `a` binds (and for Myelin runs the hub), side `b` connects.
 */
import * as zmq from "zeromq";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { defineMessage, defineService, t } from "../src/msgs/index.js";

/** What a worker is told. */
export interface WorkerArgs {
  side: "a" | "b";
  impl: "myelin" | "zeromq";
  curve: boolean;
  kind: "throughput" | "roundtrip";
  ipA: string;
  ipB: string;
  durationMs: number;
  /** Side b: side a's endpoint and public key. */
  endpoint?: string;
  serverKey?: string;
  /** zeromq: the key pairs (Z85). */
  keysA?: { publicKey: string; secretKey: string };
  keysB?: { publicKey: string; secretKey: string };
}

const Bytes = defineMessage("myelin_bench/CurveBytes", { data: t.bytes() });
const Echo = defineService("myelin_bench/CurveEcho", { data: t.bytes() }, { data: t.bytes() });
const args = JSON.parse(process.argv[2] ?? "{}") as WorkerArgs;
const out = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};
const PAYLOAD = Buffer.alloc(64, 7);
const END = Buffer.alloc(1, 0);

function percentiles(us: number[]): { p50: number; p99: number; n: number } {
  us.sort((x, y) => x - y);
  const at = (q: number): number => us[Math.min(us.length - 1, Math.floor(q * us.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), n: us.length };
}

async function zeromqA(): Promise<void> {
  const sock = new zmq.Router(
    args.curve
      ? { curveServer: true, curveSecretKey: args.keysA!.secretKey, curvePublicKey: args.keysA!.publicKey }
      : {},
  );
  await sock.bind(`tcp://${args.ipA}:0`);
  out({ event: "ready", endpoint: sock.lastEndpoint });
  let n = 0;
  let first = 0n;
  for await (const [id, msg] of sock) {
    if (args.kind === "roundtrip") {
      await sock.send([id!, msg!]);
      continue;
    }
    if (msg!.length === 1) {
      const s = Number(process.hrtime.bigint() - first) / 1e9;
      out({ event: "result", msgs: n, seconds: s, rate: n / s });
      return;
    }
    if (n++ === 0) first = process.hrtime.bigint();
  }
}

async function zeromqB(): Promise<void> {
  const sock = new zmq.Dealer(
    args.curve
      ? {
          curveServerKey: args.keysA!.publicKey,
          curvePublicKey: args.keysB!.publicKey,
          curveSecretKey: args.keysB!.secretKey,
        }
      : {},
  );
  sock.connect(args.endpoint!);
  const end = Date.now() + args.durationMs;
  if (args.kind === "throughput") {
    while (Date.now() < end) for (let i = 0; i < 1000; i++) await sock.send(PAYLOAD);
    await sock.send(END);
    out({ event: "sent" });
    return;
  }
  const lat: number[] = [];
  await sock.send(PAYLOAD); // warm-up: the handshake
  await sock.receive();
  while (Date.now() < end) {
    const t0 = process.hrtime.bigint();
    await sock.send(PAYLOAD);
    await sock.receive();
    lat.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  out({ event: "result", ...percentiles(lat) });
  sock.close();
}

async function myelinA(): Promise<void> {
  const hub = await Hub.start({ listen: [`tcp://${args.ipA}:7447`], insecure: !args.curve });
  const node = await createNode({ name: "bench_a" });
  if (args.kind === "roundtrip") {
    await node.createService("/bench/echo", Echo, (req) => ({ data: req.data }));
    out({ event: "ready", endpoint: hub.endpoints.find((e) => e.startsWith("tcp://")) });
    return;
  }
  const pub = await node.createPublisher("/bench/bytes", Bytes, { qos: { reliability: "reliable" } });
  out({ event: "ready", endpoint: hub.endpoints.find((e) => e.startsWith("tcp://")) });
  await pub.waitForSubscribers(1, 60000);
  const end = Date.now() + args.durationMs;
  while (Date.now() < end) for (let i = 0; i < 1000; i++) await pub.publish({ data: PAYLOAD });
  await pub.publish({ data: END });
  out({ event: "sent" });
}

async function myelinB(): Promise<void> {
  const node = await createNode({ name: "bench_b" });
  if (args.kind === "roundtrip") {
    const client = node.createClient("/bench/echo", Echo, { timeoutMs: 5000 });
    await node.waitForGraph(
      (g) => g.nodes.some((n) => n.services.some((s) => s.service === "/bench/echo")),
      20000,
    );
    await client.call({ data: PAYLOAD }); // warm-up: the link and its handshake
    const lat: number[] = [];
    const end = Date.now() + args.durationMs;
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      await client.call({ data: PAYLOAD });
      lat.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    out({ event: "result", ...percentiles(lat) });
    return;
  }
  let n = 0;
  let first = 0n;
  await node.createSubscription(
    "/bench/bytes",
    Bytes,
    (m) => {
      if (m.data.length === 1) {
        const s = Number(process.hrtime.bigint() - first) / 1e9;
        out({ event: "result", msgs: n, seconds: s, rate: n / s });
        return;
      }
      if (n++ === 0) first = process.hrtime.bigint();
    },
    { qos: { reliability: "reliable" } },
  );
  out({ event: "ready" });
}

const run = { zeromq: { a: zeromqA, b: zeromqB }, myelin: { a: myelinA, b: myelinB } }[args.impl][args.side];
run().catch((err: unknown) => {
  out({ event: "error", message: (err as Error).message });
  process.exit(1);
});
