/**
 * A worker process of the service benchmark (see services.ts), driven over the fork IPC channel.
 * argv[2] is a JSON object:
 * - `{ role: "server", name }`: serves /bench/echo (idempotent) and reports `{ type: "ready" }`.
 * - `{ role: "client", mode, replicas, concurrency, durationMs, balance?, endpoint? }`: keeps
 *   `concurrency` calls in flight for `durationMs` after a warm-up and reports
 *   `{ type: "result", calls, elapsedNs, p50Us, p99Us, failed }`. `mode: "direct"` sends requests
 *   straight over one data link to `endpoint` (the transport alone: no discovery, balancing,
 *   breaker or retry); `mode: "balanced"` calls through a node's service client.
 * The worker exits when its parent goes away.
 */
import { createNode, type BalancePolicy } from "../src/node/index.js";
import { defineService, t } from "../src/msgs/index.js";
import { decodeFrames, encodeFrames } from "../src/codec/index.js";
import { PeerLink } from "../src/transport/peer-link.js";
import { percentileSorted, sortedCopy } from "./stats.js";

/** The benchmark's service: echoes a 64-byte payload. */
export const Echo = defineService("myelin_bench/Echo", { data: t.bytes() }, { data: t.bytes() });

interface Args {
  role: "server" | "client";
  name?: string;
  mode?: "direct" | "balanced";
  replicas?: number;
  concurrency?: number;
  durationMs?: number;
  balance?: BalancePolicy;
  endpoint?: string;
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args;
const send = (m: Record<string, unknown>): void => {
  process.send?.(m);
};
process.on("disconnect", () => process.exit(0));

async function server(): Promise<void> {
  const node = await createNode({ name: args.name ?? "echo" });
  await node.createService("/bench/echo", Echo, (req) => req, { idempotent: true });
  send({ type: "ready", endpoint: node.endpoint });
}

async function client(): Promise<void> {
  const node = await createNode({ name: "bench-client" });
  const replicas = args.replicas ?? 1;
  await node.waitForGraph(
    (g) => g.nodes.filter((n) => n.services.some((s) => s.service === "/bench/echo")).length >= replicas,
    15000,
  );
  let call: (req: { data: Uint8Array }) => Promise<unknown>;
  if (args.mode === "direct") {
    const link = new PeerLink({
      endpoint: args.endpoint!,
      hello: { node: "bench-direct", process: "bench-direct" },
      maxMessageBytes: 64 * 1024 * 1024,
      pingIntervalMs: 500,
      onBadFrame: () => {},
    });
    call = async (req) => {
      const { reply } = link.request(
        { service: "/bench/echo", type: Echo.name, timeoutMs: 5000 },
        encodeFrames(req, 16 * 1024),
      );
      const r = await reply;
      if (!r.header.ok) throw new Error(r.header.error?.message ?? "failed");
      return decodeFrames(r.parts);
    };
  } else {
    const c = node.createClient("/bench/echo", Echo, {
      timeoutMs: 5000,
      ...(args.balance ? { balance: args.balance } : {}),
    });
    call = (req) => c.call(req);
  }
  const req = { data: new Uint8Array(64) };
  for (let i = 0; i < 200; i++) await call(req); // warm-up: links up, code paths hot
  const lat: number[] = [];
  let calls = 0;
  let failed = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round((args.durationMs ?? 1500) * 1e6));
  const loop = async (): Promise<void> => {
    while (process.hrtime.bigint() < end) {
      const t0 = process.hrtime.bigint();
      try {
        await call(req);
        calls++;
        lat.push(Number(process.hrtime.bigint() - t0) / 1000);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency ?? 16 }, () => loop()));
  const elapsedNs = Number(process.hrtime.bigint() - start);
  const sorted = sortedCopy(lat);
  send({
    type: "result",
    calls,
    failed,
    elapsedNs,
    p50Us: percentileSorted(sorted, 0.5),
    p99Us: percentileSorted(sorted, 0.99),
  });
}

(args.role === "server" ? server() : client()).catch((err: unknown) => {
  send({ type: "error", message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
