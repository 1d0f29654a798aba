/**
 * Options of the Foxglove WebSocket server, their defaults, and the config file (YAML) that sets
 * them (`myelin hub --foxglove-config FILE`). A mistake in the file is an ERR_BAD_CONFIG naming the
 * file, the field and what is accepted. See docs/foxglove.md for the reference.
 *
 * ```yaml
 * host: 0.0.0.0
 * port: 8765
 * tokenFile: /etc/myelin/foxglove.token
 * tls: { cert: server.crt, key: server.key }
 * topics: ["/camera/**", "/scan", "/cmd_vel"]
 * publishTopics: ["/cmd_vel"]
 * publish: true
 * services: true
 * parameters: true
 * sendBudgetBytes: 16777216
 * maxHz: { "/camera/**": 10 }
 * ```
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { yaml } from "../codec/yaml.js";
import { MyelinError, showValue } from "../errors.js";
import { checkTopicPattern, type RateCap } from "./rate-cap.js";

/** TLS of the server: PEM contents. */
export interface FoxgloveTls {
  cert: Buffer;
  key: Buffer;
  /** Certificate authorities to trust, when the certificate chain needs them. */
  ca?: Buffer;
}

/** What the Foxglove server is to do; every field has a default in {@link FOXGLOVE_DEFAULTS}. */
export interface FoxgloveSettings {
  /** Address to listen on (default 127.0.0.1, this host only). */
  host: string;
  /** TCP port (default 8765; 0 picks a free one). */
  port: number;
  /**
   * The token a client must give (`?token=` in the URL, or `Authorization: Bearer`); when none is
   * given, the hub makes one at start and writes it to `foxglove.token` in the runtime directory.
   */
  token: string | undefined;
  /** Serve `wss://` with this certificate. */
  tls: FoxgloveTls | undefined;
  /** Topics clients may see and subscribe to (patterns; default every topic, `/**`). */
  topics: string[];
  /** Topics clients may publish to (patterns; default: `topics`). */
  publishTopics: string[] | undefined;
  /** Also show hidden topics and services (a name segment starting with `_`). Default false. */
  showHidden: boolean;
  /** Let clients publish (default true). */
  publish: boolean;
  /** Let clients call services (default true). */
  services: boolean;
  /** Let clients get, set and watch node parameters (default true). */
  parameters: boolean;
  /** Message data queued for one client and not yet written, at most, in bytes (default 16 MiB). */
  sendBudgetBytes: number;
  /** Bytes handed to one client's socket and not yet written to the OS, at most (default 1 MiB). */
  writeWindowBytes: number;
  /** Control messages queued for one client, at most, in bytes; past it the client is closed (default 8 MiB). */
  controlBudgetBytes: number;
  /** Rate caps for every client (a client may lower them). */
  maxHz: RateCap[];
  /** Clients connected at once, at most (default 32). */
  maxClients: number;
  /** Largest message a client may send, in bytes (default 16 MiB). */
  maxMessageBytes: number;
  /** How long a service call from a client may take, in ms (default 10000). */
  serviceTimeoutMs: number;
  /** Service calls of one client running at once, at most (default 16). */
  maxServiceCalls: number;
  /** How often watched parameters are read again, in ms (default 1000). */
  parameterPollMs: number;
  /** How often the server time is sent, in ms (default 100; 0: never). */
  timeIntervalMs: number;
  /** How often clients are pinged; one that misses two pongs is closed, in ms (default 15000). */
  pingIntervalMs: number;
}

/** Defaults of {@link FoxgloveSettings}. */
export const FOXGLOVE_DEFAULTS: Readonly<FoxgloveSettings> = Object.freeze({
  host: "127.0.0.1",
  port: 8765,
  token: undefined,
  tls: undefined,
  topics: ["/**"],
  publishTopics: undefined,
  showHidden: false,
  publish: true,
  services: true,
  parameters: true,
  sendBudgetBytes: 16 * 1024 * 1024,
  writeWindowBytes: 1024 * 1024,
  controlBudgetBytes: 8 * 1024 * 1024,
  maxHz: [],
  maxClients: 32,
  maxMessageBytes: 16 * 1024 * 1024,
  serviceTimeoutMs: 10000,
  maxServiceCalls: 16,
  parameterPollMs: 1000,
  timeIntervalMs: 100,
  pingIntervalMs: 15000,
});

