/**
 * A Kafka cluster for the Kafka bridge's tests: librdkafka's mock cluster (Debian's
 * librdkafka-dev ships rdkafka_mock.h), started by a small C helper (fixtures/kafka-mock-cluster.c,
 * compiled here with gcc into a temp directory, once per test process) on loopback.
 *
 * librdkafka 2.0's mock cluster reports controller id 0 in its Metadata answers, a broker it does
 * not have (its brokers are 1..N); kafkajs asks the controller for an idempotent producer's id and
 * fails on that. So each broker is reached through a small proxy here that corrects the
 * controller id (to the first broker) and the broker ports (to the proxies) in Metadata
 * answers, in place; every other byte passes unchanged. This is a shortcoming of the mock, not
 * of real Kafka, whose Metadata names a real controller.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";

const SOURCE = fileURLToPath(new URL("../../test/fixtures/kafka-mock-cluster.c", import.meta.url));
const HEADER = "/usr/include/librdkafka/rdkafka_mock.h";

/** Why the mock cluster cannot run here (no gcc, no librdkafka-dev), or undefined if it can. */
export function kafkaMockUnavailable(): string | undefined {
  if (!existsSync(HEADER))
    return `${HEADER} is missing: install Debian's librdkafka-dev (apt-get install librdkafka-dev)`;
  if (spawnSync("gcc", ["--version"]).status !== 0) return "gcc is missing: install Debian's gcc";
  return undefined;
}

let compiled: string | undefined;

/**
 * Compiles the helper once per test process into a temp directory, removed when the process
 * exits, and returns the binary's path.
 */
function helperBinary(): string {
  if (compiled !== undefined) return compiled;
  const dir = mkdtempSync(join(tmpdir(), "myelin-kafka-mock-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, "kafka-mock-cluster");
  const r = spawnSync("gcc", ["-O1", "-Wall", "-o", bin, SOURCE, "-lrdkafka"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`compiling ${SOURCE} failed: ${r.stderr}`);
  compiled = bin;
  return bin;
}

const METADATA = 3;

/** Rewrites a Metadata response (versions 1..8, not flexible) in place; see the module comment. */
function fixMetadata(frame: Buffer, version: number, portOf: (nodeId: number) => number | undefined): void {
  let off = 8; // size, correlation id
  if (version >= 3) off += 4; // throttle_time_ms
  const n = frame.readInt32BE(off);
  off += 4;
  let first: number | undefined;
  for (let i = 0; i < n; i++) {
    const id = frame.readInt32BE(off);
    first = first === undefined ? id : Math.min(first, id);
    off += 4;
    off += 2 + frame.readInt16BE(off); // host
    const port = portOf(id);
    if (port !== undefined) frame.writeInt32BE(port, off);
    off += 4;
    const rack = frame.readInt16BE(off); // rack (v1+)
    off += 2 + Math.max(0, rack);
  }
  if (version >= 2) off += 2 + Math.max(0, frame.readInt16BE(off)); // cluster_id
  if (first !== undefined) frame.writeInt32BE(first, off); // controller_id
}

/** Splits a byte stream into Kafka frames (int32 size prefix). */
class Frames {
  #buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    while (this.#buf.length >= 4) {
      const size = this.#buf.readInt32BE(0);
      if (this.#buf.length < 4 + size) break;
      out.push(Buffer.from(this.#buf.subarray(0, 4 + size)));
      this.#buf = this.#buf.subarray(4 + size);
    }
    return out;
  }
}

/** The mock cluster with a correcting proxy per broker. */
export class KafkaMock {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #servers: Server[] = [];
  readonly #sockets = new Set<Socket>();
  #waiters: ((line: string) => void)[] = [];
  /** Broker id → the proxy's port. */
  readonly #proxyPort = new Map<number, number>();
  /** `host:port,…` of the proxies, for clients. */
  bootstrap = "";

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.#proc = proc;
    this.#lines = createInterface({ input: proc.stdout });
    this.#lines.on("line", (l) => this.#waiters.shift()?.(l));
  }

  /**
   * Starts a cluster of `brokers` brokers with `topics` (name → partitions) created.
   * @throws Error if the helper cannot be compiled or does not start within 20 s
   */
  static async start(opts: { brokers?: number; topics?: Record<string, number> } = {}): Promise<KafkaMock> {
    const bin = helperBinary();
    const args = [
      String(opts.brokers ?? 1),
      ...Object.entries(opts.topics ?? {}).map(([t, p]) => `${t}:${p}`),
    ];
    const proc = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const m = new KafkaMock(proc);
    try {
      const first = await m.#next(20000, () => stderr);
      const upstream = first.split(",").map((a) => Number(a.split(":")[1]));
      for (let i = 0; i < upstream.length; i++) await m.#proxy(i + 1, upstream[i]!);
      m.bootstrap = [...m.#proxyPort.values()].map((p) => `127.0.0.1:${p}`).join(",");
      return m;
    } catch (err) {
      await m.close();
      throw err;
    }
  }

  #next(timeoutMs: number, why: () => string = () => ""): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== got);
        reject(new Error(`the Kafka mock cluster did not answer within ${timeoutMs} ms ${why()}`));
      }, timeoutMs);
      const got = (line: string): void => {
        clearTimeout(timer);
        resolve(line);
      };
      this.#waiters.push(got);
    });
  }

  async #proxy(id: number, upstreamPort: number): Promise<void> {
    const server = createServer((client) => {
      this.#sockets.add(client);
      const up = tcpConnect(upstreamPort, "127.0.0.1");
      this.#sockets.add(up);
      const pending = new Map<number, number>(); // correlation id → Metadata version
      const reqs = new Frames();
      const resps = new Frames();
      const end = (): void => {
        client.destroy();
        up.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(up);
      };
      client.on("error", end).on("close", end);
      up.on("error", end).on("close", end);
      client.on("data", (chunk: Buffer) => {
        for (const f of reqs.push(chunk)) {
          if (f.length >= 12 && f.readInt16BE(4) === METADATA)
            pending.set(f.readInt32BE(8), f.readInt16BE(6));
          up.write(f);
        }
      });
      up.on("data", (chunk: Buffer) => {
        for (const f of resps.push(chunk)) {
          const v = f.length >= 8 ? pending.get(f.readInt32BE(4)) : undefined;
          if (v !== undefined) {
            pending.delete(f.readInt32BE(4));
            if (v >= 1 && v <= 8) fixMetadata(f, v, (n) => this.#proxyPort.get(n));
          }
          client.write(f);
        }
      });
    });
    this.#servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.#proxyPort.set(id, (server.address() as { port: number }).port);
  }

  /** Sends a command to the helper and waits for its "ok". */
  async #command(line: string): Promise<void> {
    const answer = this.#next(10000);
    this.#proc.stdin.write(`${line}\n`);
    const a = await answer;
    if (a !== "ok") throw new Error(`the Kafka mock cluster refused "${line}": ${a}`);
  }

  /** Creates a topic. */
  createTopic(name: string, partitions = 1): Promise<void> {
    return this.#command(`topic ${name} ${partitions}`);
  }

  /** Broker `id` (1..N) drops its connections and refuses new ones, until `brokerUp`. */
  brokerDown(id: number): Promise<void> {
    return this.#command(`down ${id}`);
  }

  brokerUp(id: number): Promise<void> {
    return this.#command(`up ${id}`);
  }

  /** Stops the helper (stdin closes) and the proxies. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) {
      const exited = new Promise<void>((r) => this.#proc.once("exit", () => r()));
      this.#proc.stdin.end();
      const timer = setTimeout(() => this.#proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    this.#lines.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
