/**
 * Test helpers: temp runtime directories, fixture processes whose stdout is JSON lines, and
 * waiting on events with a timeout (never on sleeps).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

/** A temp runtime directory, removed on dispose. */
export function tempRuntime(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-test-"));
  return {
    dir,
    [Symbol.dispose]() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Path of a compiled fixture script under dist/test/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));
}

/** Event line a fixture prints. */
export type Line = Record<string, unknown> & { event: string };

/** A child process printing JSON lines; wait for lines with `waitFor`. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: Line[] = [];
  readonly stderr: string[] = [];
  #listeners = new Set<() => void>();
  #exited = false;
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;

  /** `prefix` runs the process through a wrapper, e.g. `["ip", "netns", "exec", "ns1"]`. */
  constructor(script: string, args: string[], env: Record<string, string>, prefix: string[] = []) {
    const [cmd, ...pre] = [...prefix, process.execPath];
    this.child = spawn(cmd, [...pre, script, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    createInterface({ input: this.child.stdout! }).on("line", (l) => {
      try {
        this.lines.push(JSON.parse(l) as Line);
      } catch {
        this.lines.push({ event: "text", text: l });
      }
      this.#notify();
    });
    createInterface({ input: this.child.stderr! }).on("line", (l) => {
      this.stderr.push(l);
    });
    this.child.on("exit", (code, signal) => {
      this.#exited = true;
      this.exitCode = code;
      this.signal = signal;
      this.#notify();
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  /** Resolves with the first line matching `pred` (already seen or future); rejects after `timeoutMs`. */
  waitFor(pred: (l: Line) => boolean, timeoutMs = 10000, what = "a matching line"): Promise<Line> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.lines.find(pred);
        if (hit !== undefined) {
          done();
          resolve(hit);
          return true;
        }
        if (this.#exited) {
          done();
          reject(
            new Error(
              `process exited (${this.exitCode ?? this.signal}) before ${what}; stderr: ${this.stderr.join("\n")}`,
            ),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; last lines: ${JSON.stringify(this.lines.slice(-3))}; stderr: ${this.stderr.join("\n")}`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = (): void => {
        check();
      };
      if (!check()) this.#listeners.add(listener);
    });
  }

  /** Resolves once `count` lines match `pred`. */
  async waitForCount(
    pred: (l: Line) => boolean,
    count: number,
    timeoutMs = 10000,
    what = "lines",
  ): Promise<Line[]> {
    let n = 0;
    await this.waitFor(
      () => {
        n = this.lines.filter(pred).length;
        return n >= count;
      },
      timeoutMs,
      `${count} ${what} (have ${n})`,
    ).catch((e: Error) => {
      throw new Error(`${e.message} — got ${this.lines.filter(pred).length}`);
    });
    return this.lines.filter(pred);
  }

  /** Resolves when the process has exited. */
  exit(timeoutMs = 10000): Promise<void> {
    return this.waitFor(() => false, timeoutMs, "exit").then(
      () => undefined,
      (e: Error) => {
        if (this.#exited) return;
        throw e;
      },
    );
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (!this.#exited) this.child.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#exited) return;
    this.child.kill("SIGKILL");
    await this.exit(5000).catch(() => undefined);
  }
}

/** Spawns a compiled fixture with JSON args. */
export function spawnFixture(name: string, args: unknown, env: Record<string, string>): Proc {
  return new Proc(fixture(name), [JSON.stringify(args)], env);
}

/** Resolves when `pred()` is true, polling on the event loop; rejects after `timeoutMs`. Use only for in-process state with no event to wait on. */
export async function until(pred: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * Runs `program` as an ES module in a new Node process (`node --input-type=module -e`) with `env`
 * added to this one's, and resolves with its stdout once it exits with 0.
 * @throws Error with its stderr when it exits otherwise, or is still running after `timeoutMs`
 */
export async function runModuleProgram(
  program: string,
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<string> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", program], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the child did not finish within ${timeoutMs / 1000} s: ${err}`));
    }, timeoutMs);
    child.once("exit", (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`the child failed (exit ${code}): ${err}`);
  return out;
}
