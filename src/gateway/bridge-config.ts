/**
 * Configuration of the bridges to external brokers (MQTT, NATS, AMQP 0-9-1), read from a YAML (or
 * JSON) file and validated with errors that name the file, the entry and the field:
 *
 * ```yaml
 * bridges:
 *   - name: plant
 *     kind: mqtt
 *     url: mqtt://broker.plant.local:1883
 *     mapping:
 *       - { myelin: /plant/+/temperature, external: plant/+/temperature, type: std_msgs/Float64, direction: in }
 * ```
 *
 * Reference: docs/bridges.md.
 */
import { readFile } from "node:fs/promises";
import { yaml } from "../codec/yaml.js";
import { MyelinError } from "../errors.js";
import type { FsyncPolicy } from "../store/log.js";
import { GATEWAY_ERRORS_TOPIC } from "./gateway-protocol.js";
import { TopicMap, type ExternalSyntax, type MappingSpec } from "./mapping.js";

/** The broker kinds a bridge speaks. */
export type BridgeKind = "mqtt" | "nats" | "amqp" | "kafka";

/** The offline queue of a bridge: where QoS 1/2 (confirmed) messages wait for the broker's ack. */
export interface BridgeQueueConfig {
  /** Most messages waiting (default 100000). */
  maxMessages?: number;
  /** Most payload bytes waiting (default 64 MiB). */
  maxBytes?: number;
  /**
   * What a full queue does with the next Myelin message: `block` (default) waits for room, which
   * pushes back on Myelin publishers; `reject` refuses it, counts it and reports it as a warning.
   */
  whenFull?: "block" | "reject";
  /** When a queued message is on disk: `always` (default), `batch`, `never`. */
  fsync?: FsyncPolicy;
}

/** How a bridge reconnects: exponential backoff with jitter between attempts. */
export interface BridgeReconnectConfig {
  /** First delay after a failed attempt, in ms (default 200). */
  initialMs?: number;
  /** Longest delay, in ms (default 10000). */
  maxMs?: number;
  /** Multiplier per failed attempt (default 2). */
  factor?: number;
  /** One connection attempt gives up after this many ms (default 10000). */
  connectTimeoutMs?: number;
}

/** What every bridge has. */
export interface BridgeConfigBase {
  /** Name of the bridge: letters, digits, `_`, `-`; unique in the file. Shown by `myelin bridge status`. */
  name: string;
  kind: BridgeKind;
  /** Broker URL: `mqtt://`, `mqtts://`, `ws://` (MQTT); `nats://` or `host:port` (NATS); `amqp://`, `amqps://` (AMQP). */
  url: string;
  /** The mapping rules (docs/bridges.md): Myelin topic patterns ⇄ external topic patterns. */
  mapping: MappingSpec[];
  /** Prepended to every external topic, e.g. `site-a`. */
  sitePrefix?: string;
  /** Where refused inbound messages are reported (default `/_gateway/errors`). */
  errorTopic?: string;
  queue?: BridgeQueueConfig;
  reconnect?: BridgeReconnectConfig;
  /** Most confirmed publishes waiting for the broker's ack at once (default 64). */
  maxInFlight?: number;
}

/** A bridge to an MQTT broker (3.1.1 or 5). */
export interface MqttBridgeConfig extends BridgeConfigBase {
  kind: "mqtt";
  /** Client id; stable, so the broker keeps the session (default `myelin-<name>`). */
  clientId?: string;
  username?: string;
  password?: string;
  /** Name of an environment variable holding the password (instead of `password`). */
  passwordEnv?: string;
  /** 4 (MQTT 3.1.1, default) or 5. */
  protocolVersion?: 4 | 5;
  /**
   * Start a fresh session on each connect (default false: the broker keeps the bridge's
   * subscriptions and queues QoS 1 messages while the bridge is away).
   */
  cleanSession?: boolean;
  /** Keepalive, in seconds (default 30). */
  keepaliveSec?: number;
}

