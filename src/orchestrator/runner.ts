/**
 * The module runner: the process the supervisor starts for module nodes. It reads what to run from
 * `MYELIN_LAUNCH` (JSON: `{ modules: ModuleEntry[], replica }`), creates one node per module
 * (several modules in one runner = composition: they share the process and talk by function
 * call), and calls each module's export with `(node, ctx)`. A node is ready once its function
 * resolved, unless the function called `ctx.deferReady()` (then `node.setReady(true)` says when).
 * The function may return a cleanup function, called on SIGTERM/SIGINT before the nodes close.
 *
 * Before it loads the node and the modules, the runner holds back V8's compilers and the young
 * generation's growth until the process first gets busy (idle-costs.ts; `MYELIN_NODE_IDLE_V8=off`
 * keeps V8's defaults): an idle node then stays about 0.7 MiB smaller. The node comes from the
 * package entry, one module (scripts/bundle.mjs), so the module loader no longer gets hot.
 *
 *   export default async function (node: Node, ctx: LaunchContext) { … return () => stop(); }
 */
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Node } from "../node/index.js";
import { holdIdleCosts, releaseWhenBusy } from "./idle-costs.js";
import type { ModuleEntry } from "./spec.js";

/** What a module's function gets besides its node. */
export interface LaunchContext {
  /** The node name. */
  name: string;
  /** Replica index, from 0. */
  replica: number;
  /** `args` of the node in the spec. */
  args: string[];
  /** Aborted when the process is asked to stop. */
  signal: AbortSignal;
  /** Keep the node not ready after the function returns; call `node.setReady(true)` when it is. */
  deferReady(): void;
}

/** What a module exports: a function of (node, ctx), optionally returning a cleanup. */
export type NodeMain = (node: Node, ctx: LaunchContext) => unknown;

interface Launch {
  modules: ModuleEntry[];
  replica: number;
}

/** The package entry (scripts/bundle.mjs), as seen from dist/src/orchestrator. */
const PACKAGE_ENTRY = new URL("../../pkg/myelin.js", import.meta.url);

/**
 * The node API from the package entry, the copy a module gets with `import … from "myelin"`: the
 * module and its node then share one copy of Myelin's code instead of loading a second one. From
 * the modules under src/ when the entry was not built (`tsc` alone, or run from the sources).
 */
async function loadNodeApi(): Promise<typeof import("../node/index.js")> {
  if (existsSync(fileURLToPath(PACKAGE_ENTRY))) {
    return (await import(PACKAGE_ENTRY.href)) as typeof import("../node/index.js");
  }
  return import("../node/index.js");
}

async function main(): Promise<void> {
  const raw = process.env["MYELIN_LAUNCH"];
  if (raw === undefined) {
    process.stderr.write(
      "myelin runner: MYELIN_LAUNCH is not set; this program is started by the hub's supervisor\n",
    );
    process.exit(2);
  }
  const launch = JSON.parse(raw) as Launch;
  holdIdleCosts(process.env, "MYELIN_NODE_IDLE_V8");
  const { createNode } = await loadNodeApi();
  const ac = new AbortController();
  const nodes: Node[] = [];
  const cleanups: (() => unknown)[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    ac.abort();
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        process.stderr.write(`cleanup failed: ${(err as Error).message}\n`);
      }
    }
    await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
    process.exit(code);
  };
  process.on("SIGTERM", () => void stop(0));
  process.on("SIGINT", () => void stop(0));

  for (const m of launch.modules) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(m.path).href)) as Record<string, unknown>;
    } catch (err) {
      process.stderr.write(
        `node ${m.node}: cannot load module ${m.path}: ${(err as Error).stack ?? String(err)}\n`,
      );
      return stop(1);
    }
    const fn = mod[m.export];
    if (typeof fn !== "function") {
      const fns = Object.keys(mod).filter((k) => typeof mod[k] === "function");
      process.stderr.write(
        `node ${m.node}: module ${m.path} has no function export '${m.export}'; its function exports: ${fns.join(", ") || "none"}\n`,
      );
      return stop(1);
    }
    const node = await createNode({ name: m.node, parameters: m.parameters, manualReady: true });
    nodes.push(node);
    let deferred = false;
    const ctx: LaunchContext = {
      name: m.node,
      replica: launch.replica,
      args: m.args,
      signal: ac.signal,
      deferReady: () => {
        deferred = true;
      },
    };
    try {
      const r = await (fn as NodeMain)(node, ctx);
      if (typeof r === "function") cleanups.push(r as () => unknown);
    } catch (err) {
      process.stderr.write(`node ${m.node}: ${(err as Error).stack ?? String(err)}\n`);
      return stop(1);
    }
    if (!deferred) node.setReady(true);
  }
  releaseWhenBusy();
}

await main();
