/**
 * "Hosts" for placement tests: each a runtime, data and key directory of its own and a host name,
 * with a `myelin hub` (supervisor included) started through the CLI, optionally inside a network
 * namespace. Hubs stop with SIGTERM (their supervisors stop what they run); whatever is still
 * alive afterwards — hubs, supervised processes (from the fixtures' event file) — is killed by pid.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { processRunning, type ProcessRow } from "../src/orchestrator/index.js";
import { KeyStore } from "../src/transport/key-store.js";

/** The `myelin` CLI script. */
export const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));
/** The supervised node of the tests (a module: prints `hello from NAME#REPLICA`, serves `/NAME/who`). */
export const ORCH_NODE = fileURLToPath(new URL("./fixtures/orch-node.js", import.meta.url));

/** One host of the world. */
export interface PlHost {
  name: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  keys: KeyStore;
  publicKey: string;
  /** Command prefix that runs a program on this host (`ip netns exec NS`), or none. */
  prefix: string[];
}

/** A long-running `myelin` command (a hub, `logs -f`), its output kept. */
export class PlHub {
  readonly child: ChildProcess;
  out = "";
  readonly exited: Promise<void>;
  #listeners = new Set<() => void>();

  /** Runs `myelin ARGS` on `host`. */
  constructor(host: PlHost, args: string[]) {
    const [cmd, ...rest] = [...host.prefix, process.execPath, CLI, ...args];
    this.child = spawn(cmd!, rest, { env: host.env, stdio: ["ignore", "pipe", "pipe"] });
    const feed = (s: string): void => {
      this.out += s;
      for (const l of this.#listeners) l();
    };
    this.child.stdout!.setEncoding("utf8").on("data", feed);
    this.child.stderr!.setEncoding("utf8").on("data", feed);
    this.exited = new Promise((resolve) => this.child.once("close", () => resolve()));
  }

  /** How much output there is now: give it to `waitFor` to look only at what comes after. */
  mark(): number {
    return this.out.length;
  }

  /**
   * Resolves with the first match of `re` in the output (from offset `from`); rejects on exit or
   * after `timeoutMs`.
   */
  waitFor(re: RegExp, timeoutMs: number, what: string, from = 0): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = this.out.slice(from).match(re);
        if (m === null) return;
        done();
        resolve(m);
      };
      const fail = (why: string) => (): void => {
        done();
        reject(new Error(`${why} ${what} (${re}); hub output:\n${this.out.slice(-4000)}`));
      };
      const timer = setTimeout(fail(`no line within ${timeoutMs} ms for`), timeoutMs);
      const onExit = fail("the hub exited before");
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        this.child.off("close", onExit);
      };
      this.#listeners.add(check);
      this.child.once("close", onExit);
      check();
    });
  }

  /** Its tcp endpoint, once it listens. */
  async tcp(timeoutMs = 20000): Promise<string> {
    return (await this.waitFor(/listening on (tcp:\/\/[0-9.]+:\d+)/, timeoutMs, "the tcp listener"))[1]!;
  }

  /** SIGTERM (the supervisor stops its processes), SIGKILL after `graceMs`. */
  async stop(graceMs = 20000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGCONT");
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** The outcome of one CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** A set of hosts under one temporary root, removed (and everything killed) on dispose. */
export class PlWorld {
  readonly root: string;
  readonly events: string;
  readonly hosts: PlHost[] = [];
  readonly hubs: PlHub[] = [];

  /** @param insecure plain tcp between the hosts (no keys) */
  constructor(names: string[], opts: { insecure?: boolean; prefixes?: string[][] } = {}) {
    this.root = mkdtempSync(join(tmpdir(), "wt-placement-"));
    this.events = join(this.root, "events.jsonl");
    writeFileSync(this.events, "");
    names.forEach((name, i) => {
      const dir = join(this.root, name);
      mkdirSync(join(dir, "run"), { recursive: true, mode: 0o700 });
      const keys = new KeyStore(join(dir, "keys"), undefined);
      const publicKey = opts.insecure === true ? "" : keys.init().publicKey;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        MYELIN_RUNTIME_DIR: join(dir, "run"),
        MYELIN_DATA_DIR: join(dir, "data"),
        MYELIN_KEYS_DIR: keys.dir,
        MYELIN_HOST: name,
        MYELIN_INSECURE: opts.insecure === true ? "1" : "",
        ORCH_EVENTS: this.events,
      };
      for (const k of [
        "MYELIN_HUB",
        "MYELIN_HUB_KEY",
        "MYELIN_LABELS",
        "MYELIN_PEERS",
        "MYELIN_POLICY",
        "MYELIN_DEBUG",
      ])
        delete env[k];
      this.hosts.push({ name, dir, env, keys, publicKey, prefix: opts.prefixes?.[i] ?? [] });
    });
    if (opts.insecure !== true) {
      for (const a of this.hosts) for (const b of this.hosts) if (a !== b) a.keys.trust(b.name, b.publicKey);
    }
  }

  /** Starts `myelin hub ARGS` on host `i`. */
  /**
   * Starts host 0's hub with `args`, then host 1's with `args`, `extra1` and a `--peer` to host 0
   * (with host 0's key unless `insecure`), and waits until both supervisors are ready and host 0
   * sees host 1's.
   */
  async pair(args: string[], extra1: string[] = [], insecure = false): Promise<[PlHub, PlHub]> {
    const first = this.hub(0, args);
    const tcp = await first.tcp();
    const second = this.hub(1, [
      ...args,
      "--peer",
      insecure ? tcp : `${tcp}#${this.hosts[0]!.name}`,
      ...extra1,
    ]);
    await second.tcp();
    for (const h of [first, second]) await h.waitFor(/supervisor ready/, 20000, "the supervisor");
    await this.waitForPeer(0, this.hosts[1]!.name);
    return [first, second];
  }

  hub(i: number, args: string[]): PlHub {
    const h = new PlHub(this.hosts[i]!, ["hub", "--host", this.hosts[i]!.name, ...args]);
    this.hubs.push(h);
    return h;
  }

  /** Starts `myelin ARGS` on host `i` and leaves it running (stopped on dispose), e.g. `logs -f`. */
  spawn(i: number, args: string[]): PlHub {
    const p = new PlHub(this.hosts[i]!, args);
    this.hubs.unshift(p);
    return p;
  }

  /** Runs `myelin ARGS` on host `i` to completion (killed after `timeoutMs`). */
  cli(i: number, args: string[], timeoutMs = 90000): Promise<CliRun> {
    const h = this.hosts[i]!;
    const [cmd, ...rest] = [...h.prefix, process.execPath, CLI, ...args];
    return new Promise((resolve) => {
      execFile(
        cmd!,
        rest,
        { env: h.env, timeout: timeoutMs, killSignal: "SIGKILL" },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  /** `myelin ps --json` rows on host `i` (any exit code: a host not answering gives 2). */
  async ps(i: number, extra: string[] = []): Promise<ProcessRow[]> {
    const r = await this.cli(i, ["ps", "--json", ...extra]);
    try {
      return JSON.parse(r.stdout) as ProcessRow[];
    } catch {
      throw new Error(
        `ps on ${this.hosts[i]!.name} printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`,
      );
    }
  }

  /**
   * Waits until host `i`'s hub has `peer` up and that host's supervisor on its graph (a `myelin ps`
   * on host `i` no longer says the peer is away or has none).
   */
  async waitForPeer(i: number, peer: string, timeoutMs = 30000): Promise<void> {
    await eventually(
      async () => {
        const st = await this.cli(i, ["site", "status", "--json"]);
        const peers = (JSON.parse(st.stdout) as { peers: { host: string; state: string }[] }).peers;
        if (!peers.some((p) => p.host === peer && p.state === "up")) return undefined;
        const ps = await this.cli(i, ["ps"]);
        return new RegExp(`host ${peer}: (not reached|its hub runs without)`).test(ps.stderr)
          ? undefined
          : true;
      },
      timeoutMs,
      `${peer}'s supervisor seen from ${this.hosts[i]!.name}`,
    );
  }

  /** Writes a file under the root and returns its path. */
  file(name: string, text: string): string {
    const p = join(this.root, name);
    writeFileSync(p, text);
    return p;
  }

  /** Pids the supervised fixtures reported. */
  supervisedPids(): number[] {
    const pids = new Set<number>();
    for (const l of readFileSync(this.events, "utf8").split("\n")) {
      if (l.trim() === "") continue;
      try {
        const pid = (JSON.parse(l) as { pid?: unknown }).pid;
        if (typeof pid === "number") pids.add(pid);
      } catch {
        // a line cut short by a kill
      }
    }
    return [...pids];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.hubs.map((h) => h.stop()));
    for (const pid of this.supervisedPids()) {
      if (processRunning(pid)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Polls `fn` until it returns a value (not undefined), or throws naming `what` after `timeoutMs`. */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  everyMs = 250,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err : new Error(String(err));
    }
    if (Date.now() > end)
      throw new Error(
        `${what}: not within ${timeoutMs} ms${last !== undefined ? ` (last error: ${last.message})` : ""}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `host:process#replica:state` of each row, sorted: a table to compare at a glance. */
export const summary = (rows: ProcessRow[]): string[] =>
  rows.map((r) => `${r.host}:${r.process}#${r.replica}:${r.state}`).sort();

/** A launch spec whose nodes all run the test module, each with extra fields (`placement: [x]`). */
export const spec = (nodes: Record<string, string>): string =>
  `version: 1\nnodes:\n${Object.entries(nodes)
    .map(([n, extra]) => `  ${n}: { module: ${ORCH_NODE}${extra === "" ? "" : `, ${extra}`} }`)
    .join("\n")}\n`;
