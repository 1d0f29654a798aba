/**
 * What the OS says about a process: alive or not, its start time (to tell a pid reused by another
 * process from the one we launched), CPU time and resident memory. Reads `/proc` on Linux; elsewhere
 * only liveness is known (start time, CPU and memory read as undefined).
 */
import { readFileSync } from "node:fs";

/** True if a process with this pid exists (ours or not). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** True if the process exists and is not a zombie (exited, not yet reaped by its parent). */
export function processRunning(pid: number): boolean {
  if (!pidAlive(pid)) return false;
  const f = statFields(pid);
  return f === undefined ? true : f[0] !== "Z" && f[0] !== "X";
}

/** Fields of /proc/<pid>/stat after the command name, split (field 3 is index 0). */
function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = s.lastIndexOf(")");
    return s
      .slice(close + 2)
      .trim()
      .split(" ");
  } catch {
    return undefined;
  }
}

/**
 * The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), a stable
 * identity together with the pid; undefined if unknown. A zombie counts as gone.
 */
export function procStartTime(pid: number): string | undefined {
  const f = statFields(pid);
  if (f === undefined || f[0] === "Z" || f[0] === "X") return undefined;
  return f[19];
}

/** CPU time used (user + system), in ms, and resident memory, in bytes. */
export interface ProcUsage {
  cpuMs: number;
  rssBytes: number;
}

const TICKS_PER_S = 100; // USER_HZ is 100 on every Linux that Node supports

/** CPU and memory of a process, or undefined if unknown. */
export function procUsage(pid: number): ProcUsage | undefined {
  const f = statFields(pid);
  if (f === undefined) return undefined;
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  const rssPages = Number(f[21]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(rssPages)) return undefined;
  return { cpuMs: ((utime + stime) * 1000) / TICKS_PER_S, rssBytes: rssPages * 4096 };
}

/**
 * True if `pid` is running and is the process that had `startTime` (when known). A zombie is not
 * running: a process that exited and whose parent (for adopted processes often an init that reaps
 * late, in containers) has not reaped it yet.
 */
export function sameProcess(pid: number, startTime: string | undefined): boolean {
  if (!processRunning(pid)) return false;
  if (startTime === undefined) return true; // nothing to compare with (not Linux)
  return procStartTime(pid) === startTime;
}
