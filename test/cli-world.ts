/**
 * Tests of the `myelin` CLI against real processes: a world (its own runtime and data directory,
 * removed after the test), spawned CLI processes whose output can be waited on line by line, and
 * `myelin hub` started and waited for. Every spawned process is killed in an after hook.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";

/** The `myelin` CLI script. */
export const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

/** A runtime directory and the environment that points the CLI at it. */
export interface World {
  dir: string;
  env: NodeJS.ProcessEnv;
}

/** A fresh runtime directory (and data directory inside it), removed after the test. */
export async function world(t: TestContext, prefix = "myelin-cli-"): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MYELIN_RUNTIME_DIR: dir,
    MYELIN_DATA_DIR: join(dir, "data"),
  };
  delete env["MYELIN_HUB"];
  delete env["MYELIN_DEBUG"];
  t.after(() => rm(dir, { recursive: true, force: true }));
  return { dir, env };
}

/** A spawned process whose output can be waited on. */
export class CliProc {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;
  #listeners = new Set<() => void>();

  constructor(cmd: string, args: string[], w: World) {
    this.child = spawn(cmd, args, { env: w.env, stdio: ["ignore", "pipe", "pipe"] });
    const feed = (which: "stdout" | "stderr") => (s: string) => {
      this[which] += s;
      for (const l of this.#listeners) l();
    };
    this.child.stdout!.setEncoding("utf8").on("data", feed("stdout"));
    this.child.stderr!.setEncoding("utf8").on("data", feed("stderr"));
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }

  /** Resolves with the first stdout line matching `re`; rejects on exit or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs = 10000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const line = this.stdout.split("\n").find((l) => re.test(l));
        if (line === undefined) return;
        done();
        resolve(line);
      };
      const fail = (why: string) => (): void => {
        done();
        reject(new Error(`${why} ${re}; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`));
      };
      const timer = setTimeout(fail(`no line within ${timeoutMs} ms matching`), timeoutMs);
      const onExit = fail("exited before printing");
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        this.child.off("close", onExit);
      };
      this.#listeners.add(check);
      this.child.on("close", onExit);
      check();
    });
  }

  /** The exit code; kills the process and rejects after `timeoutMs`. */
  async exit(timeoutMs = 10000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill("SIGKILL");
        reject(
          new Error(`did not exit within ${timeoutMs} ms; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}

/** Spawns `myelin ARGS`, killed after the test if still running. */
export function spawnCli(t: TestContext, w: World, args: string[]): CliProc {
  const p = new CliProc(process.execPath, [CLI, ...args], w);
  t.after(() => p.kill());
  return p;
}

/** Runs `myelin ARGS` to completion. */
export async function runCli(
  t: TestContext,
  w: World,
  args: string[],
  timeoutMs = 10000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnCli(t, w, args);
  const code = await p.exit(timeoutMs);
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** Starts `myelin hub ARGS` and waits until it listens. */
export async function startCliHub(t: TestContext, w: World, args: string[] = []): Promise<CliProc> {
  const hub = spawnCli(t, w, ["hub", ...args]);
  await hub.waitFor(/listening on ipc:/);
  return hub;
}
