/** Waiting for a forked benchmark worker's IPC messages (`{type, ...}`; `{type: "error", message}` on failure). */
import type { ChildProcess } from "node:child_process";

/**
 * Resolves with the next message of `type` from `child`; rejects when the worker reports an
 * error, exits first, or `timeoutMs` passes. `who` names the worker in errors.
 */
export function expectMessage<T>(
  child: ChildProcess,
  type: string,
  timeoutMs: number,
  who: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`no ${type} from a ${who} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMsg = (m: { type?: string; message?: string }): void => {
      if (m.type === type) done(undefined, m as T);
      else if (m.type === "error") done(new Error(m.message ?? `${who} failed`));
    };
    const onExit = (code: number | null): void => done(new Error(`${who} exited (${code}) before ${type}`));
    function done(err?: Error, v?: T): void {
      clearTimeout(timer);
      child.off("message", onMsg);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(v!);
    }
    child.on("message", onMsg);
    child.once("exit", onExit);
  });
}
