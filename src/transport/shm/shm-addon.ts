/**
 * Loads the shared-memory addon (native/shm, built by node-gyp when the package is installed).
 * When it is missing, fails to load, or `MYELIN_SHM=off`, {@link shmAddon} returns null and
 * Myelin sends large frames over the socket (copying); {@link shmStatus} says why, and the reason
 * is written once to stderr when the addon was expected but could not load.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The calls of the addon (see native/shm/shm.c). */
export interface ShmAddon {
  /** Creates `/name` (exclusive, mode 0600) of `bytes` bytes and maps it. @throws Error code EEXIST/ESHM */
  create(name: string, bytes: number): Buffer;
  /** Maps an existing `/name` read-write, whole. @throws Error code ENOENT/ESHM */
  open(name: string): Buffer;
  /** Removes `/name`; false when it was already gone. Mappings stay valid until dropped. */
  unlink(name: string): boolean;
  /** Adds `delta` to the int32 at byte `offset` of `buf`; returns the previous value. */
  atomicAdd(buf: Buffer, offset: number, delta: number): number;
  /** Reads the int32 at byte `offset` of `buf` (sequentially consistent). */
  atomicLoad(buf: Buffer, offset: number): number;
  /** Writes the int32 at byte `offset` of `buf` (sequentially consistent). */
  atomicStore(buf: Buffer, offset: number, value: number): void;
  /** Compare-and-swap on the int32 at byte `offset`; returns the value found. */
  atomicCas(buf: Buffer, offset: number, expected: number, desired: number): number;
  /**
   * Asks for `bytes` of kernel send and receive buffer on the socket `fd` (capped by the host's
   * `net.core.wmem_max`/`rmem_max`); returns the send buffer granted in bytes, -1 when `fd` is not a
   * socket. Absent in an addon built before it existed.
   */
  socketBuffers?(fd: number, bytes: number): number;
}

/** Whether shared memory is usable in this process, and why not. */
export interface ShmStatus {
  readonly available: boolean;
  /** Where the addon was loaded from, or why it was not. */
  readonly detail: string;
}

let loaded: { addon: ShmAddon | null; status: ShmStatus } | undefined;
let warned = false;

/**
 * Candidate paths of the built addon, from where this code is: dist/src/transport/shm,
 * src/transport/shm, or dist/pkg (the package entry, scripts/bundle.mjs).
 */
function candidates(): string[] {
  const rel = "native/shm/build/Release/myelin_shm.node";
  return ["../../../../", "../../../", "../../"].map((up) =>
    fileURLToPath(new URL(up + rel, import.meta.url)),
  );
}

function load(): { addon: ShmAddon | null; status: ShmStatus } {
  const setting = process.env["MYELIN_SHM"] ?? "";
  if (setting === "off")
    return { addon: null, status: { available: false, detail: "disabled by MYELIN_SHM=off" } };
  if (setting !== "" && setting !== "on") {
    return {
      addon: null,
      status: {
        available: false,
        detail: `MYELIN_SHM must be 'on' or 'off', got '${setting}': treated as off`,
      },
    };
  }
  if (process.platform !== "linux") {
    return { addon: null, status: { available: false, detail: `not supported on ${process.platform}` } };
  }
  return loadFile();
}

let file: { addon: ShmAddon | null; status: ShmStatus } | undefined;

/** Loads the built addon file once, whatever `MYELIN_SHM` says. */
function loadFile(): { addon: ShmAddon | null; status: ShmStatus } {
  file ??= loadFileOnce();
  return file;
}

function loadFileOnce(): { addon: ShmAddon | null; status: ShmStatus } {
  const path = candidates().find((p) => existsSync(p));
  if (path === undefined) {
    return {
      addon: null,
      status: {
        available: false,
        detail:
          "the addon native/shm was not built (g++, make and Node.js headers are needed; rebuild with `npm rebuild myelin` or `node scripts/build-native.mjs`)",
      },
    };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as ShmAddon;
    return { addon, status: { available: true, detail: path } };
  } catch (err) {
    return {
      addon: null,
      status: { available: false, detail: `the addon at ${path} failed to load: ${(err as Error).message}` },
    };
  }
}

/** The addon, or null when shared memory is off (see {@link shmStatus}). */
export function shmAddon(): ShmAddon | null {
  loaded ??= load();
  if (loaded.addon === null && !warned && !loaded.status.detail.startsWith("disabled")) {
    warned = true;
    process.emitWarning(
      `shared memory for large frames is off: ${loaded.status.detail}; large frames are copied over the socket`,
      { code: "MYELIN_SHM_UNAVAILABLE" },
    );
  }
  return loaded.addon;
}

/**
 * The addon for its calls that are not about shared memory (socket buffers), also when
 * `MYELIN_SHM=off`; null when it is not built or fails to load (nothing is written to stderr).
 */
export function nativeAddon(): ShmAddon | null {
  return process.platform === "linux" ? loadFile().addon : null;
}

/** Whether shared memory is usable here and, if not, why (for `myelin doctor` and logs). */
export function shmStatus(): ShmStatus {
  loaded ??= load();
  return loaded.status;
}
