/**
 * Where a node finds its hub and puts its sockets. By default both live in a per-user runtime
 * directory that only the owner can read: `$MYELIN_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/myelin`,
 * else `<tmpdir>/myelin-<uid>`. `MYELIN_HUB` (or the `hub` option) overrides the hub address,
 * e.g. `tcp://10.0.0.5:7447`.
 */
import { mkdirSync, statSync, chmodSync } from "node:fs";
import { hostname, tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { MyelinError } from "../errors.js";

/** The runtime directory to use, from options or the environment. */
export function runtimeDir(explicit?: string): string {
  if (explicit !== undefined) return explicit;
  const env = process.env["MYELIN_RUNTIME_DIR"];
  if (env !== undefined && env !== "") return env;
  const xdg = process.env["XDG_RUNTIME_DIR"];
  if (xdg !== undefined && xdg !== "") return join(xdg, "myelin");
  return join(tmpdir(), `myelin-${userInfo().uid}`);
}

/**
 * Creates the runtime directory (mode 0700) if needed; returns its path. Only a directory created
 * here is made private: an existing one keeps its mode, and one that other users may write to
 * (a shared `/tmp`-like directory, mode 1777) is refused — they could replace the sockets in it.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the directory, its mode and the fix
 */
export function ensureRuntimeDir(dir: string): string {
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) {
    // umask may have taken bits away, never added: still, say what we mean
    if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
    return dir;
  }
  const st = statSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory()) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `runtime directory ${dir} is not a directory; give a directory path (MYELIN_RUNTIME_DIR)`,
    );
  }
  if ((st.mode & 0o022) !== 0 || (uid !== undefined && st.uid !== uid)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `runtime directory ${dir} (mode ${(st.mode & 0o7777).toString(8)}, owner uid ${st.uid}) can be written by other users, who could replace the hub's and nodes' sockets; ` +
        `use a directory of your own that only you can write (e.g. MYELIN_RUNTIME_DIR=${join(dir, `myelin-${uid ?? "USER"}`)}: Myelin creates it with mode 0700)`,
    );
  }
  return dir;
}

/** The hub's control endpoint: option, then `MYELIN_HUB`, then the runtime directory's socket. */
export function hubEndpoint(
  opts: { hub?: string | undefined; runtimeDir?: string | undefined } = {},
): string {
  if (opts.hub !== undefined) return opts.hub;
  const env = process.env["MYELIN_HUB"];
  if (env !== undefined && env !== "") return env;
  return `ipc://${join(runtimeDir(opts.runtimeDir), "hub.sock")}`;
}

/**
 * The name of replica `replica` of node `name` of a launch spec: replica 0 keeps the name,
 * replica N > 0 is `<name>.N`, so every replica can be addressed (`myelin param set camera.1 …`).
 */
export function replicaNodeName(name: string, replica: number): string {
  return replica > 0 ? `${name}.${replica}` : name;
}

/**
 * This host's name in a site: `$MYELIN_HOST`, else the OS host name. Nodes put it in their record;
 * a subscriber connects to a publisher's ipc endpoint when their host names are equal.
 */
export function hostName(): string {
  return explicitHostName() ?? hostname();
}

/**
 * `$MYELIN_HOST` when set (not empty): the host name the user chose for this process, which a
 * node keeps even when its hub names the host otherwise.
 */
export function explicitHostName(): string | undefined {
  const env = process.env["MYELIN_HOST"];
  return env !== undefined && env !== "" ? env : undefined;
}