/** JetStream settings of a NATS bridge. */
export interface NatsJetStreamConfig {
  /** The stream QoS 1 rules publish into and consume from. */
  stream: string;
  /** Create the stream (file storage) if it does not exist, with these subjects (default: the out and in patterns of QoS 1 rules). */
  create?: boolean;
  subjects?: string[];
  /** Durable consumer names start with this (default `myelin-<name>`); one consumer per inbound pattern. */
  durablePrefix?: string;
  /** Most messages a consumer has unacknowledged (default 256). */
  maxAckPending?: number;
}

/** A bridge to NATS: QoS 0 rules ride core NATS, QoS 1 rules JetStream. */
export interface NatsBridgeConfig extends BridgeConfigBase {
  kind: "nats";
  user?: string;
  pass?: string;
  passEnv?: string;
  token?: string;
  tokenEnv?: string;
  /** A `.creds` file (user JWT and nkey seed, operator/JWT mode), as `nsc` writes it. */
  credsFile?: string;
  /** A file holding a user nkey seed (`SU…`). */
  nkeySeedFile?: string;
  /** TLS: CA bundle, client certificate and key (PEM files). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  jetstream?: NatsJetStreamConfig;
}

/** A bridge to an AMQP 0-9-1 broker (RabbitMQ). */
export interface AmqpBridgeConfig extends BridgeConfigBase {
  kind: "amqp";
  /** The exchange messages are published to and inbound bindings are made on (default `amq.topic`). */
  exchange?: string;
  /** Declare the exchange (a durable `topic` exchange) if missing (default true, unless it is an `amq.` one). */
  declareExchange?: boolean;
  /** The queue inbound rules' routing keys are bound to (default `myelin.<name>`), durable. */
  inboundQueue?: string;
  /** Most unacknowledged inbound deliveries (default 64). */
  prefetch?: number;
  /** Heartbeat, in seconds (default 15). */
  heartbeatSec?: number;
}

/** SASL authentication of a Kafka bridge. */
export interface KafkaSaslConfig {
  mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  username: string;
  password?: string;
  /** Name of an environment variable holding the password (instead of `password`). */
  passwordEnv?: string;
}

/**
 * A bridge to Apache Kafka (kafkajs): out, an idempotent producer with `acks: all`; in, a consumer
 * group whose offsets are committed only after the message was published into Myelin.
 */
export interface KafkaBridgeConfig extends BridgeConfigBase {
  kind: "kafka";
  /** Client id (default `myelin-<name>`). */
  clientId?: string;
  /** Consumer group of the inbound rules (default `myelin-<name>`). */
  groupId?: string;
  /** A new consumer group starts at the oldest message (true) or after the newest (false, default). */
  fromBeginning?: boolean;
  /** TLS to the brokers (default false; true with a `kafkas://` URL). */
  tls?: boolean;
  sasl?: KafkaSaslConfig;
  /** Consumer group session timeout, in ms (default 30000). */
  sessionTimeoutMs?: number;
}

/** One bridge. */
export type BridgeConfig = MqttBridgeConfig | NatsBridgeConfig | AmqpBridgeConfig | KafkaBridgeConfig;

/** The external topic syntax of each broker kind. */
export const SYNTAX_OF: Record<BridgeKind, ExternalSyntax> = {
  mqtt: "mqtt",
  nats: "nats",
  amqp: "amqp",
  kafka: "kafka",
};

const COMMON_KEYS = [
  "name",
  "kind",
  "url",
  "mapping",
  "sitePrefix",
  "errorTopic",
  "queue",
  "reconnect",
  "maxInFlight",
];
const KIND_KEYS: Record<BridgeKind, string[]> = {
  mqtt: [
    "clientId",
    "username",
    "password",
    "passwordEnv",
    "protocolVersion",
    "cleanSession",
    "keepaliveSec",
  ],
  nats: ["user", "pass", "passEnv", "token", "tokenEnv", "credsFile", "nkeySeedFile", "tls", "jetstream"],
  amqp: ["exchange", "declareExchange", "inboundQueue", "prefetch", "heartbeatSec"],
  kafka: ["clientId", "groupId", "fromBeginning", "tls", "sasl", "sessionTimeoutMs"],
};

type Obj = Record<string, unknown>;

class Checker {
  constructor(readonly where: string) {}
  fail(field: string, msg: string): never {
    throw new MyelinError("ERR_BAD_CONFIG", `${this.where}${field}: ${msg}`);
  }
  obj(v: unknown, field: string): Obj {
    if (typeof v !== "object" || v === null || Array.isArray(v))
      this.fail(field, `must be a mapping (key: value), got ${show(v)}`);
    return v as Obj;
  }
  keys(o: Obj, field: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        this.fail(`${field}${k}`, `unknown setting; accepted here: ${allowed.join(", ")}`);
      }
    }
  }
  str(
    o: Obj,
    k: string,
    field: string,
    opts: { required?: boolean; re?: RegExp; hint?: string } = {},
  ): string | undefined {
    const v = o[k];
    if (v === undefined) {
      if (opts.required === true)
        this.fail(field + k, `is required${opts.hint !== undefined ? ` (${opts.hint})` : ""}`);
      return undefined;
    }
    if (typeof v !== "string" || v === "") this.fail(field + k, `must be a non-empty string, got ${show(v)}`);
    if (opts.re !== undefined && !opts.re.test(v))
      this.fail(field + k, `${show(v)} is not valid: ${opts.hint ?? ""}`);
    return v;
  }
  int(o: Obj, k: string, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(field + k, `must be an integer from ${min} to ${max}, got ${show(v)}`);
    }
    return v;
  }
  num(o: Obj, k: string, field: string, min: number): number | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min)
      this.fail(field + k, `must be a number >= ${min}, got ${show(v)}`);
    return v;
  }
  bool(o: Obj, k: string, field: string): boolean | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") this.fail(field + k, `must be true or false, got ${show(v)}`);
    return v;
  }
  oneOf<T extends string | number>(o: Obj, k: string, field: string, values: readonly T[]): T | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (!values.includes(v as T)) this.fail(field + k, `must be one of ${values.join(", ")}, got ${show(v)}`);
    return v as T;
  }
}

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  return typeof v;
}

