/**
 * Custom health probes of a supervised process: a command (exit code 0 is healthy), an HTTP URL
 * (a 2xx answer is healthy) or a std_srvs/Trigger service (`success: true` is healthy), each run
 * every `intervalMs` with a `timeoutMs`; `failureThreshold` failures in a row make the process
 * unhealthy, one success makes it healthy again.
 */
import { spawn } from "node:child_process";
import { systemClock, type Clock, type ClockTimer } from "./clock.js";
import type { ProbeSpec } from "./spec.js";

/** Result of one probe. */
export interface ProbeResult {
  ok: boolean;
  /** Why it failed (or "ok"). */
  detail: string;
}

/** What a probe needs from the supervisor. */
export interface ProbeEnv {
  node: string;
  replica: number;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Calls a std_srvs/Trigger service; resolves with its answer. */
  trigger(service: string, timeoutMs: number): Promise<{ success: boolean; message: string }>;
}

const fill = (s: string, e: ProbeEnv): string =>
  s.replaceAll("{replica}", String(e.replica)).replaceAll("{node}", e.node);

/** Runs a probe once. Never throws. */
export async function runProbe(p: ProbeSpec, e: ProbeEnv): Promise<ProbeResult> {
  switch (p.kind) {
    case "command":
      return new Promise((resolve) => {
        const [prog, ...args] = p.target.map((x) => fill(x, e));
        const child = spawn(prog === "node" ? process.execPath : prog!, args, {
          cwd: e.cwd,
          env: e.env,
          stdio: "ignore",
          timeout: p.timeoutMs,
          killSignal: "SIGKILL",
        });
        child.on("error", (err) =>
          resolve({ ok: false, detail: `probe command failed to start: ${err.message}` }),
        );
        child.on("exit", (code, signal) =>
          resolve(
            code === 0
              ? { ok: true, detail: "ok" }
              : {
                  ok: false,
                  detail:
                    signal === "SIGKILL"
                      ? `probe command did not finish within ${p.timeoutMs} ms`
                      : `probe command exited with ${code ?? signal}`,
                },
          ),
        );
      });
    case "http": {
      const url = fill(p.target[0]!, e);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(p.timeoutMs) });
        await res.body?.cancel();
        return res.ok ? { ok: true, detail: "ok" } : { ok: false, detail: `GET ${url}: HTTP ${res.status}` };
      } catch (err) {
        return { ok: false, detail: `GET ${url}: ${(err as Error).message}` };
      }
    }
    case "service": {
      const name = fill(p.target[0]!, e);
      try {
        const r = await e.trigger(name, p.timeoutMs);
        return r.success
          ? { ok: true, detail: "ok" }
          : { ok: false, detail: `${name}: ${r.message || "success false"}` };
      } catch (err) {
        return { ok: false, detail: `${name}: ${(err as Error).message}` };
      }
    }
  }
}

/** Options of ProbeLoop. */
export interface ProbeLoopOptions {
  /** Times the probes (default the wall clock). */
  clock?: Clock;
  /** Runs one probe (default runProbe). */
  run?: (spec: ProbeSpec, env: ProbeEnv) => Promise<ProbeResult>;
}

/** Runs a probe on its interval and reports transitions. */
export class ProbeLoop {
  readonly #spec: ProbeSpec;
  readonly #env: ProbeEnv;
  readonly #onChange: (healthy: boolean, detail: string) => void;
  readonly #clock: Clock;
  readonly #run: (spec: ProbeSpec, env: ProbeEnv) => Promise<ProbeResult>;
  #timer: ClockTimer | undefined;
  #failures = 0;
  #stopped = false;
  /** undefined until the first result. */
  healthy: boolean | undefined;
  detail = "";

  /** Starts probing after `spec.initialDelayMs`; `onChange` is called on each transition. */
  constructor(
    spec: ProbeSpec,
    env: ProbeEnv,
    onChange: (healthy: boolean, detail: string) => void,
    opts: ProbeLoopOptions = {},
  ) {
    this.#spec = spec;
    this.#env = env;
    this.#onChange = onChange;
    this.#clock = opts.clock ?? systemClock;
    this.#run = opts.run ?? runProbe;
    this.#timer = this.#clock.setTimer(spec.initialDelayMs, () => void this.#tick());
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const r = await this.#run(this.#spec, this.#env);
    if (this.#stopped) return;
    this.detail = r.detail;
    if (r.ok) {
      this.#failures = 0;
      if (this.healthy !== true) {
        this.healthy = true;
        this.#onChange(true, r.detail);
      }
    } else if (++this.#failures >= this.#spec.failureThreshold && this.healthy !== false) {
      this.healthy = false;
      this.#onChange(false, r.detail);
    }
    if (!this.#stopped) this.#timer = this.#clock.setTimer(this.#spec.intervalMs, () => void this.#tick());
  }

  /** Stops probing; no result is reported after this. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }
}
