/**
 * Guards of the architecture (docs/architecture.md), checked over the import graph of src/:
 *
 * 1. Layer order. The layers, in order: msgs, codec, transport, node, hub, store, orchestrator,
 *    gateway, record, foxglove, web, tools. A file may import only from its own layer and the layers before it.
 *    src/process-shared.ts (state kept once per process) is importable by every layer, src/errors.ts
 *    included, and imports nothing of ours; src/errors.ts is importable by every layer and imports
 *    nothing of ours but src/process-shared.ts; src/index.ts (the public API) may import every
 *    layer and no layer imports it.
 * 2. Only src/transport/zmq/ imports zeromq (everything else goes through src/transport/transport.ts).
 *
 * Imports are read with a regular expression over `import … from "…"`, `export … from "…"`,
 * `import "…"` and `import("…")` in every non-test .ts file under src/.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, posix, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The layers, first to last: a layer may depend only on itself and the ones before it. */
const LAYERS = [
  "msgs",
  "codec",
  "transport",
  "node",
  "hub",
  "store",
  "orchestrator",
  "gateway",
  "record",
  "foxglove",
  "web",
  "tools",
];

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SRC = join(ROOT, "src");

/** Every non-test .ts file under src/, as a path relative to src/ with `/`. */
function sourceFiles(dir = SRC, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) {
      out.push(relative(SRC, p).split(sep).join("/"));
    }
  }
  return out.sort();
}

const STATIC_IMPORT = /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The module specifiers `file` (relative to src/) imports, with the line of each. */
function importsOf(file: string): { spec: string; line: number }[] {
  const text = readFileSync(join(SRC, file), "utf8");
  const lineAt = (i: number): number => text.slice(0, i).split("\n").length;
  const out: { spec: string; line: number }[] = [];
  for (const re of [STATIC_IMPORT, DYNAMIC_IMPORT]) {
    for (const m of text.matchAll(re)) out.push({ spec: m[1]!, line: lineAt(m.index) });
  }
  return out;
}

/** The layer a path relative to src/ belongs to: a folder name, or the top-level file itself. */
function layerOf(path: string): string {
  return path.split("/")[0]!;
}

test("imports follow the layer order", () => {
  const violations: string[] = [];
  const files = sourceFiles();
  assert.ok(files.length > 50, `found only ${files.length} source files; is the scan broken?`);
  let edges = 0;
  for (const file of files) {
    const from = layerOf(file);
    if (
      from !== "errors.ts" &&
      from !== "process-shared.ts" &&
      from !== "index.ts" &&
      !LAYERS.includes(from)
    ) {
      violations.push(
        `src/${file}: src/${from} is no layer; put the file in a layer's folder, or add the new layer to LAYERS (and to docs/architecture.md) in its place in the order`,
      );
      continue;
    }
    for (const { spec, line } of importsOf(file)) {
      if (!spec.startsWith(".")) continue; // a package or node: builtin
      const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, ".ts");
      const where = `src/${file}:${line}: imports "${spec}"`;
      if (target.startsWith("../")) {
        violations.push(`${where}, outside src/`);
        continue;
      }
      edges++;
      const to = layerOf(target);
      if (from === "index.ts") continue; // the public API re-exports every layer
      if (to === "index.ts") {
        violations.push(`${where}: only users import the public API; import the module itself`);
      } else if (from === "process-shared.ts") {
        violations.push(`${where}: src/process-shared.ts is importable by every layer and so imports none`);
      } else if (to === "process-shared.ts") {
        continue;
      } else if (from === "errors.ts") {
        violations.push(
          `${where}: src/errors.ts is importable by every layer and so imports none but src/process-shared.ts`,
        );
      } else if (to === "errors.ts") {
        continue;
      } else if (!LAYERS.includes(to)) {
        violations.push(`${where}: src/${to} is no layer`);
      } else if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) {
        violations.push(
          `${where}: layer ${from} may not depend on layer ${to}, which comes after it (${LAYERS.join(" → ")}); move the shared code to ${from} or a layer before it`,
        );
      }
    }
  }
  assert.ok(edges > 100, `found only ${edges} relative imports; is the regular expression broken?`);
  assert.deepEqual(violations, [], `layer violations:\n${violations.join("\n")}`);
});

test("only src/transport/zmq/ imports zeromq", () => {
  const offenders: string[] = [];
  for (const file of sourceFiles()) {
    if (file.startsWith("transport/zmq/")) continue;
    for (const { spec, line } of importsOf(file)) {
      if (spec === "zeromq" || spec.startsWith("zeromq/")) offenders.push(`src/${file}:${line}`);
    }
  }
  assert.deepEqual(
    offenders,
    [],
    `zeromq is imported outside src/transport/zmq/ (go through the Transport interface of src/transport/transport.ts):\n${offenders.join("\n")}`,
  );
});

test("the guard's regular expressions see every form of import", () => {
  const sample = [
    'import { a, type B } from "./a.js";',
    "import type {\n  C,\n  D,\n} from '../b/c.js';",
    'import * as e from "./e.js";',
    'import "./side-effect.js";',
    'export { f } from "./f.js";',
    'export * from "./g.js";',
    'export type { H } from "./h.js";',
    'const m = await import("./dyn.js");',
    ' * import { not } from "./in-a-comment.js" is in a doc comment, not at a line start',
  ].join("\n");
  const found = [...sample.matchAll(STATIC_IMPORT), ...sample.matchAll(DYNAMIC_IMPORT)].map((m) => m[1]);
  assert.deepEqual(found.sort(), [
    "../b/c.js",
    "./a.js",
    "./dyn.js",
    "./e.js",
    "./f.js",
    "./g.js",
    "./h.js",
    "./side-effect.js",
  ]);
});
