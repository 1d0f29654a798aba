// Runs every compiled test file with node:test. Unit tests sit next to the code (dist/src/**/*.test.js),
// integration tests under dist/test/. Pass file filters as arguments: `npm test -- hub`.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
// tsc never deletes output: a test file moved or removed since the last build leaves its compiled
// copy behind. Run only compiled tests whose source still exists.
const hasSource = (f) => existsSync(f.replace(/^dist[\\/]/, "").replace(/\.js$/, ".ts"));
const files = [...walk("dist/src", []), ...walk("dist/test", [])]
  .filter(hasSource)
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error("no test files matched", filters);
  process.exit(1);
}
// --test-timeout bounds every test without its own timeout and every test file as a whole: a file
// of many multi-process tests can take minutes on a loaded 2-core machine; each test keeps its own,
// tighter bound.
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=2", "--test-timeout=180000", ...files], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
