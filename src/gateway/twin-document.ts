/**
 * Device twins, sans-IO: the twin document (desired and reported state with versions and
 * metadata), the checks every update passes (device names, JSON shape, depth, size), JSON merge
 * patches (RFC 7386: `null` removes a key) and the delta between desired and reported. The store
 * (`twin-store.ts`), the services (`twin-service.ts`) and the MQTT topics (`twin-mqtt.ts`) build
 * on these functions; nothing here does I/O.
 */
import { MyelinError, myelinError, type ErrorCode } from "../errors.js";

/** A JSON value as twins hold it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object (the desired and reported states are objects). */
export type JsonObject = { [key: string]: JsonValue };

/** A device's twin as the gateway keeps it. Times in ms since the Unix epoch (0: never). */
export interface TwinDocument {
  /** The device's name (its MQTT identity: client id or user name, see docs/device-twins.md). */
  device: string;
  /** The state operators want the device in. */
  desired: JsonObject;
  /** The state the device last reported. */
  reported: JsonObject;
  /** Incremented by every change of `desired` or `reported`. */
  version: number;
  /** Incremented by every change of `desired`; what `set` checks `expectedVersion` against. */
  desiredVersion: number;
  /** Incremented by every change of `reported`; what a report's `version` is checked against. */
  reportedVersion: number;
  createdAt: number;
  desiredUpdatedAt: number;
  reportedUpdatedAt: number;
  /** When the device was last heard from: connected, disconnected, or sent a twin request. */
  lastSeen: number;
  /** Whether an MQTT client with the device's identity is connected now. */
  connected: boolean;
  /** The MQTT client id the device last connected with ("" when never). */
  clientId: string;
}

/** Limits of the twins, with their defaults in {@link TWIN_DEFAULTS}. */
export interface TwinLimits {
  /** Largest `desired` and largest `reported` state, each, as JSON text in bytes. */
  maxStateBytes: number;
  /** Deepest nesting of objects and arrays in a state (the state object itself is depth 1). */
  maxDepth: number;
  /** Most twins the gateway keeps; a new device beyond it is refused. */
  maxTwins: number;
}

/** Twin options of the MQTT gateway (`twins:` in the gateway config). */
export interface TwinOptions extends Partial<TwinLimits> {
  /** Keep twins for MQTT devices (default true). */
  enabled?: boolean;
  /** First level of the twin topics (default `twins`: `twins/<device>/reported`, …). */
  topicPrefix?: string;
  /**
   * What names a device when the gateway has users: `username` (default; the user it logged in
   * as, by password or certificate) or `client-id` (its MQTT client id; use it when devices share
   * a user). Without users every client may touch every twin, and the client id names the device
   * for `connected` and `lastSeen`.
   */
  identity?: "username" | "client-id";
}

/** Defaults of the twin options (sizes in bytes). */
export const TWIN_DEFAULTS = {
  enabled: true,
  topicPrefix: "twins",
  identity: "username",
  maxStateBytes: 8192,
  maxDepth: 8,
  maxTwins: 10000,
} as const satisfies Required<TwinOptions>;

/** Twin options with every default filled in. */
export type ResolvedTwinOptions = Required<TwinOptions>;

/** Longest device name, in characters. */
export const MAX_DEVICE_NAME = 128;
/** Longest `clientToken` a device may send, in characters. */
export const MAX_CLIENT_TOKEN = 64;

/** The HTTP-like status an MQTT `rejected` reply carries for an error code (as AWS IoT shadows do). */
export function twinErrorStatus(code: ErrorCode): 400 | 403 | 404 | 409 | 413 | 500 {
  switch (code) {
    case "ERR_NOT_AUTHORIZED":
      return 403;
    case "ERR_UNKNOWN_DEVICE":
      return 404;
    case "ERR_VERSION_CONFLICT":
      return 409;
    case "ERR_PAYLOAD_TOO_LARGE":
      return 413;
    case "ERR_STORAGE":
    case "ERR_CLOSED":
    case "ERR_SERVICE_FAILED":
      return 500;
    default:
      return 400;
  }
}

