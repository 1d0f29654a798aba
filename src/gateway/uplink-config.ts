/**
 * The configuration of a hub's uplink to the cloud (docs/edge-to-cloud.md), validated at the
 * boundary: every mistake is an ERR_BAD_CONFIG naming the file, the field and the fix.
 *
 * A `site` hub exports durable topics (store-and-forward into the JetStream stream of the site),
 * volatile topics (core NATS, JSON, lost during a cut and counted) and imports commands from the
 * command stream of the site. A `cloud` hub consumes the streams of the sites it lists into its
 * durable topics `/sites/<site>/…` and forwards its durable topics `/to_site/<site>/…` to the
 * command stream of that site.
 */
import { yaml } from "../codec/yaml.js";
import { MyelinError, showValue } from "../errors.js";
import type { MappingSpec } from "./mapping.js";

/** Credentials and TLS of the connection to NATS. */
export interface UplinkNatsConfig {
  /** One or more server URLs, e.g. `nats://cloud.example:4222` or `tls://…`. */
  servers: string[];
  user?: string;
  pass?: string;
  /** Environment variable holding the password (instead of `pass`). */
  passEnv?: string;
  token?: string;
  /** Environment variable holding the token (instead of `token`). */
  tokenEnv?: string;
  /** A `.creds` file (JWT and nkey seed), as written by `nsc`. */
  credsFile?: string;
  /** A file holding an nkey seed (`SU…`). */
  nkeySeedFile?: string;
  /** TLS: CA bundle, client certificate and key (PEM files). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** How long one connection attempt may take, in ms (default 5000). */
  connectTimeoutMs?: number;
  /**
   * The JetStream domain of the cloud (its `jetstream { domain: … }`), needed when the hub talks to
   * it through a leaf node at the site: the API calls then go to `$JS.<domain>.API`.
   */
  jetStreamDomain?: string;
}

/** How the JetStream streams the uplink creates are set up (an existing stream is left as it is). */
export interface UplinkStreamConfig {
  /** Replicas of the stream (1, 3 or 5; default 1; use 3 on a cloud cluster). */
  replicas: number;
  /** The stream's duplicate window, in ms (default 600000 = 10 min): a resend within it is stored once. */
  duplicateWindowMs: number;
  /** Oldest message kept by the stream, in ms (0 = no limit, the default). */
  maxAgeMs: number;
}

/** How a forwarder catches up. */
export interface UplinkCatchUpConfig {
  /** Messages published and not yet acknowledged by JetStream, per forwarder (default 256). */
  maxInFlight: number;
  /** Messages per second over all forwarders of the hub (default 20000; 0 = no limit). */
  messagesPerSecond: number;
  /** Bytes per second over all forwarders of the hub (default 0 = no limit). */
  bytesPerSecond: number;
}

/** A volatile exported topic: a mapping rule of the bridges' model (JSON on core NATS). */
export interface UplinkVolatileExport {
  /** Myelin pattern, `+` one level and `#` the rest, e.g. `/telemetry/+`. */
  topic: string;
  /** Its message type, e.g. `sensor_msgs/Temperature`. */
  type: string;
}

/** The whole configuration. */
export interface UplinkConfig {
  role: "site" | "cloud";
  /** This site's name (a site), or this cloud's name (a cloud): letters, digits, `_`, `-`. */
  site: string;
  nats: UplinkNatsConfig;
  stream: UplinkStreamConfig;
  catchUp: UplinkCatchUpConfig;
  /** Site: durable topic patterns to store-and-forward (`*` one level, `**` any). */
  exportDurable: string[];
  /** Site: volatile topics to publish on core NATS. */
  exportVolatile: UplinkVolatileExport[];
  /** Site: command topic patterns accepted from the cloud (`*` one level, `**` any). */
  import: string[];
  /** Cloud: the sites whose streams this hub consumes. */
  sites: string[];
}

/** Defaults of the optional fields. */
export const UPLINK_DEFAULTS = Object.freeze({
  replicas: 1,
  duplicateWindowMs: 600_000,
  maxAgeMs: 0,
  maxInFlight: 256,
  messagesPerSecond: 20_000,
  bytesPerSecond: 0,
  connectTimeoutMs: 5000,
});

/** A site or cloud name: a NATS subject token and a stream-name part. */
const SITE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** A durable-topic pattern: levels of letters, digits, `_ . ~ -`, or `*` / `**`. */
const DURABLE_PATTERN = /^(\/([A-Za-z0-9_.~-]+|\*|\*\*))+$/;

