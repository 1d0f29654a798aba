/**
 * Per-topic settings of durable topics: retention (count, bytes, age), the retention mode
 * (`limits`, or `work-queue` where acknowledged messages are removed), the fsync policy and the
 * deduplication window. A topic's settings come from the store's defaults, overridden by the first
 * matching pattern of the store config, overridden by what was set on the topic itself (kept in
 * its `topic.json`, changed at runtime with `myelin topic config`).
 */
import { yaml } from "../codec/yaml.js";
import { MyelinError, showValue } from "../errors.js";
import type { FsyncPolicy, RetentionOptions } from "./log.js";

/** How old messages leave a durable topic. */
export type RetentionMode = "limits" | "work-queue";

/** Settings of one durable topic; every field optional (unset = inherited). */
export interface TopicConfig {
  /** `limits` (default): messages stay until a retention limit removes them. `work-queue`: a message is removed once every consumer of the topic acknowledged it. */
  mode?: RetentionMode;
  /** Retention limits; whole old segments are deleted once outside every limit given. A limit set to null is no limit, whatever a broader setting says. */
  retention?: TopicRetention;
  /** When a persistent publish is confirmed (default from the store, "always"). */
  fsync?: FsyncPolicy;
  /** Group-commit bound for `batch`, in ms. */
  batchMs?: number;
  /** A message id seen within this many ms is stored once (default 120000; 0 turns deduplication off). */
  dedupWindowMs?: number;
}

/** Retention limits of a topic config: a number, or null for "no limit here". */
export type TopicRetention = { [K in keyof RetentionOptions]?: number | null };

/** A topic pattern of the store config: an exact name, or `*` for one level and `**` for any number. */
export interface TopicConfigRule {
  pattern: string;
  config: TopicConfig;
}

/** Defaults of every durable topic. */
export const TOPIC_CONFIG_DEFAULTS = Object.freeze({
  mode: "limits",
  fsync: "always",
  batchMs: 5,
  dedupWindowMs: 120_000,
});

/** A topic's settings with every default applied. */
export interface ResolvedTopicConfig {
  mode: RetentionMode;
  retention: RetentionOptions;
  fsync: FsyncPolicy;
  batchMs: number;
  dedupWindowMs: number;
}

const FIELDS = new Set(["mode", "retention", "fsync", "batchMs", "dedupWindowMs"]);
const RETENTION_FIELDS = new Set(["maxMessages", "maxBytes", "maxAgeMs"]);

function bad(where: string, what: string): MyelinError {
  return new MyelinError("ERR_BAD_CONFIG", `${where}: ${what}`);
}

function nonNegInt(v: unknown, where: string, min: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw bad(where, `must be an integer >= ${min}, got ${showValue(v)}`);
  }
  return v;
}

/**
 * Checks a topic config read from JSON or YAML and returns it typed.
 * @param where names the place for errors, e.g. `store.yaml: topics./orders`
 * @throws MyelinError ERR_BAD_CONFIG naming the field and what is wrong with it
 */
export function parseTopicConfig(raw: unknown, where: string): TopicConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw bad(where, `must be a mapping of settings, got ${showValue(raw)}`);
  }
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!FIELDS.has(k)) throw bad(`${where}.${k}`, `unknown setting; use one of ${[...FIELDS].join(", ")}`);
  }
  const out: TopicConfig = {};
  if (obj["mode"] !== undefined) {
    if (obj["mode"] !== "limits" && obj["mode"] !== "work-queue") {
      throw bad(`${where}.mode`, `must be "limits" or "work-queue", got ${showValue(obj["mode"])}`);
    }
    out.mode = obj["mode"];
  }
  if (obj["fsync"] !== undefined) {
    const f = obj["fsync"];
    if (f !== "always" && f !== "batch" && f !== "never") {
      throw bad(`${where}.fsync`, `must be "always", "batch" or "never", got ${showValue(f)}`);
    }
    out.fsync = f;
  }
  if (obj["batchMs"] !== undefined) out.batchMs = nonNegInt(obj["batchMs"], `${where}.batchMs`, 0);
  if (obj["dedupWindowMs"] !== undefined)
    out.dedupWindowMs = nonNegInt(obj["dedupWindowMs"], `${where}.dedupWindowMs`, 0);
  if (obj["retention"] !== undefined) {
    const r = obj["retention"];
    if (r === null || typeof r !== "object" || Array.isArray(r)) {
      throw bad(`${where}.retention`, `must be a mapping of maxMessages, maxBytes, maxAgeMs`);
    }
    const rr = r as Record<string, unknown>;
    const retention: TopicRetention = {};
    for (const k of Object.keys(rr)) {
      if (!RETENTION_FIELDS.has(k)) {
        throw bad(`${where}.retention.${k}`, `unknown limit; use maxMessages, maxBytes or maxAgeMs`);
      }
      const v = rr[k];
      (retention as Record<string, number | null>)[k] =
        v === null ? null : nonNegInt(v, `${where}.retention.${k}`, 1);
    }
    out.retention = retention;
  }
  return out;
}

