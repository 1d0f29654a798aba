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
import { freePort } from "./bridge-peers.js";
import { spawnFixture, type Proc } from "./helpers.js";

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

  private constructor(servers: ClusterServer[], dir: string) {
    this.servers = servers;
    this.#dir = dir;
  }

  static async start(n = 3): Promise<NatsCluster> {
    const dir = mkdtempSync(join(tmpdir(), "myelin-natsc-"));
    const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
    const cports = await Promise.all(Array.from({ length: n }, () => freePort()));
    const routes = cports.map((p) => `nats://127.0.0.1:${p}`).join(",");
    const servers = ports.map(
      (p, i) =>
        new ClusterServer(`n${i}`, p, [
          "-a",
          "127.0.0.1",
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
    const c = new NatsCluster(servers, dir);
    try {
      await Promise.all(servers.map((s) => s.start()));
    } catch (err) {
      await c[Symbol.asyncDispose]();
      throw err;
    }
    return c;
  }

  get urls(): string[] {
    return this.servers.map((s) => `nats://127.0.0.1:${s.port}`);
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

  /** Starts (or restarts) the hub and resolves once it is ready. */
  async start(): Promise<Proc> {
    const p = spawnFixture(
      "uplink-hub",
      { dataDir: this.dataDir, uplinkConfig: this.configPath },
      { MYELIN_RUNTIME_DIR: this.runtimeDir },
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