/**
 * Why `name` cannot name a device, or undefined when it can: 1 to 128 characters of letters,
 * digits, `_`, `-`, `.` and `:`, not starting with `.` (a device name is also a file name and an
 * MQTT topic level).
 */
export function deviceNameProblem(name: string): string | undefined {
  if (name === "") return "a device name cannot be empty";
  if (name.length > MAX_DEVICE_NAME)
    return `a device name has at most ${MAX_DEVICE_NAME} characters, got ${name.length}`;
  if (!/^[A-Za-z0-9_:.-]+$/.test(name))
    return `device name ${JSON.stringify(name)} has a character other than letters, digits, '_', '-', '.' and ':'`;
  if (name.startsWith(".")) return `device name ${JSON.stringify(name)} cannot start with '.'`;
  return undefined;
}

/** @throws MyelinError ERR_INVALID_ARGUMENT when `name` cannot name a device */
export function checkDeviceName(name: string): void {
  const p = deviceNameProblem(name);
  if (p !== undefined) throw myelinError("ERR_INVALID_ARGUMENT", p);
}

/**
 * Resolves and checks twin options.
 * @throws MyelinError ERR_BAD_CONFIG naming the field (under `where`, e.g. `twins`)
 */
export function resolveTwinOptions(opts: TwinOptions | undefined, where = "twins"): ResolvedTwinOptions {
  const o = (opts ?? {}) as Record<string, unknown>;
  if (typeof o !== "object" || o === null || Array.isArray(o))
    throw new MyelinError("ERR_BAD_CONFIG", `${where}: must be a map of twin options`);
  const known = Object.keys(TWIN_DEFAULTS);
  for (const k of Object.keys(o)) {
    if (!known.includes(k))
      throw new MyelinError("ERR_BAD_CONFIG", `${where}.${k}: not a known field; known: ${known.join(", ")}`);
  }
  const r: ResolvedTwinOptions = { ...TWIN_DEFAULTS, ...(opts ?? {}) };
  if (typeof r.enabled !== "boolean")
    throw new MyelinError("ERR_BAD_CONFIG", `${where}.enabled: must be true or false`);
  if (typeof r.topicPrefix !== "string" || !/^[A-Za-z0-9_.:-]+(\/[A-Za-z0-9_.:-]+)*$/.test(r.topicPrefix))
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${where}.topicPrefix: must be one or more MQTT topic levels without wildcards or '$', e.g. twins or site-a/twins; got ${JSON.stringify(r.topicPrefix)}`,
    );
  if (r.identity !== "username" && r.identity !== "client-id")
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${where}.identity: must be username or client-id, got ${JSON.stringify(r.identity)}`,
    );
  const ranges: [keyof TwinLimits, number, number][] = [
    ["maxStateBytes", 64, 1 << 20],
    ["maxDepth", 1, 32],
    ["maxTwins", 1, 10_000_000],
  ];
  for (const [k, min, max] of ranges) {
    const v = r[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}.${k}: must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`,
      );
  }
  return r;
}

/** A new, empty twin. */
export function newTwin(device: string, now: number): TwinDocument {
  return {
    device,
    desired: {},
    reported: {},
    version: 0,
    desiredVersion: 0,
    reportedVersion: 0,
    createdAt: now,
    desiredUpdatedAt: 0,
    reportedUpdatedAt: 0,
    lastSeen: 0,
    connected: false,
    clientId: "",
  };
}

/** True for a plain JSON object (not an array, not null). */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/**
 * Checks that `v` is a JSON object of at most `maxDepth` levels (`what` names it in the error).
 * @throws ValidationError ERR_VALIDATION naming the path that is too deep or not an object
 */
export function checkState(v: unknown, what: string, maxDepth: number): asserts v is JsonObject {
  if (!isJsonObject(v))
    throw myelinError("ERR_VALIDATION", `${what} must be a JSON object, got ${kindOf(v)}`);
  const walk = (x: unknown, depth: number, path: string): void => {
    if (typeof x !== "object" || x === null) {
      if (typeof x === "number" && !Number.isFinite(x))
        throw myelinError("ERR_VALIDATION", `${what} at ${path}: numbers must be finite`);
      return;
    }
    if (depth > maxDepth)
      throw myelinError(
        "ERR_VALIDATION",
        `${what} at ${path} is nested deeper than ${maxDepth} levels (twins.maxDepth); flatten the state`,
      );
    if (Array.isArray(x)) x.forEach((e, i) => walk(e, depth + 1, `${path}[${i}]`));
    else for (const [k, e] of Object.entries(x)) walk(e, depth + 1, path === "" ? k : `${path}.${k}`);
  };
  for (const [k, e] of Object.entries(v)) walk(e, 2, k);
}

/**
 * Applies a JSON merge patch (RFC 7386) to `target`, returning a new object: keys of the patch
 * replace those of the target, nested objects merge, `null` removes a key. `target` is not changed.
 */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isJsonObject(v)) {
      const base = own(out, k);
      setOwn(out, k, mergePatch(isJsonObject(base) ? base : {}, v));
    } else setOwn(out, k, v);
  }
  return out;
}

/** `o[k]` if `o` has it as its own key (so `__proto__` is a key like any other), else undefined. */
function own(o: JsonObject, k: string): JsonValue | undefined {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

/** Sets `o[k]` as an own data property (assigning `__proto__` would set the prototype instead). */
function setOwn(o: JsonObject, k: string, v: JsonValue): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** Deep equality of two JSON values (key order does not matter). */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(x, b[i]));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEqual(a[k], b[k]));
}

/**
 * What differs between desired and reported: every key of `desired` whose value the device has
 * not reported, recursively through objects (arrays and other values compare as a whole). Empty
 * when the device is in the desired state.
 */
export function computeDelta(desired: JsonObject, reported: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, want] of Object.entries(desired)) {
    const have = own(reported, k);
    if (isJsonObject(want) && isJsonObject(have)) {
      const d = computeDelta(want, have);
      if (Object.keys(d).length > 0) setOwn(out, k, d);
    } else if (!jsonEqual(want, have)) setOwn(out, k, want);
  }
  return out;
}

/** Size of a state as JSON text, in bytes. */
export function stateBytes(state: JsonObject): number {
  return Buffer.byteLength(JSON.stringify(state));
}

/**
 * Checks an expected version against the current one.
 * @throws MyelinError ERR_VERSION_CONFLICT naming both versions
 */
export function checkVersion(
  device: string,
  part: "desired" | "reported",
  current: number,
  expected: number | undefined,
): void {
  if (expected === undefined || expected === current) return;
  throw myelinError(
    "ERR_VERSION_CONFLICT",
    `twin ${device}: ${part} is at version ${current}, the update expected version ${expected}; read the twin again, apply your change to it and retry with version ${current}`,
  );
}

/**
 * Applies a patch to one part of a twin: checks the expected version, merges (or replaces), checks
 * the size. Returns the new twin, or the same object when nothing changed.
 * @throws MyelinError ERR_VERSION_CONFLICT, or ERR_PAYLOAD_TOO_LARGE when the state would be too large
 */
export function applyPatch(
  twin: TwinDocument,
  part: "desired" | "reported",
  patch: JsonObject,
  opts: { expectedVersion?: number; replace?: boolean; now: number; maxStateBytes: number },
): TwinDocument {
  const versionKey = part === "desired" ? "desiredVersion" : "reportedVersion";
  checkVersion(twin.device, part, twin[versionKey], opts.expectedVersion);
  const next = opts.replace === true ? mergePatch({}, patch) : mergePatch(twin[part], patch);
  const bytes = stateBytes(next);
  if (bytes > opts.maxStateBytes)
    throw myelinError(
      "ERR_PAYLOAD_TOO_LARGE",
      `twin ${twin.device}: ${part} would be ${bytes} bytes of JSON, over twins.maxStateBytes (${opts.maxStateBytes}); remove keys (set them to null) or raise the limit`,
    );
  if (jsonEqual(next, twin[part])) return twin;
  const out: TwinDocument = { ...twin, version: twin.version + 1 };
  out[part] = next;
  out[versionKey] = twin[versionKey] + 1;
  if (part === "desired") out.desiredUpdatedAt = opts.now;
  else out.reportedUpdatedAt = opts.now;
  return out;
}

/** A twin as JSON for MQTT replies and files: state with its delta, versions and metadata. */
export interface TwinJson {
  device: string;
  state: { desired: JsonObject; reported: JsonObject; delta: JsonObject };
  version: number;
  desiredVersion: number;
  reportedVersion: number;
  metadata: {
    createdAt: number;
    desiredUpdatedAt: number;
    reportedUpdatedAt: number;
    lastSeen: number;
    connected: boolean;
    clientId: string;
  };
}

/** The JSON form of a twin (MQTT `get/accepted`, `myelin twin get --json`). */
export function twinToJson(t: TwinDocument): TwinJson {
  return {
    device: t.device,
    state: { desired: t.desired, reported: t.reported, delta: computeDelta(t.desired, t.reported) },
    version: t.version,
    desiredVersion: t.desiredVersion,
    reportedVersion: t.reportedVersion,
    metadata: {
      createdAt: t.createdAt,
      desiredUpdatedAt: t.desiredUpdatedAt,
      reportedUpdatedAt: t.reportedUpdatedAt,
      lastSeen: t.lastSeen,
      connected: t.connected,
      clientId: t.clientId,
    },
  };
}

/** The version of the twin file format. */
export const TWIN_FILE_FORMAT = 1;

/** A twin as its file holds it. */
export function twinToFile(t: TwinDocument): string {
  return `${JSON.stringify({ format: TWIN_FILE_FORMAT, ...t })}\n`;
}

/**
 * Reads a twin file's text.
 * @throws MyelinError ERR_STATE_CORRUPT saying what is wrong with it
 */
export function twinFromFile(text: string, expectedDevice: string): TwinDocument {
  const corrupt = (why: string): MyelinError =>
    new MyelinError("ERR_STATE_CORRUPT", `twin file of ${expectedDevice}: ${why}`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not JSON (${(err as Error).message})`);
  }
  if (!isJsonObject(v)) throw corrupt("not a JSON object");
  if (v["format"] !== TWIN_FILE_FORMAT) throw corrupt(`unknown format ${JSON.stringify(v["format"])}`);
  if (v["device"] !== expectedDevice)
    throw corrupt(`it names device ${JSON.stringify(v["device"])}, not ${expectedDevice}`);
  const desired = v["desired"];
  const reported = v["reported"];
  if (!isJsonObject(desired) || !isJsonObject(reported))
    throw corrupt("desired and reported must be objects");
  const num = (k: string): number => {
    const x = v[k];
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0) throw corrupt(`${k} must be a number >= 0`);
    return x;
  };
  return {
    device: expectedDevice,
    desired,
    reported,
    version: num("version"),
    desiredVersion: num("desiredVersion"),
    reportedVersion: num("reportedVersion"),
    createdAt: num("createdAt"),
    desiredUpdatedAt: num("desiredUpdatedAt"),
    reportedUpdatedAt: num("reportedUpdatedAt"),
    lastSeen: num("lastSeen"),
    connected: false, // nobody is connected to a gateway that just started
    clientId: typeof v["clientId"] === "string" ? v["clientId"] : "",
  };
}