function bad(where: string, field: string, msg: string): MyelinError {
  return new MyelinError("ERR_BAD_CONFIG", `${where}: ${field}: ${msg}`);
}

function obj(v: unknown, where: string, field: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw bad(where, field, `${showValue(v, 80)} is not a mapping of settings`);
  }
  return v as Record<string, unknown>;
}

function known(o: Record<string, unknown>, keys: readonly string[], where: string, field: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) {
      throw bad(where, field === "" ? k : `${field}.${k}`, `unknown setting; use one of ${keys.join(", ")}`);
    }
  }
}

function str(v: unknown, where: string, field: string): string {
  if (typeof v !== "string" || v === "")
    throw bad(where, field, `${showValue(v, 80)} is not a non-empty string`);
  return v;
}

function optStr(o: Record<string, unknown>, k: string, where: string, field: string): string | undefined {
  return o[k] === undefined ? undefined : str(o[k], where, `${field}${k}`);
}

function int(v: unknown, min: number, max: number, where: string, field: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw bad(where, field, `${showValue(v, 80)} is not a whole number from ${min} to ${max}`);
  }
  return v;
}

function strList(v: unknown, where: string, field: string): string[] {
  if (!Array.isArray(v)) throw bad(where, field, `${showValue(v, 80)} is not a list`);
  return v.map((x, i) => str(x, where, `${field}[${i}]`));
}

/** Checks a site (or cloud) name. @throws MyelinError ERR_BAD_CONFIG */
export function checkSiteName(v: unknown, where: string, field: string): string {
  if (typeof v !== "string" || !SITE_NAME.test(v)) {
    throw bad(
      where,
      field,
      `${showValue(v, 80)} is not a site name: use 1 to 64 letters, digits, '_' or '-'`,
    );
  }
  return v;
}

function durablePattern(v: unknown, where: string, field: string): string {
  if (typeof v !== "string" || !DURABLE_PATTERN.test(v)) {
    throw bad(
      where,
      field,
      `${showValue(v, 80)} is not a durable-topic pattern: levels after a leading '/', '*' for one level, '**' for any, e.g. /robot/**`,
    );
  }
  if (v.startsWith("/_"))
    throw bad(where, field, `${showValue(v, 80)}: hidden topics (/_…) are not exported`);
  return v;
}

function parseNats(v: unknown, where: string): UplinkNatsConfig {
  const o = obj(v, where, "nats");
  known(
    o,
    [
      "servers",
      "user",
      "pass",
      "passEnv",
      "token",
      "tokenEnv",
      "credsFile",
      "nkeySeedFile",
      "tls",
      "connectTimeoutMs",
      "jetStreamDomain",
    ],
    where,
    "nats",
  );
  const rawServers = typeof o["servers"] === "string" ? [o["servers"]] : o["servers"];
  const servers = strList(rawServers ?? [], where, "nats.servers");
  if (servers.length === 0) {
    throw bad(where, "nats.servers", "give at least one NATS server URL, e.g. nats://cloud.example:4222");
  }
  for (const [i, s] of servers.entries()) {
    if (!/^((nats|tls|ws|wss):\/\/)?[^\s/]+(:\d+)?\/?$/.test(s)) {
      throw bad(where, `nats.servers[${i}]`, `${showValue(s, 80)} is not a NATS URL like nats://host:4222`);
    }
  }
  const c: UplinkNatsConfig = { servers };
  for (const k of ["user", "pass", "passEnv", "token", "tokenEnv", "credsFile", "nkeySeedFile"] as const) {
    const s = optStr(o, k, where, "nats.");
    if (s !== undefined) c[k] = s;
  }
  if (c.pass !== undefined && c.passEnv !== undefined)
    throw bad(where, "nats.pass", "give pass or passEnv, not both");
  if (c.token !== undefined && c.tokenEnv !== undefined)
    throw bad(where, "nats.token", "give token or tokenEnv, not both");
  const methods = [
    c.user !== undefined,
    c.token !== undefined || c.tokenEnv !== undefined,
    c.credsFile !== undefined,
    c.nkeySeedFile !== undefined,
  ].filter(Boolean).length;
  if (methods > 1) {
    throw bad(where, "nats", "give one way to log in: user/pass, token, credsFile or nkeySeedFile");
  }
  if ((c.pass !== undefined || c.passEnv !== undefined) && c.user === undefined) {
    throw bad(where, "nats.user", "a password needs a user");
  }
  if (o["tls"] !== undefined) {
    const t = obj(o["tls"], where, "nats.tls");
    known(t, ["caFile", "certFile", "keyFile"], where, "nats.tls");
    const tls: NonNullable<UplinkNatsConfig["tls"]> = {};
    for (const k of ["caFile", "certFile", "keyFile"] as const) {
      const s = optStr(t, k, where, "nats.tls.");
      if (s !== undefined) tls[k] = s;
    }
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      throw bad(where, "nats.tls", "a client certificate needs both certFile and keyFile");
    }
    c.tls = tls;
  }
  if (o["jetStreamDomain"] !== undefined) {
    const d = str(o["jetStreamDomain"], where, "nats.jetStreamDomain");
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(d)) {
      throw bad(
        where,
        "nats.jetStreamDomain",
        `${showValue(d, 80)}: use letters, digits, '_' or '-' (the cloud's jetstream domain)`,
      );
    }
    c.jetStreamDomain = d;
  }
  if (o["connectTimeoutMs"] !== undefined) {
    c.connectTimeoutMs = int(o["connectTimeoutMs"], 100, 600_000, where, "nats.connectTimeoutMs");
  }
  return c;
}

