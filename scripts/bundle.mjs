#!/usr/bin/env node
/**
 * Builds the package entry (`import … from "myelin"`): dist/pkg/myelin.js, one module holding
 * the public API and everything it loads up front, plus a chunk per part loaded on demand (the hub,
 * the store service, the MQTT gateway, the bridges, each carrier), from the compiled modules under
 * dist/src (run after `tsc`). Run by `npm run build`.
 *
 * Why: Node's module loader costs memory and CPU per module. The public API is some 110 modules;
 * loading them makes the loader's own functions hot enough for V8's optimizing compiler, whose code
 * pages then stay resident, and grows the young generation. One module instead keeps an idle node
 * about 6 MiB smaller (docs/performance.md, "The package entry is one module"). The modules under
 * dist/src stay as they are for the CLI, the hub and the tests.
 *
 * Dependencies stay external (resolved from node_modules at run time) but msgpackr; comments are
 * dropped (the doc comments live in the .d.ts files under dist/src, which `types` points to).
 */
import { rm, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { rolldown } from "rolldown";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const input = path.join(root, "dist", "src", "index.js");
const out = path.join(root, "dist", "pkg");
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const deps = Object.keys(pkg.dependencies ?? {});

/**
 * Dependencies bundled in: msgpackr, which every node loads (its pure-JavaScript encoder and
 * decoder; four modules, and sources V8 would keep as two-byte strings).
 */
const BUNDLED = new Set(["msgpackr"]);

/** Node's own modules and the package's other dependencies are imported at run time. */
function external(id) {
  if (id.startsWith("node:") || builtinModules.includes(id)) return true;
  return deps.some((d) => !BUNDLED.has(d) && (id === d || id.startsWith(`${d}/`)));
}

await rm(out, { recursive: true, force: true });
const bundle = await rolldown({
  input: { myelin: input },
  platform: "node",
  external,
  logLevel: "warn",
});
const { output } = await bundle.write({
  dir: out,
  format: "esm",
  comments: false,
  // ASCII only: V8 keeps each module's source in memory, as a two-byte string when it holds a
  // single character outside Latin-1 (an ellipsis in a message is enough), twice the bytes.
  charset: "ascii",
  sourcemap: true,
  chunkFileNames: "[name]-[hash].js",
  // Everything the entry loads up front goes into one chunk; parts loaded with import() stay
  // separate, so a node that never starts a hub or a gateway never reads them.
  codeSplitting: { groups: [{ name: "myelin-core", tags: ["$initial"] }] },
});
await bundle.close();
// A class renamed to avoid a clash of names between modules would change its `name`, which error
// classes are named by (and two copies of Myelin in one process match errors by): refuse it.
const renamed = output.flatMap((o) =>
  o.type === "chunk"
    ? [...o.code.matchAll(/\bclass ([A-Za-z_$][\w$]*\$\d+)\b/g)].map((m) => `${o.fileName}: ${m[1]}`)
    : [],
);
// A module that finds a file relative to itself (`new URL("./x.js", import.meta.url)`) finds the
// wrong one once bundled into dist/pkg: refuse it, except where the path is known to be looked up
// from dist/pkg too (the shared-memory addon's candidates) and `createRequire`, which resolves
// packages the same way from any folder of the package.
const SELF_RELATIVE_OK = [/createRequire\(import\.meta\.url\)/g, /new URL\(up \+ rel, import\.meta\.url\)/g];
const selfRelative = output.flatMap((o) => {
  if (o.type !== "chunk") return [];
  let code = o.code;
  for (const ok of SELF_RELATIVE_OK) code = code.replace(ok, "");
  return code.includes("import.meta.url") ? [o.fileName] : [];
});
if (selfRelative.length > 0) {
  console.error(
    `myelin: code bundled into ${selfRelative.join(", ")} finds a file relative to its module (import.meta.url), which moves into dist/pkg ` +
      "when bundled; look the file up from dist/pkg as well (see candidates() in src/transport/shm/shm-addon.ts), " +
      "or load that module with import() from one that is not bundled",
  );
  process.exit(1);
}
if (renamed.length > 0) {
  console.error(
    `myelin: the bundle renamed classes to avoid a clash: ${renamed.join(", ")}; give the classes distinct names in src/`,
  );
  process.exit(1);
}
// Node looks for the nearest package.json of every module it loads to learn its type: one here
// ends that walk at the first step.
await writeFile(path.join(out, "package.json"), `${JSON.stringify({ type: "module" })}\n`);
const files = output.filter((o) => o.type === "chunk").length;
console.log(`myelin: package entry dist/pkg/myelin.js built (${files} modules)`);