function setIf<T extends object, K extends keyof T>(target: T, key: K, v: T[K] | undefined): void {
  if (v !== undefined) target[key] = v;
}

/**
 * Validates one bridge entry (`where` prefixes every error, e.g. `bridges.yaml: bridges[0].`).
 * Returns a copy with the mapping checked (the TopicMap is built once to report rule errors).
 * @throws MyelinError ERR_BAD_CONFIG naming the field and what is accepted
 */
export function validateBridgeConfig(value: unknown, where = ""): BridgeConfig {
  const c: Checker = new Checker(where);
  const o = c.obj(value, "");
  const kind = c.oneOf(o, "kind", "", ["mqtt", "nats", "amqp", "kafka"] as const);
  if (kind === undefined) c.fail("kind", "is required: mqtt, nats, amqp or kafka");
  c.keys(o, "", [...COMMON_KEYS, ...KIND_KEYS[kind]]);
  const name = c.str(o, "name", "", {
    required: true,
    re: /^[A-Za-z0-9_-]{1,64}$/,
    hint: "use letters, digits, '_' and '-' (at most 64)",
  })!;
  const url = c.str(o, "url", "", { required: true, hint: "the broker's address" })!;
  const schemes: Record<BridgeKind, RegExp> = {
    mqtt: /^(mqtts?|wss?|tcp|tls):\/\//,
    nats: /^(nats|tls|wss?):\/\/|^[^:/]+(:\d+)?$/,
    amqp: /^amqps?:\/\//,
    kafka: /^(kafkas?:\/\/)?[^\s,/:]+:\d+(,[^\s,/:]+:\d+)*$/,
  };
  if (!schemes[kind].test(url)) {
    const ex = {
      mqtt: "mqtt://host:1883",
      nats: "nats://host:4222",
      amqp: "amqp://user:pass@host:5672",
      kafka: "kafka://broker1:9092,broker2:9092",
    }[kind];
    c.fail("url", `${show(url)} is not a ${kind} URL, e.g. ${ex}`);
  }
  const base: BridgeConfigBase = { name, kind, url, mapping: [] };
  setIf(base, "sitePrefix", c.str(o, "sitePrefix", ""));
  setIf(
    base,
    "errorTopic",
    c.str(o, "errorTopic", "", {
      re: /^\/[A-Za-z0-9_.~/-]+$/,
      hint: `a Myelin topic, e.g. ${GATEWAY_ERRORS_TOPIC}`,
    }),
  );
  setIf(base, "maxInFlight", c.int(o, "maxInFlight", "", 1, 65535));
  if (o["queue"] !== undefined) {
    const q = c.obj(o["queue"], "queue");
    c.keys(q, "queue.", ["maxMessages", "maxBytes", "whenFull", "fsync"]);
    const queue: BridgeQueueConfig = {};
    setIf(queue, "maxMessages", c.int(q, "maxMessages", "queue.", 1));
    setIf(queue, "maxBytes", c.int(q, "maxBytes", "queue.", 1));
    setIf(queue, "whenFull", c.oneOf(q, "whenFull", "queue.", ["block", "reject"] as const));
    setIf(queue, "fsync", c.oneOf(q, "fsync", "queue.", ["always", "batch", "never"] as const));
    base.queue = queue;
  }
  if (o["reconnect"] !== undefined) {
    const r = c.obj(o["reconnect"], "reconnect");
    c.keys(r, "reconnect.", ["initialMs", "maxMs", "factor", "connectTimeoutMs"]);
    const rc: BridgeReconnectConfig = {};
    setIf(rc, "initialMs", c.int(r, "initialMs", "reconnect.", 1));
    setIf(rc, "maxMs", c.int(r, "maxMs", "reconnect.", 1));
    setIf(rc, "factor", c.num(r, "factor", "reconnect.", 1));
    setIf(rc, "connectTimeoutMs", c.int(r, "connectTimeoutMs", "reconnect.", 100));
    if (rc.initialMs !== undefined && rc.maxMs !== undefined && rc.maxMs < rc.initialMs) {
      c.fail("reconnect.maxMs", `must be >= reconnect.initialMs (${rc.initialMs}), got ${rc.maxMs}`);
    }
    base.reconnect = rc;
  }
  const rawMapping = o["mapping"];
  if (!Array.isArray(rawMapping) || rawMapping.length === 0) {
    c.fail(
      "mapping",
      "must be a non-empty list of rules ({ myelin, external, type, direction?, qos?, format? })",
    );
  }
  const mapping: MappingSpec[] = rawMapping.map((r, i) => {
    const m = c.obj(r, `mapping[${i}]`);
    c.keys(m, `mapping[${i}].`, ["myelin", "external", "type", "format", "direction", "qos"]);
    return { ...m } as unknown as MappingSpec;
  });

  let out: BridgeConfig;
  switch (kind) {
    case "mqtt": {
      const m: MqttBridgeConfig = { ...base, kind };
      setIf(
        m,
        "clientId",
        c.str(o, "clientId", "", { re: /^[\x21-\x7e]{1,128}$/, hint: "printable ASCII without spaces" }),
      );
      setIf(m, "username", c.str(o, "username", ""));
      setIf(m, "password", c.str(o, "password", ""));
      setIf(m, "passwordEnv", c.str(o, "passwordEnv", ""));
      setIf(m, "protocolVersion", c.oneOf(o, "protocolVersion", "", [4, 5] as const));
      setIf(m, "cleanSession", c.bool(o, "cleanSession", ""));
      setIf(m, "keepaliveSec", c.int(o, "keepaliveSec", "", 0, 65535));
      out = m;
      break;
    }
    case "nats": {
      const n: NatsBridgeConfig = { ...base, kind };
      setIf(n, "user", c.str(o, "user", ""));
      setIf(n, "pass", c.str(o, "pass", ""));
      setIf(n, "passEnv", c.str(o, "passEnv", ""));
      setIf(n, "token", c.str(o, "token", ""));
      setIf(n, "tokenEnv", c.str(o, "tokenEnv", ""));
      setIf(n, "credsFile", c.str(o, "credsFile", ""));
      setIf(n, "nkeySeedFile", c.str(o, "nkeySeedFile", ""));
      if (n.pass !== undefined && n.passEnv !== undefined) c.fail("pass", "give pass or passEnv, not both");
      if (n.token !== undefined && n.tokenEnv !== undefined)
        c.fail("token", "give token or tokenEnv, not both");
      if ((n.pass !== undefined || n.passEnv !== undefined) && n.user === undefined)
        c.fail("user", "a password needs a user");
      // A creds or nkey file is the whole login (user and token together stay accepted, as before).
      const keyLogins = [n.credsFile !== undefined, n.nkeySeedFile !== undefined].filter(Boolean).length;
      const otherLogin = n.user !== undefined || n.token !== undefined || n.tokenEnv !== undefined;
      if (keyLogins > 1 || (keyLogins === 1 && otherLogin)) {
        c.fail(
          n.credsFile !== undefined ? "credsFile" : "nkeySeedFile",
          "give one way to log in: user/pass, token, credsFile or nkeySeedFile",
        );
      }
      if (o["tls"] !== undefined) {
        const t = c.obj(o["tls"], "tls");
        c.keys(t, "tls.", ["caFile", "certFile", "keyFile"]);
        const tls: NonNullable<NatsBridgeConfig["tls"]> = {};
        setIf(tls, "caFile", c.str(t, "caFile", "tls."));
        setIf(tls, "certFile", c.str(t, "certFile", "tls."));
        setIf(tls, "keyFile", c.str(t, "keyFile", "tls."));
        if ((tls.certFile === undefined) !== (tls.keyFile === undefined))
          c.fail("tls", "a client certificate needs both certFile and keyFile");
        n.tls = tls;
      }
      if (o["jetstream"] !== undefined) {
        const j = c.obj(o["jetstream"], "jetstream");
        c.keys(j, "jetstream.", ["stream", "create", "subjects", "durablePrefix", "maxAckPending"]);
        const js: NatsJetStreamConfig = {
          stream: c.str(j, "stream", "jetstream.", {
            required: true,
            re: /^[A-Za-z0-9_-]+$/,
            hint: "a stream name: letters, digits, '_', '-'",
          })!,
        };
        setIf(js, "create", c.bool(j, "create", "jetstream."));
        if (j["subjects"] !== undefined) {
          const s = j["subjects"];
          if (!Array.isArray(s) || s.length === 0 || !s.every((x) => typeof x === "string" && x !== "")) {
            c.fail("jetstream.subjects", 'must be a non-empty list of subjects, e.g. ["site-a.>"]');
          }
          js.subjects = [...(s as string[])];
        }
        setIf(
          js,
          "durablePrefix",
          c.str(j, "durablePrefix", "jetstream.", {
            re: /^[A-Za-z0-9_-]+$/,
            hint: "letters, digits, '_', '-'",
          }),
        );
        setIf(js, "maxAckPending", c.int(j, "maxAckPending", "jetstream.", 1));
        n.jetstream = js;
      }
      // Core NATS by default; JetStream (qos 1) by default when a stream is configured.
      mapping.forEach((r, i) => {
        if (r.qos === undefined) r.qos = n.jetstream !== undefined ? 1 : 0;
        else if (r.qos !== 0 && n.jetstream === undefined) {
          c.fail(
            `mapping[${i}].qos`,
            `qos ${String(r.qos)} rides JetStream and needs a \`jetstream: { stream: NAME }\` setting on this bridge; use qos 0 for core NATS`,
          );
        }
      });
      out = n;
      break;
    }
    case "amqp": {
      const a: AmqpBridgeConfig = { ...base, kind };
      setIf(a, "exchange", c.str(o, "exchange", ""));
      setIf(a, "declareExchange", c.bool(o, "declareExchange", ""));
      setIf(a, "inboundQueue", c.str(o, "inboundQueue", ""));
      setIf(a, "prefetch", c.int(o, "prefetch", "", 1, 65535));
      setIf(a, "heartbeatSec", c.int(o, "heartbeatSec", "", 0, 3600));
      out = a;
      break;
    }
    case "kafka": {
      const k: KafkaBridgeConfig = { ...base, kind };
      const id = { re: /^[A-Za-z0-9._-]{1,249}$/, hint: "letters, digits, '.', '_', '-'" };
      setIf(k, "clientId", c.str(o, "clientId", "", id));
      setIf(k, "groupId", c.str(o, "groupId", "", id));
      setIf(k, "fromBeginning", c.bool(o, "fromBeginning", ""));
      setIf(k, "tls", c.bool(o, "tls", ""));
      setIf(k, "sessionTimeoutMs", c.int(o, "sessionTimeoutMs", "", 6000, 300000));
      if (o["sasl"] !== undefined) {
        const so = c.obj(o["sasl"], "sasl");
        c.keys(so, "sasl.", ["mechanism", "username", "password", "passwordEnv"]);
        const mechanism = c.oneOf(so, "mechanism", "sasl.", [
          "plain",
          "scram-sha-256",
          "scram-sha-512",
        ] as const);
        if (mechanism === undefined)
          c.fail("sasl.mechanism", "is required: plain, scram-sha-256 or scram-sha-512");
        const sasl: KafkaSaslConfig = {
          mechanism,
          username: c.str(so, "username", "sasl.", { required: true })!,
        };
        setIf(sasl, "password", c.str(so, "password", "sasl."));
        setIf(sasl, "passwordEnv", c.str(so, "passwordEnv", "sasl."));
        if (sasl.password === undefined && sasl.passwordEnv === undefined)
          c.fail(
            "sasl.password",
            "is required (or sasl.passwordEnv: the name of an environment variable holding it)",
          );
        k.sasl = sasl;
      }
      mapping.forEach((r, i) => {
        if (r.qos === 0 || r.qos === 2) {
          c.fail(
            `mapping[${i}].qos`,
            `Kafka rules are at least once (qos 1: acks=all out, committed offsets in); remove qos or set 1`,
          );
        }
        r.qos = 1;
      });
      out = k;
      break;
    }
  }
  out.mapping = mapping;
  // Build the map once: rule errors name bridges[i].mapping[j].field.
  try {
    const opts: { syntax: ExternalSyntax; sitePrefix?: string } = { syntax: SYNTAX_OF[kind] };
    if (out.sitePrefix !== undefined) opts.sitePrefix = out.sitePrefix;
    new TopicMap(mapping, opts);
  } catch (err) {
    if (err instanceof MyelinError && err.code === "ERR_BAD_CONFIG") {
      throw new MyelinError("ERR_BAD_CONFIG", `${where}${err.message}`, { cause: err });
    }
    throw err;
  }
  return out;
}