/**
 * Checks an uplink configuration (already parsed from YAML or JSON) and fills in the defaults.
 * `where` names the source in errors (a file name).
 * @throws MyelinError ERR_BAD_CONFIG naming the field and the fix
 */
export function parseUplinkConfig(raw: unknown, where = "uplink configuration"): UplinkConfig {
  const o = obj(raw, where, "(top level)");
  known(o, ["role", "site", "nats", "stream", "catchUp", "export", "import", "sites"], where, "");
  const role = o["role"] ?? "site";
  if (role !== "site" && role !== "cloud") {
    throw bad(where, "role", `${showValue(role, 40)} is not site or cloud`);
  }
  if (o["site"] === undefined)
    throw bad(where, "site", "missing: name this site (or cloud), e.g. site: cell-7");
  const site = checkSiteName(o["site"], where, "site");
  if (o["nats"] === undefined)
    throw bad(where, "nats", "missing: give nats.servers, e.g. [nats://cloud:4222]");
  const nats = parseNats(o["nats"], where);

  const stream: UplinkStreamConfig = {
    replicas: UPLINK_DEFAULTS.replicas,
    duplicateWindowMs: UPLINK_DEFAULTS.duplicateWindowMs,
    maxAgeMs: UPLINK_DEFAULTS.maxAgeMs,
  };
  if (o["stream"] !== undefined) {
    const s = obj(o["stream"], where, "stream");
    known(s, ["replicas", "duplicateWindowMs", "maxAgeMs"], where, "stream");
    if (s["replicas"] !== undefined) {
      const r = int(s["replicas"], 1, 5, where, "stream.replicas");
      if (r % 2 === 0)
        throw bad(where, "stream.replicas", `${r}: use 1, 3 or 5 (an odd number, for a quorum)`);
      stream.replicas = r;
    }
    if (s["duplicateWindowMs"] !== undefined) {
      stream.duplicateWindowMs = int(
        s["duplicateWindowMs"],
        1000,
        7 * 86_400_000,
        where,
        "stream.duplicateWindowMs",
      );
    }
    if (s["maxAgeMs"] !== undefined)
      stream.maxAgeMs = int(s["maxAgeMs"], 0, 365 * 86_400_000, where, "stream.maxAgeMs");
    if (stream.maxAgeMs !== 0 && stream.maxAgeMs < stream.duplicateWindowMs) {
      throw bad(where, "stream.duplicateWindowMs", "must not be longer than stream.maxAgeMs");
    }
  }

  const catchUp: UplinkCatchUpConfig = {
    maxInFlight: UPLINK_DEFAULTS.maxInFlight,
    messagesPerSecond: UPLINK_DEFAULTS.messagesPerSecond,
    bytesPerSecond: UPLINK_DEFAULTS.bytesPerSecond,
  };
  if (o["catchUp"] !== undefined) {
    const c = obj(o["catchUp"], where, "catchUp");
    known(c, ["maxInFlight", "messagesPerSecond", "bytesPerSecond"], where, "catchUp");
    if (c["maxInFlight"] !== undefined)
      catchUp.maxInFlight = int(c["maxInFlight"], 1, 65_536, where, "catchUp.maxInFlight");
    if (c["messagesPerSecond"] !== undefined) {
      catchUp.messagesPerSecond = int(
        c["messagesPerSecond"],
        0,
        10_000_000,
        where,
        "catchUp.messagesPerSecond",
      );
    }
    if (c["bytesPerSecond"] !== undefined) {
      catchUp.bytesPerSecond = int(c["bytesPerSecond"], 0, 2 ** 40, where, "catchUp.bytesPerSecond");
    }
  }

  const cfg: UplinkConfig = {
    role,
    site,
    nats,
    stream,
    catchUp,
    exportDurable: [],
    exportVolatile: [],
    import: [],
    sites: [],
  };
  if (role === "site") {
    if (o["sites"] !== undefined) throw bad(where, "sites", "only a cloud (role: cloud) lists sites");
    if (o["export"] !== undefined) {
      const e = obj(o["export"], where, "export");
      known(e, ["durable", "volatile"], where, "export");
      if (e["durable"] !== undefined) {
        if (!Array.isArray(e["durable"]))
          throw bad(where, "export.durable", "is not a list of topic patterns");
        cfg.exportDurable = e["durable"].map((p, i) => durablePattern(p, where, `export.durable[${i}]`));
      }
      if (e["volatile"] !== undefined) {
        if (!Array.isArray(e["volatile"]))
          throw bad(where, "export.volatile", "is not a list of {topic, type}");
        cfg.exportVolatile = e["volatile"].map((v, i) => {
          const f = `export.volatile[${i}]`;
          const r = obj(v, where, f);
          known(r, ["topic", "type"], where, f);
          const topic = str(r["topic"], where, `${f}.topic`);
          if (!topic.startsWith("/") || topic.startsWith("/_")) {
            throw bad(
              where,
              `${f}.topic`,
              `${showValue(topic, 80)} is not a topic pattern like /telemetry/+ (hidden topics are not exported)`,
            );
          }
          return { topic, type: str(r["type"], where, `${f}.type`) };
        });
      }
    }
    if (o["import"] !== undefined) {
      if (!Array.isArray(o["import"])) throw bad(where, "import", "is not a list of topic patterns");
      cfg.import = o["import"].map((p, i) => durablePattern(p, where, `import[${i}]`));
    }
    if (cfg.exportDurable.length + cfg.exportVolatile.length + cfg.import.length === 0) {
      throw bad(
        where,
        "export",
        "a site exports or imports something: give export.durable, export.volatile or import",
      );
    }
  } else {
    for (const k of ["export", "import"]) {
      if (o[k] !== undefined)
        throw bad(where, k, `a cloud does not ${k}; it consumes the sites' streams (sites: [...])`);
    }
    if (!Array.isArray(o["sites"]) || o["sites"].length === 0) {
      throw bad(where, "sites", "a cloud lists the sites it consumes, e.g. sites: [cell-7, cell-8]");
    }
    cfg.sites = o["sites"].map((s, i) => checkSiteName(s, where, `sites[${i}]`));
    const dup = cfg.sites.find((s, i) => cfg.sites.indexOf(s) !== i);
    if (dup !== undefined) throw bad(where, "sites", `${dup} is listed twice`);
  }
  return cfg;
}

/**
 * Parses the text of an uplink configuration file (YAML or JSON).
 * @throws MyelinError ERR_BAD_CONFIG naming the file and what is wrong
 */
export function parseUplinkConfigText(text: string, where: string): UplinkConfig {
  let raw: unknown;
  try {
    raw = yaml().parse(text);
  } catch (err) {
    throw new MyelinError("ERR_BAD_CONFIG", `${where}: not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseUplinkConfig(raw, where);
}

/** The mapping rules (bridges' model, NATS syntax) of the volatile exports. */
export function volatileRules(cfg: UplinkConfig): MappingSpec[] {
  return cfg.exportVolatile.map((v) => ({
    myelin: v.topic,
    external: v.topic
      .slice(1)
      .split("/")
      .map((l) => (l === "+" ? "*" : l === "#" ? ">" : l.replaceAll(".", "%2E")))
      .join("."),
    type: v.type,
    format: "json",
    direction: "out",
    qos: 0,
  }));
}
