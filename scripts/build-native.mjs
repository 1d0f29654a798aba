#!/usr/bin/env node
/**
 * Builds the shared-memory addon (native/shm) with node-gyp against the headers of the Node.js
 * that runs this script; run by `npm install` / `npm ci` as the package's install script.
 *
 * It never fails the install: when the build cannot be done (no compiler, no headers, MYELIN_SHM=off)
 * it says why in one line and exits 0; Myelin then sends large frames over the socket (copying).
 * Nothing is downloaded: node-gyp is npm's own copy (or a node-gyp on PATH), pointed at the local
 * headers.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dir = path.join(root, "native", "shm");
const say = (msg) => console.error(`myelin: ${msg}`);

function skip(why) {
  say(`shared memory for large frames not built (${why}); large frames will be copied over the socket`);
  process.exit(0);
}

if (process.env.MYELIN_SHM === "off") skip("MYELIN_SHM=off");
if (process.platform !== "linux") skip(`not supported on ${process.platform}`);
if (!existsSync(path.join(dir, "binding.gyp"))) skip("native/shm/binding.gyp is missing");

/** node-gyp: the one npm runs scripts with, else npm's bundled copy next to this Node.js. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(
      path.dirname(process.execPath),
      "..",
      "lib",
      "node_modules",
      "npm",
      "node_modules",
      "node-gyp",
      "bin",
      "node-gyp.js",
    ),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return undefined;
}

/** Where this Node.js keeps its headers, so node-gyp never downloads them. */
function findNodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured && existsSync(path.join(configured, "include", "node", "node_api.h"))) return configured;
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  if (existsSync(path.join(prefix, "include", "node", "node_api.h"))) return prefix;
  return undefined;
}

const gyp = findNodeGyp();
if (gyp === undefined) skip("node-gyp not found (it ships with npm)");
const nodedir = findNodeDir();
if (nodedir === undefined) skip(`no Node.js headers (include/node/node_api.h) next to ${process.execPath}`);

const r = spawnSync(process.execPath, [gyp, "rebuild", `--nodedir=${nodedir}`], {
  cwd: dir,
  stdio: ["ignore", "pipe", "pipe"],
  encoding: "utf8",
  timeout: 180_000,
});
if (r.status !== 0) {
  const lines = `${r.stdout ?? ""}${r.stderr ?? ""}`
    .split("\n")
    .filter((l) => /error|not found|ERR!/i.test(l));
  skip(`node-gyp failed: ${lines.slice(0, 3).join(" | ") || r.error?.message || `exit ${r.status}`}`);
}
say("shared memory for large frames: addon built (native/shm)");