type Obj = Record<string, unknown>;

const NUMBER_FIELDS: Record<string, { min: number; max: number; integer: boolean }> = {
  port: { min: 0, max: 65535, integer: true },
  sendBudgetBytes: { min: 1024, max: 2 ** 40, integer: true },
  writeWindowBytes: { min: 1024, max: 2 ** 40, integer: true },
  controlBudgetBytes: { min: 1024, max: 2 ** 40, integer: true },
  maxClients: { min: 1, max: 100000, integer: true },
  maxMessageBytes: { min: 1024, max: 2 ** 31, integer: true },
  serviceTimeoutMs: { min: 1, max: 2 ** 31, integer: true },
  maxServiceCalls: { min: 1, max: 100000, integer: true },
  parameterPollMs: { min: 50, max: 2 ** 31, integer: true },
  timeIntervalMs: { min: 0, max: 2 ** 31, integer: true },
  pingIntervalMs: { min: 100, max: 2 ** 31, integer: true },
};
const BOOL_FIELDS = ["showHidden", "publish", "services", "parameters"];
const KEYS = [
  "host",
  "token",
  "tokenFile",
  "tls",
  "topics",
  "publishTopics",
  "maxHz",
  ...BOOL_FIELDS,
  ...Object.keys(NUMBER_FIELDS),
];

/** Checks a token: printable ASCII without spaces, 16 to 512 characters. */
export function checkToken(token: string, where: string): string {
  if (!/^[\x21-\x7e]{16,512}$/.test(token)) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${where}: a token must be 16 to 512 printable characters without spaces (got ${token.length} characters); make one with \`openssl rand -hex 24\``,
    );
  }
  return token;
}

