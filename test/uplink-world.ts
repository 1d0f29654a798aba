/**
 * The world of the uplink tests: a three-server nats-server cluster with JetStream (the cloud),
 * hub processes with their store and uplink (a site, a cloud; each with its own runtime and data
 * directory), and a node per hub to publish and read durable topics. Everything is removed on
 * dispose, also after a failure.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { stringify } from "yaml";
import assert from "node:assert/strict";
import { createNode, type Node, type StoreClient } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { freePort, TcpProxy } from "./bridge-peers.js";
import { fixture, Proc } from "./helpers.js";

/** One nats-server of the cluster; restartable on the same ports and store. */
class ClusterServer {
  #child: ChildProcess | undefined;
  constructor(
    readonly name: string,
    readonly port: number,
    readonly args: string[],
  ) {}

  start(timeoutMs = 20000): Promise<void> {
    const child = spawn("/usr/sbin/nats-server", this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    const log: string[] = [];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`${this.name} not ready within ${timeoutMs} ms:\n${log.slice(-20).join("\n")}`));
      }, timeoutMs);
      const onLine = (l: string): void => {
        log.push(l);
        if (log.length > 100) log.shift();
        if (/Server is ready/.test(l)) {
          clearTimeout(timer);
          resolve();
        }
      };
      createInterface({ input: child.stdout }).on("line", onLine);
      createInterface({ input: child.stderr }).on("line", onLine);
      child.once("exit", (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code ?? sig}):\n${log.slice(-20).join("\n")}`));
      });
    });
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const c = this.#child;
    this.#child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once("exit", () => r()));
    c.kill(signal);
    await exited;
  }
}

/** Three nats-servers with JetStream, clustered on loopback. */
export class NatsCluster {
  readonly servers: ClusterServer[];
  readonly #dir: string;

  private constructor(
    servers: ClusterServer[],
    dir: string,
    readonly host: string,
  ) {
    this.servers = servers;
    this.#dir = dir;
  }

  /** Starts `n` servers; clients connect on `clientHost` (default 127.0.0.1), routes stay on loopback. */
  static async start(n = 3, clientHost = "127.0.0.1"): Promise<NatsCluster> {
    const dir = mkdtempSync(join(tmpdir(), "myelin-natsc-"));
    const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
    const cports = await Promise.all(Array.from({ length: n }, () => freePort()));
    const routes = cports.map((p) => `nats://127.0.0.1:${p}`).join(",");
    const servers = ports.map(
      (p, i) =>
        new ClusterServer(`n${i}`, p, [
          "-a",
          clientHost,
          "-p",
          String(p),
          "-n",
          `n${i}`,
          "--cluster_name",
          "cloud",
          "--cluster",
          `nats://127.0.0.1:${cports[i]}`,
          "--routes",
          routes,
          "-js",
          "-sd",
          join(dir, `n${i}`),
        ]),
    );
    const c = new NatsCluster(servers, dir, clientHost);
    try {
      await Promise.all(servers.map((s) => s.start()));
    } catch (err) {
      await c[Symbol.asyncDispose]();
      throw err;
    }
    return c;
  }

  get urls(): string[] {
    return this.servers.map((s) => `nats://${this.host}:${s.port}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const s of this.servers) await s.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** A "host": its own runtime and data directories, and its hub process with an uplink. */
export class UplinkHost {
  readonly dir: string;
  readonly runtimeDir: string;
  readonly dataDir: string;
  readonly configPath: string;
  hub: Proc | undefined;

  constructor(
    readonly name: string,
    config: Record<string, unknown>,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `myelin-up-${name}-`));
    this.runtimeDir = join(this.dir, "run");
    this.dataDir = join(this.dir, "data");
    this.configPath = join(this.dir, "uplink.yaml");
    this.writeConfig(config);
  }

  writeConfig(config: Record<string, unknown>): void {
    writeFileSync(this.configPath, stringify(config));
  }

  /** Starts (or restarts) the hub, inside network namespace `netns` when given. */
  async start(netns?: string): Promise<Proc> {
    const p = new Proc(
      fixture("uplink-hub"),
      [JSON.stringify({ dataDir: this.dataDir, uplinkConfig: this.configPath, fsync: "batch" })],
      { MYELIN_RUNTIME_DIR: this.runtimeDir },
      netns === undefined ? [] : ["ip", "netns", "exec", netns],
    );
    this.hub = p;
    await p.waitFor((l) => l.event === "ready", 20000, `hub ${this.name} ready`);
    return p;
  }

  async kill9(): Promise<void> {
    const p = this.hub;
    this.hub = undefined;
    if (p === undefined) return;
    p.kill("SIGKILL");
    await p.exit(10000);
  }

  logs(): string[] {
    return (this.hub?.lines ?? []).filter((l) => l.event === "log").map((l) => String(l["line"]));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function siteConfig(
  site: string,
  servers: string[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    site,
    nats: { servers, connectTimeoutMs: 2000 },
    stream: { replicas: 3, duplicateWindowMs: 120000 },
    export: { durable: ["/robot/**"] },
    import: ["/commands/**"],
    ...extra,
  };
}

export function cloudConfig(cluster: NatsCluster, sites: string[]): Record<string, unknown> {
  return { role: "cloud", site: "cloud", nats: { servers: cluster.urls }, stream: { replicas: 3 }, sites };
}

export async function nodeOn(host: UplinkHost, name: string): Promise<Node> {
  return createNode({ name, runtimeDir: host.runtimeDir });
}

/** Publishes `count` persistent messages `<tag>-<i>` on `topic`, 32 at a time, each confirmed. */
export async function publish(
  node: Node,
  topic: string,
  tag: string,
  from: number,
  count: number,
): Promise<void> {
  const pub = await node.createPublisher(topic, std_msgs.String, { qos: { durability: "persistent" } });
  let next = from;
  const end = from + count;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < end) await pub.publish({ data: `${tag}-${next++}` });
    }),
  );
}

/** Resolves once the durable topic holds `count` messages; rejects after `timeoutMs` naming what it saw. */
export async function waitCount(
  store: StoreClient,
  topic: string,
  count: number,
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  let seen = -1;
  for (;;) {
    const info = await store.info({ topic });
    seen = info.exists ? info.count : 0;
    if (seen >= count) return;
    if (Date.now() > end)
      throw new Error(`${topic} has ${seen} messages after ${timeoutMs} ms, expected ${count}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every payload of a durable topic, in order. */
export async function readAll(store: StoreClient, topic: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let from = 1; ;) {
    const r = await store.read({ topic, from_seq: from, from_time_ms: 0, max: 5000 });
    if (r.seqs.length === 0) return out;
    out.push(...r.payloads);
    from = r.seqs[r.seqs.length - 1]! + 1;
  }
}

/** Asserts the cloud's copy holds exactly the site's messages, in the same order. */
export async function assertSameLog(
  site: StoreClient,
  siteTopic: string,
  cloud: StoreClient,
  cloudTopic: string,
): Promise<void> {
  const a = await readAll(site, siteTopic);
  const b = await readAll(cloud, cloudTopic);
  assert.equal(b.length, a.length, `${cloudTopic}: ${b.length} messages, the site has ${a.length}`);
  for (let i = 0; i < a.length; i++) {
    if (Buffer.compare(a[i]!, b[i]!) !== 0)
      assert.fail(
        `${cloudTopic}: message ${i + 1} differs from the site's: ${Buffer.from(b[i]!).toString("hex")} vs ${Buffer.from(a[i]!).toString("hex")}`,
      );
  }
}

export async function proxies(cluster: NatsCluster): Promise<TcpProxy[]> {
  return Promise.all(cluster.servers.map((s) => TcpProxy.start(s.port)));
}

/** Runs a command; rejects with its stderr when it fails. */
export function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr.on("data", (d: Buffer) => (err += d.toString()));
    c.once("error", reject);
    c.once("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} failed (${code}): ${err}`)),
    );
  });
}