/**
 * Validates a whole bridge configuration (`{ bridges: [...] }`); `file` names it in errors.
 * @throws MyelinError ERR_BAD_CONFIG naming file, entry and field
 */
export function validateBridgeFile(value: unknown, file = "bridge config"): BridgeConfig[] {
  const c: Checker = new Checker(`${file}: `);
  const o = c.obj(value ?? undefined, "(top level)");
  c.keys(o, "", ["bridges"]);
  const list = o["bridges"];
  if (!Array.isArray(list) || list.length === 0) c.fail("bridges", "must be a non-empty list of bridges");
  const names = new Set<string>();
  return list.map((b, i) => {
    const cfg = validateBridgeConfig(b, `${file}: bridges[${i}].`);
    if (names.has(cfg.name))
      c.fail(`bridges[${i}].name`, `${show(cfg.name)} is used by another bridge; names must be unique`);
    names.add(cfg.name);
    return cfg;
  });
}

/**
 * Parses bridge configuration text (YAML or JSON).
 * @throws MyelinError ERR_BAD_CONFIG for a YAML syntax error (with its line) or an invalid entry
 */
export function parseBridgeConfig(text: string, file = "bridge config"): BridgeConfig[] {
  let value: unknown;
  try {
    value = yaml().parse(text, { prettyErrors: true });
  } catch (err) {
    throw new MyelinError("ERR_BAD_CONFIG", `${file}: not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return validateBridgeFile(value, file);
}

/**
 * Reads and validates a bridge configuration file.
 * @throws MyelinError ERR_BAD_CONFIG if it cannot be read or is invalid
 */
export async function loadBridgeConfig(path: string): Promise<BridgeConfig[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new MyelinError("ERR_BAD_CONFIG", `cannot read bridge config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseBridgeConfig(text, path);
}

/** The URL with any password replaced by `***`, for status and logs. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@/]*@/, "$1***@");
}