/** Whether `topic` matches `pattern` (`*` one level, `**` any number of levels, at least one). */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split("/");
  const t = topic.split("/");
  const walk = (i: number, j: number): boolean => {
    if (i === p.length) return j === t.length;
    if (p[i] === "**") {
      for (let k = j + 1; k <= t.length; k++) if (walk(i + 1, k)) return true;
      return false;
    }
    if (j === t.length) return false;
    return (p[i] === "*" ? t[j] !== "" : p[i] === t[j]) && walk(i + 1, j + 1);
  };
  return walk(0, 0);
}

/** Layers configs: later ones override earlier ones field by field (retention limit by limit). */
export function mergeTopicConfig(...layers: (TopicConfig | undefined)[]): TopicConfig {
  const out: TopicConfig = {};
  for (const l of layers) {
    if (l === undefined) continue;
    if (l.mode !== undefined) out.mode = l.mode;
    if (l.fsync !== undefined) out.fsync = l.fsync;
    if (l.batchMs !== undefined) out.batchMs = l.batchMs;
    if (l.dedupWindowMs !== undefined) out.dedupWindowMs = l.dedupWindowMs;
    if (l.retention !== undefined) {
      const r: TopicRetention = { ...out.retention };
      for (const k of ["maxMessages", "maxBytes", "maxAgeMs"] as const) {
        const v = l.retention[k];
        if (v !== undefined) r[k] = v;
      }
      out.retention = r;
    }
  }
  return out;
}

/**
 * The settings of `topic`: defaults, then the first rule whose pattern matches, then the topic's own.
 */
export function resolveTopicConfig(
  topic: string,
  defaults: TopicConfig,
  rules: readonly TopicConfigRule[],
  own: TopicConfig | undefined,
): ResolvedTopicConfig {
  const rule = rules.find((r) => topicMatches(r.pattern, topic));
  const m = mergeTopicConfig(defaults, rule?.config, own);
  const retention: RetentionOptions = {};
  for (const k of ["maxMessages", "maxBytes", "maxAgeMs"] as const) {
    const v = m.retention?.[k];
    if (typeof v === "number") retention[k] = v;
  }
  return {
    mode: m.mode ?? TOPIC_CONFIG_DEFAULTS.mode,
    retention,
    fsync: m.fsync ?? TOPIC_CONFIG_DEFAULTS.fsync,
    batchMs: m.batchMs ?? TOPIC_CONFIG_DEFAULTS.batchMs,
    dedupWindowMs: m.dedupWindowMs ?? TOPIC_CONFIG_DEFAULTS.dedupWindowMs,
  };
}

/**
 * Reads a store config document (parsed YAML or JSON): `defaults` and `topics` (pattern → settings).
 * @param where names the file for errors
 * @throws MyelinError ERR_BAD_CONFIG naming the field
 */
export function parseStoreConfig(
  raw: unknown,
  where: string,
): { defaults: TopicConfig; rules: TopicConfigRule[] } {
  if (raw === null || raw === undefined) return { defaults: {}, rules: [] };
  if (typeof raw !== "object" || Array.isArray(raw))
    throw bad(where, "must be a mapping with defaults and topics");
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (k !== "defaults" && k !== "topics")
      throw bad(`${where}: ${k}`, "unknown section; use defaults or topics");
  }
  const defaults =
    obj["defaults"] === undefined ? {} : parseTopicConfig(obj["defaults"], `${where}: defaults`);
  const rules: TopicConfigRule[] = [];
  const topics = obj["topics"];
  if (topics !== undefined) {
    if (topics === null || typeof topics !== "object" || Array.isArray(topics)) {
      throw bad(`${where}: topics`, "must be a mapping of topic pattern to settings");
    }
    for (const [pattern, cfg] of Object.entries(topics as Record<string, unknown>)) {
      if (!pattern.startsWith("/"))
        throw bad(`${where}: topics.${pattern}`, "a topic pattern starts with '/'");
      rules.push({ pattern, config: parseTopicConfig(cfg, `${where}: topics.${pattern}`) });
    }
  }
  return { defaults, rules };
}

/**
 * Reads a store config file's text (YAML or JSON) with {@link parseStoreConfig}.
 * @param file names the file for errors
 * @throws MyelinError ERR_BAD_CONFIG for a YAML syntax error (with its line) or an invalid setting
 */
export function parseStoreConfigText(
  text: string,
  file: string,
): { defaults: TopicConfig; rules: TopicConfigRule[] } {
  let raw: unknown;
  try {
    raw = yaml().parse(text, { prettyErrors: true, maxAliasCount: 100 });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new MyelinError("ERR_BAD_CONFIG", `${file}: not valid YAML: ${why}`, { cause: err });
  }
  return parseStoreConfig(raw, file);
}