/** A glob over device names (`*` any run of characters, `?` one) as a RegExp; "" matches all. */
export function devicePattern(glob: string): RegExp {
  if (glob === "") return /^/;
  const src = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${src}$`);
}

/** What a device's request on `…/reported` or `…/get` carries. */
export interface TwinRequest {
  /** The reported values to merge (reported requests only). */
  state?: JsonObject;
  /** Echoed in the answer. */
  clientToken?: string;
  /** The reported version the update expects. */
  version?: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The `clientToken` of a request payload, if it is JSON with a valid one (for rejections). */
export function peekClientToken(payload: Uint8Array): string | undefined {
  try {
    const v = JSON.parse(utf8.decode(payload)) as unknown;
    const t = isJsonObject(v) ? own(v, "clientToken") : undefined;
    return typeof t === "string" && t.length <= MAX_CLIENT_TOKEN ? t : undefined;
  } catch {
    return undefined;
  }
}

/** The largest request payload accepted, in bytes: a state's limit plus 1 KiB for the envelope. */
export function maxRequestBytes(limits: Pick<TwinLimits, "maxStateBytes">): number {
  return limits.maxStateBytes + 1024;
}

/**
 * Parses the payload of a device's request (`op` is `reported` or `get`).
 * @throws MyelinError ERR_PAYLOAD_TOO_LARGE over {@link maxRequestBytes}; ERR_INVALID_ARGUMENT
 *   when it is not UTF-8 JSON; ValidationError ERR_VALIDATION naming the field of the wrong type
 *   or shape (or too deep)
 */
export function parseTwinRequest(
  device: string,
  op: "reported" | "get",
  payload: Uint8Array,
  limits: Pick<TwinLimits, "maxStateBytes" | "maxDepth">,
): TwinRequest {
  const max = maxRequestBytes(limits);
  if (payload.length > max)
    throw new MyelinError(
      "ERR_PAYLOAD_TOO_LARGE",
      `twin ${device}: a ${op} request of ${payload.length} bytes is over the limit of ${max} (twins.maxStateBytes ${limits.maxStateBytes} + 1024); nothing was changed`,
    );
  if (op === "get" && payload.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(utf8.decode(payload));
  } catch (err) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `twin ${device}: the ${op} payload is not valid JSON (${(err as Error).message}); send ${op === "get" ? 'nothing, or {"clientToken": "…"}' : '{"state": {"temperature": 21.5}}'}`,
    );
  }
  const allowed = op === "get" ? ["clientToken"] : ["state", "clientToken", "version"];
  if (!isJsonObject(v))
    throw myelinError(
      "ERR_VALIDATION",
      `twin ${device}: the ${op} payload must be a JSON object with ${allowed.join(", ")}, got ${kindOf(v)}`,
    );
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k))
      throw myelinError(
        "ERR_VALIDATION",
        `twin ${device}: the ${op} payload has an unknown field ${JSON.stringify(k)}; its fields are ${allowed.join(", ")}${op === "reported" ? ' (the values go inside "state")' : ""}`,
      );
  }
  const out: TwinRequest = {};
  const token = own(v, "clientToken");
  if (token !== undefined) {
    if (typeof token !== "string" || token.length > MAX_CLIENT_TOKEN)
      throw myelinError(
        "ERR_VALIDATION",
        `twin ${device}: clientToken must be a string of at most ${MAX_CLIENT_TOKEN} characters`,
      );
    out.clientToken = token;
  }
  if (op === "get") return out;
  const version = own(v, "version");
  if (version !== undefined) {
    if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0)
      throw myelinError(
        "ERR_VALIDATION",
        `twin ${device}: version must be a whole number >= 0 (the reported version the update expects), got ${JSON.stringify(version)}`,
      );
    out.version = version;
  }
  const state = own(v, "state");
  if (state === undefined)
    throw myelinError(
      "ERR_VALIDATION",
      `twin ${device}: the reported payload needs "state", an object of reported values, e.g. {"state": {"temperature": 21.5}}`,
    );
  checkState(state, `twin ${device}: "state"`, limits.maxDepth);
  out.state = state;
  return out;
}