/**
 * An edge "host" as a network namespace `mcl-<id>` joined to the host by a veth pair
 * (`mclh<id>` on the host, 10.207.<n>.1/24; `mcln<id>` inside, 10.207.<n>.2/24). The link can be
 * cut (`ip link set … down`) and made lossy (nftables `numgen random`, both ways). Removed on dispose.
 */
export class EdgeNetns {
  readonly ns: string;
  readonly hostIf: string;
  readonly nsIf: string;
  readonly hostAddr: string;
  readonly #table: string;

  private constructor(id: string, n: number) {
    this.ns = `mcl-${id}`;
    this.hostIf = `mclh${id}`;
    this.nsIf = `mcln${id}`;
    this.hostAddr = `10.207.${n}.1`;
    this.#table = `mclloss${id}`;
  }

  static async create(): Promise<EdgeNetns> {
    const id = Math.random().toString(36).slice(2, 7);
    const n = 1 + Math.floor(Math.random() * 250);
    const e = new EdgeNetns(id, n);
    try {
      await sh("ip", ["netns", "add", e.ns]);
      await sh("ip", ["link", "add", e.hostIf, "type", "veth", "peer", "name", e.nsIf]);
      await sh("ip", ["link", "set", e.nsIf, "netns", e.ns]);
      await sh("ip", ["addr", "add", `${e.hostAddr}/24`, "dev", e.hostIf]);
      await sh("ip", ["link", "set", e.hostIf, "up"]);
      await sh("ip", ["-n", e.ns, "addr", "add", `10.207.${n}.2/24`, "dev", e.nsIf]);
      await sh("ip", ["-n", e.ns, "link", "set", e.nsIf, "up"]);
      await sh("ip", ["-n", e.ns, "link", "set", "lo", "up"]);
    } catch (err) {
      await e[Symbol.asyncDispose]();
      throw err;
    }
    return e;
  }

  /** `ip link set … down` on the host side: the edge is cut off. */
  async cut(): Promise<void> {
    await sh("ip", ["link", "set", this.hostIf, "down"]);
  }

  async restore(): Promise<void> {
    await sh("ip", ["link", "set", this.hostIf, "up"]);
  }

  /** Drops `percent` % of the packets each way on the link (nftables numgen). */
  async loss(percent: number): Promise<void> {
    const t = this.#table;
    await sh("nft", ["add", "table", "inet", t]);
    await sh("nft", ["add", "chain", "inet", t, "in", "{ type filter hook input priority 0 ; }"]);
    await sh("nft", ["add", "chain", "inet", t, "out", "{ type filter hook output priority 0 ; }"]);
    await sh("nft", [
      "add",
      "rule",
      "inet",
      t,
      "in",
      "iifname",
      this.hostIf,
      "numgen",
      "random",
      "mod",
      "100",
      "<",
      String(percent),
      "drop",
    ]);
    await sh("nft", [
      "add",
      "rule",
      "inet",
      t,
      "out",
      "oifname",
      this.hostIf,
      "numgen",
      "random",
      "mod",
      "100",
      "<",
      String(percent),
      "drop",
    ]);
  }

  async noLoss(): Promise<void> {
    await sh("nft", ["delete", "table", "inet", this.#table]).catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.noLoss();
    await sh("ip", ["link", "del", this.hostIf]).catch(() => undefined);
    await sh("ip", ["netns", "del", this.ns]).catch(() => undefined);
  }
}
