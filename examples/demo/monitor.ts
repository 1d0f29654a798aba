/** The monitor (a module of the demo's launch spec): prints what arrives once a second (see ../monitor.ts). */
import type { LaunchContext, Node } from "myelin";
import { runMonitor } from "../monitor.js";

/** Starts the monitor; returns its stop function. */
export function runDemoMonitor(node: Node, _ctx: LaunchContext): Promise<() => void> {
  return runMonitor(node, (line) => console.log(line));
}