function patterns(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${where}: must be a non-empty list of topic patterns, e.g. ["/camera/**", "/scan"], got ${showValue(v)}`,
    );
  }
  return v.map((p, i) => {
    try {
      return checkTopicPattern(p as string, `${where}[${i}]`);
    } catch (err) {
      throw new MyelinError("ERR_BAD_CONFIG", (err as Error).message);
    }
  });
}

function readFileField(base: string, file: unknown, where: string): Buffer {
  if (typeof file !== "string" || file === "") {
    throw new MyelinError("ERR_BAD_CONFIG", `${where}: must name a file`);
  }
  const path = resolve(base, file);
  try {
    return readFileSync(path);
  } catch (err) {
    throw new MyelinError("ERR_BAD_CONFIG", `${where}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * Checks a parsed config (e.g. from YAML) and returns the settings it gives; files it names
 * (`tokenFile`, `tls.cert`, `tls.key`, `tls.ca`) are read relative to `baseDir`.
 * @throws MyelinError ERR_BAD_CONFIG naming `source` and the field
 */
export function parseFoxgloveConfig(
  value: unknown,
  baseDir: string,
  source: string,
): Partial<FoxgloveSettings> {
  const bad = (field: string, msg: string): MyelinError =>
    new MyelinError("ERR_BAD_CONFIG", `${source}: ${field}: ${msg}`);
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw bad("(top level)", "must be a map of settings");
  const o = value as Obj;
  const out: Partial<FoxgloveSettings> = {};
  for (const k of Object.keys(o)) {
    if (!KEYS.includes(k)) throw bad(k, `not a known setting; known: ${KEYS.join(", ")}`);
  }
  const at = (f: string): string => `${source}: ${f}`;
  if (o["host"] !== undefined) {
    if (typeof o["host"] !== "string" || o["host"] === "")
      throw bad("host", `must be an address, e.g. 127.0.0.1 or 0.0.0.0, got ${showValue(o["host"])}`);
    out.host = o["host"];
  }
  if (o["token"] !== undefined && o["tokenFile"] !== undefined)
    throw bad("token", "give token or tokenFile, not both");
  if (o["token"] !== undefined) {
    if (typeof o["token"] !== "string") throw bad("token", `must be a string, got ${showValue(o["token"])}`);
    out.token = checkToken(o["token"], at("token"));
  }
  if (o["tokenFile"] !== undefined) {
    const text = readFileField(baseDir, o["tokenFile"], at("tokenFile")).toString("utf8").trim();
    out.token = checkToken(text, at(`tokenFile (${o["tokenFile"] as string})`));
  }
  if (o["tls"] !== undefined) {
    const t = o["tls"];
    if (typeof t !== "object" || t === null || Array.isArray(t))
      throw bad("tls", "must be a map: { cert: FILE, key: FILE, ca: FILE }");
    const to = t as Obj;
    for (const k of Object.keys(to)) {
      if (!["cert", "key", "ca"].includes(k))
        throw bad(`tls.${k}`, "not a known field; known: cert, key, ca");
    }
    const tls: FoxgloveTls = {
      cert: readFileField(baseDir, to["cert"], at("tls.cert")),
      key: readFileField(baseDir, to["key"], at("tls.key")),
    };
    if (to["ca"] !== undefined) tls.ca = readFileField(baseDir, to["ca"], at("tls.ca"));
    out.tls = tls;
  }
  if (o["topics"] !== undefined) out.topics = patterns(o["topics"], at("topics"));
  if (o["publishTopics"] !== undefined) out.publishTopics = patterns(o["publishTopics"], at("publishTopics"));
  if (o["maxHz"] !== undefined) {
    const m = o["maxHz"];
    if (typeof m !== "object" || m === null || Array.isArray(m))
      throw bad(
        "maxHz",
        `must be a map of topic pattern to Hz, e.g. { "/camera/**": 10 }, got ${showValue(m)}`,
      );
    out.maxHz = Object.entries(m as Obj).map(([pattern, hz]) => {
      try {
        checkTopicPattern(pattern, at("maxHz"));
      } catch (err) {
        throw new MyelinError("ERR_BAD_CONFIG", (err as Error).message);
      }
      if (typeof hz !== "number" || !Number.isFinite(hz) || hz <= 0)
        throw bad(`maxHz.${pattern}`, `must be a rate in Hz above 0, got ${showValue(hz)}`);
      return { pattern, hz };
    });
  }
  for (const k of BOOL_FIELDS) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== "boolean") throw bad(k, `must be true or false, got ${showValue(v)}`);
    (out as Record<string, unknown>)[k] = v;
  }
  for (const [k, r] of Object.entries(NUMBER_FIELDS)) {
    const v = o[k];
    if (v === undefined) continue;
    if (
      typeof v !== "number" ||
      !Number.isFinite(v) ||
      (r.integer && !Number.isInteger(v)) ||
      v < r.min ||
      v > r.max
    )
      throw bad(
        k,
        `must be ${r.integer ? "an integer" : "a number"} from ${r.min} to ${r.max}, got ${showValue(v)}`,
      );
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/**
 * Reads and checks a config file (YAML or JSON).
 * @throws MyelinError ERR_BAD_CONFIG naming the file and what is wrong
 */
export function loadFoxgloveConfig(file: string): Partial<FoxgloveSettings> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `cannot read the Foxglove config ${file}: ${(err as Error).message}`,
    );
  }
  let value: unknown;
  try {
    value = yaml().parse(text);
  } catch (err) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${file}: not valid YAML: ${((err as Error).message ?? "").split("\n")[0]}`,
    );
  }
  return parseFoxgloveConfig(value, dirname(resolve(file)), file);
}

/** Whether `host` is a loopback address (only this host can connect). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
