/**
 * Mapping between external topics (MQTT, NATS, AMQP) and Myelin topics, shared by the embedded
 * MQTT gateway and the bridges. Sans-IO: a {@link TopicMap} turns a topic name of one side into
 * the other's, and {@link decodeExternal} / {@link encodeExternal} turn payloads into messages
 * and back. Nothing here opens a socket.
 *
 * A rule pairs a Myelin pattern with an external pattern holding the same wildcards in the same
 * order: `+` (one level) and `#` (the rest, last level only) on the Myelin side; `+`/`#` for
 * MQTT, `*`/`>` for NATS and `*`/`#` for AMQP on the external side. What a wildcard matched on
 * one side fills the same wildcard on the other. Levels are separated by `/` (Myelin, MQTT) or
 * `.` (NATS, AMQP). A site prefix goes in front of every external topic, so that two sites
 * sharing a broker never collide.
 */
import { MyelinError, showValue } from "../errors.js";
import { lookupType, type MessageType } from "../msgs/index.js";
import { base64DecodeBytes, fromJson, toJson } from "../codec/index.js";

/** Which way a rule carries messages. `in`: external → Myelin; `out`: Myelin → external. */
export type MappingDirection = "in" | "out" | "both";
/** How an external payload is read: JSON checked against the type, or the bytes as they are. */
export type PayloadFormat = "json" | "raw";
/**
 * Wildcards and separators of the external side: mqtt `+ # /`; nats `* > .`; amqp `* # .`;
 * kafka `* # .` (a Kafka topic name is one string of letters, digits, `.`, `_` and `-`; its
 * `.`-separated parts are the levels).
 */
export type ExternalSyntax = "mqtt" | "nats" | "amqp" | "kafka";

/** One mapping rule, as written in a configuration file. */
export interface MappingSpec {
  /** Myelin topic pattern, e.g. `/sensors/+/temperature` (`+` one level, `#` the rest, as last level). */
  myelin: string;
  /** External pattern in the external syntax with the same wildcards in the same order, e.g. `sensors/+/temperature`. */
  external: string;
  /**
   * Myelin message type name, e.g. `sensor_msgs/Temperature`. For `format: raw`, a type whose
   * field `data` is bytes, normally `myelin_msgs/RawPayload`.
   */
  type: string;
  /** Payload format on the external side (default `json`). */
  format?: PayloadFormat;
  /** Direction (default `both`). */
  direction?: MappingDirection;
  /** External QoS: what `out` messages are published with, and the most `in` subscriptions ask for (default 1). */
  qos?: 0 | 1 | 2;
}

/** Options of a {@link TopicMap}. */
export interface TopicMapOptions {
  /** Syntax of the external side. */
  syntax: ExternalSyntax;
  /** Prepended to every external topic, e.g. `site-a` → `site-a/sensors/…` (MQTT) or `site-a.sensors.…` (NATS). */
  sitePrefix?: string;
}

/** A rule with its defaults filled in, its position in the list and its message type. */
export interface ResolvedMapping extends Required<MappingSpec> {
  /** Position of the rule in the list it came from (first is 0). */
  index: number;
  /** The registered message type named by `type`. */
  messageType: MessageType<unknown>;
}

/** The result of {@link TopicMap.matchInbound}: a Myelin topic, or why there is none. */
export type InboundMatch =
  | { ok: true; myelinTopic: string; rule: ResolvedMapping }
  | { ok: false; reason: string; rule?: ResolvedMapping };

interface SyntaxDef {
  sep: string;
  one: string;
  rest: string;
  /** Characters a literal level may not contain. */
  forbidden: RegExp;
  /** Whether a level may be empty (MQTT allows `a//b` and a leading `/`). */
  emptyLevels: boolean;
}

const SYNTAX: Record<ExternalSyntax, SyntaxDef> = {
  mqtt: { sep: "/", one: "+", rest: "#", forbidden: /[+#\u0000]/, emptyLevels: true },
  nats: { sep: ".", one: "*", rest: ">", forbidden: /[*>\s]/, emptyLevels: false },
  amqp: { sep: ".", one: "*", rest: "#", forbidden: /[*#]/, emptyLevels: true },
  kafka: { sep: ".", one: "*", rest: "#", forbidden: /[^A-Za-z0-9_-]/, emptyLevels: false },
};

/** The longest Kafka topic name, in characters. */
const KAFKA_TOPIC_MAX = 249;

/** A valid level of a Myelin topic name. */
const MYELIN_LEVEL = /^[A-Za-z0-9_.~-]+$/;

type Level = { kind: "lit"; text: string } | { kind: "one" } | { kind: "rest" };

interface CompiledRule {
  rule: ResolvedMapping;
  myelin: Level[];
  external: Level[];
  /** Literal-only patterns: the whole topic, for a fast exact match. */
  myelinExact: string | undefined;
  externalExact: string | undefined;
}

function bad(index: number, field: string, msg: string): MyelinError {
  return new MyelinError("ERR_BAD_CONFIG", `mapping[${index}].${field}: ${msg}`);
}

function parseMyelin(p: unknown, index: number): Level[] {
  if (typeof p !== "string" || !p.startsWith("/") || p.length < 2) {
    throw bad(
      index,
      "myelin",
      `${showValue(p, 120)} is not a Myelin topic pattern: write levels after a leading '/', e.g. /sensors/+/temperature`,
    );
  }
  const parts = p.slice(1).split("/");
  return parts.map((s, i): Level => {
    if (s === "+") return { kind: "one" };
    if (s === "#") {
      if (i !== parts.length - 1)
        throw bad(index, "myelin", `'#' must be the last level in ${showValue(p, 120)}`);
      return { kind: "rest" };
    }
    if (!MYELIN_LEVEL.test(s)) {
      throw bad(
        index,
        "myelin",
        `level ${showValue(s, 120)} of ${showValue(p, 120)} is not valid: use letters, digits, '_', '-', '.', '~', or the wildcards '+' and '#'`,
      );
    }
    return { kind: "lit", text: s };
  });
}

function parseExternal(p: unknown, syn: SyntaxDef, syntax: ExternalSyntax, index: number): Level[] {
  if (typeof p !== "string" || p === "") {
    throw bad(
      index,
      "external",
      `${showValue(p, 120)} is not a ${syntax} topic pattern (a non-empty string)`,
    );
  }
  const parts = p.split(syn.sep);
  return parts.map((s, i): Level => {
    if (s === syn.one) return { kind: "one" };
    if (s === syn.rest) {
      if (i !== parts.length - 1)
        throw bad(index, "external", `'${syn.rest}' must be the last level in ${showValue(p, 120)}`);
      return { kind: "rest" };
    }
    if (s === "" && !syn.emptyLevels) {
      throw bad(index, "external", `${showValue(p, 120)} has an empty level; ${syntax} does not allow one`);
    }
    if (syntax === "kafka" && syn.forbidden.test(s) && !/[*#]/.test(s)) {
      throw bad(
        index,
        "external",
        `level ${showValue(s, 120)} of ${showValue(p, 120)} is not valid in a Kafka topic name: use letters, digits, '_' and '-' (levels are separated by '.')`,
      );
    }
    if (syn.forbidden.test(s)) {
      throw bad(
        index,
        "external",
        `level ${showValue(s, 120)} of ${showValue(p, 120)} mixes a wildcard with text; ${syntax} wildcards are '${syn.one}' and '${syn.rest}', each a whole level`,
      );
    }
    return { kind: "lit", text: s };
  });
}

function wildcardShape(levels: Level[]): string {
  return levels
    .filter((l) => l.kind !== "lit")
    .map((l) => (l.kind === "one" ? "+" : "#"))
    .join("");
}

function exact(levels: Level[], join: (texts: string[]) => string): string | undefined {
  if (levels.some((l) => l.kind !== "lit")) return undefined;
  return join(levels.map((l) => (l as { text: string }).text));
}

/**
 * Matches `levels` (a topic split into levels) against `pattern`; returns the wildcard captures
 * in order (a `+` capture is one level, a `#` capture the remaining levels), or undefined.
 */
function match(pattern: Level[], levels: string[]): string[][] | undefined {
  const caps: string[][] = [];
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p.kind === "rest") {
      caps.push(levels.slice(i));
      return caps;
    }
    const l = levels[i];
    if (l === undefined) return undefined;
    if (p.kind === "lit") {
      if (p.text !== l) return undefined;
    } else {
      caps.push([l]);
    }
  }
  return levels.length === pattern.length ? caps : undefined;
}

/** Fills `pattern`'s wildcards with `caps`, in order; returns the levels. */
function fill(pattern: Level[], caps: string[][]): string[] {
  const out: string[] = [];
  let c = 0;
  for (const p of pattern) {
    if (p.kind === "lit") out.push(p.text);
    else out.push(...caps[c++]!);
  }
  return out;
}

/**
 * A list of mapping rules, compiled. Topics are looked up rule by rule in order; the first rule
 * whose pattern matches (and whose direction fits) wins.
 */
export class TopicMap {
  /** The rules, defaults filled in, in order. */
  readonly rules: readonly ResolvedMapping[];
  /** Syntax of the external side. */
  readonly syntax: ExternalSyntax;
  /** The site prefix (without a trailing separator), or "" for none. */
  readonly sitePrefix: string;
  readonly #syn: SyntaxDef;
  readonly #in: CompiledRule[] = [];
  readonly #out: CompiledRule[] = [];
  readonly #prefixWithSep: string;
  readonly #inCache = new Map<string, InboundMatch>();
  readonly #outCache = new Map<string, { externalTopic: string; rule: ResolvedMapping } | null>();

  /**
   * Compiles `specs`.
   * @throws MyelinError ERR_BAD_CONFIG naming the entry and the field, e.g. `mapping[2].external: …`
   */
  constructor(specs: readonly MappingSpec[], opts: TopicMapOptions) {
    const syntax = opts?.syntax;
    if (syntax !== "mqtt" && syntax !== "nats" && syntax !== "amqp" && syntax !== "kafka") {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `mapping syntax ${showValue(syntax, 120)} is not known: use mqtt, nats, amqp or kafka`,
      );
    }
    if (!Array.isArray(specs)) {
      throw new MyelinError("ERR_BAD_CONFIG", `mapping must be a list of rules, got ${typeof specs}`);
    }
    this.syntax = syntax;
    this.#syn = SYNTAX[syntax];
    const prefix = opts.sitePrefix ?? "";
    if (typeof prefix !== "string") {
      throw new MyelinError("ERR_BAD_CONFIG", `sitePrefix must be a string, got ${typeof prefix}`);
    }
    const trimmed = prefix.endsWith(this.#syn.sep) ? prefix.slice(0, -1) : prefix;
    if (trimmed !== "") {
      for (const level of trimmed.split(this.#syn.sep)) {
        if (level === "" || this.#syn.forbidden.test(level) || /[+#*>]/.test(level)) {
          throw new MyelinError(
            "ERR_BAD_CONFIG",
            `sitePrefix ${showValue(prefix, 120)} is not valid: use non-empty ${syntax} levels without wildcards, e.g. "site-a"`,
          );
        }
      }
    }
    this.sitePrefix = trimmed;
    this.#prefixWithSep = trimmed === "" ? "" : trimmed + this.#syn.sep;

    const rules: ResolvedMapping[] = [];
    specs.forEach((spec, index) => {
      if (typeof spec !== "object" || spec === null) throw bad(index, "myelin", "the rule is not an object");
      const myelin = parseMyelin(spec.myelin, index);
      const external = parseExternal(spec.external, this.#syn, syntax, index);
      if (wildcardShape(myelin) !== wildcardShape(external)) {
        throw bad(
          index,
          "external",
          `${showValue(spec.external, 120)} must hold the same wildcards in the same order as ${showValue(spec.myelin, 120)} (Myelin '+' ↔ ${syntax} '${this.#syn.one}', '#' ↔ '${this.#syn.rest}')`,
        );
      }
      const format = spec.format ?? "json";
      if (format !== "json" && format !== "raw") {
        throw bad(index, "format", `${showValue(format, 120)} is not json or raw`);
      }
      const direction = spec.direction ?? "both";
      if (direction !== "in" && direction !== "out" && direction !== "both") {
        throw bad(index, "direction", `${showValue(direction, 120)} is not in, out or both`);
      }
      const qos = spec.qos ?? 1;
      if (qos !== 0 && qos !== 1 && qos !== 2) {
        throw bad(index, "qos", `${showValue(qos, 120)} is not 0, 1 or 2`);
      }
      if (typeof spec.type !== "string" || spec.type === "") {
        throw bad(
          index,
          "type",
          `a message type name is needed, e.g. std_msgs/String or myelin_msgs/RawPayload`,
        );
      }
      const messageType = lookupType(spec.type);
      if (messageType === undefined) {
        throw bad(
          index,
          "type",
          `message type ${spec.type} is not registered; check the spelling (pkg/Name) or import the module that defines it`,
        );
      }
      if (format === "raw") {
        const data = messageType.fields["data"] as { kind?: string } | undefined;
        if (data?.kind !== "bytes") {
          throw bad(
            index,
            "type",
            `format raw needs a type whose field 'data' is bytes (e.g. myelin_msgs/RawPayload); ${spec.type} has none`,
          );
        }
      }
      const rule: ResolvedMapping = {
        myelin: spec.myelin,
        external: spec.external,
        type: spec.type,
        format,
        direction,
        qos,
        index,
        messageType,
      };
      rules.push(rule);
      const compiled: CompiledRule = {
        rule,
        myelin,
        external,
        myelinExact: exact(myelin, (t) => "/" + t.join("/")),
        externalExact: exact(external, (t) => t.join(this.#syn.sep)),
      };
      if (direction !== "out") this.#in.push(compiled);
      if (direction !== "in") this.#out.push(compiled);
    });
    this.rules = Object.freeze(rules);
  }

  /** The Myelin topic of an external topic, by the first matching `in`/`both` rule; undefined if none maps it. */
  inbound(externalTopic: string): { myelinTopic: string; rule: ResolvedMapping } | undefined {
    const m = this.matchInbound(externalTopic);
    return m.ok ? { myelinTopic: m.myelinTopic, rule: m.rule } : undefined;
  }

  /**
   * Like {@link inbound}, but says why a topic does not map: no rule matches, or a rule matches
   * and a level it captured is not a valid Myelin level (then `rule` is that rule).
   */
  matchInbound(externalTopic: string): InboundMatch {
    let r = this.#inCache.get(externalTopic);
    if (r === undefined) {
      r = this.#matchInbound(externalTopic);
      if (this.#inCache.size >= 10000) this.#inCache.clear();
      this.#inCache.set(externalTopic, r);
    }
    return r;
  }

  #matchInbound(externalTopic: string): InboundMatch {
    if (typeof externalTopic !== "string" || !externalTopic.startsWith(this.#prefixWithSep)) {
      return {
        ok: false,
        reason: `no mapping rule matches ${this.syntax} topic ${showValue(externalTopic, 120)}`,
      };
    }
    const rest = externalTopic.slice(this.#prefixWithSep.length);
    const levels = rest.split(this.#syn.sep);
    // Topics starting with '$' (e.g. $SYS) are not matched by a leading wildcard (MQTT 4.7.2).
    const dollar = rest.startsWith("$");
    let firstFailure: InboundMatch | undefined;
    for (const c of this.#in) {
      if (c.externalExact !== undefined) {
        if (c.externalExact !== rest) continue;
      } else if (dollar && c.external[0]?.kind !== "lit") continue;
      const caps = c.externalExact !== undefined ? [] : match(c.external, levels);
      if (caps === undefined) continue;
      const out = fill(c.myelin, caps);
      const badLevel = out.find((l) => !MYELIN_LEVEL.test(l));
      if (out.length === 0 || badLevel !== undefined) {
        firstFailure ??= {
          ok: false,
          rule: c.rule,
          reason:
            out.length === 0
              ? `${this.syntax} topic ${JSON.stringify(externalTopic)} maps to an empty Myelin topic by mapping[${c.rule.index}]`
              : `${this.syntax} topic ${JSON.stringify(externalTopic)} matches mapping[${c.rule.index}] but its level ${JSON.stringify(badLevel)} is not a valid Myelin level (letters, digits, '_', '-', '.', '~')`,
        };
        continue;
      }
      return { ok: true, myelinTopic: "/" + out.join("/"), rule: c.rule };
    }
    return (
      firstFailure ?? {
        ok: false,
        reason: `no mapping rule (in or both) matches ${this.syntax} topic ${JSON.stringify(externalTopic)}`,
      }
    );
  }

  /** The external topic (site prefix included) of a Myelin topic, by the first matching `out`/`both` rule; undefined if none maps it. */
  outbound(myelinTopic: string): { externalTopic: string; rule: ResolvedMapping } | undefined {
    let r = this.#outCache.get(myelinTopic);
    if (r === undefined) {
      r = this.#outbound(myelinTopic) ?? null;
      if (this.#outCache.size >= 10000) this.#outCache.clear();
      this.#outCache.set(myelinTopic, r);
    }
    return r ?? undefined;
  }

  #outbound(myelinTopic: string): { externalTopic: string; rule: ResolvedMapping } | undefined {
    if (typeof myelinTopic !== "string" || !myelinTopic.startsWith("/")) return undefined;
    const levels = myelinTopic.slice(1).split("/");
    for (const c of this.#out) {
      if (c.myelinExact !== undefined && c.myelinExact !== myelinTopic) continue;
      const caps = c.myelinExact !== undefined ? [] : match(c.myelin, levels);
      if (caps === undefined) continue;
      const out = fill(c.external, caps);
      // A Myelin level holding the external separator (a '.' towards NATS/AMQP) or a character the
      // broker refuses (a '~' towards Kafka) cannot be carried.
      if (
        out.some(
          (l) =>
            l.includes(this.#syn.sep) || (l === "" && !this.#syn.emptyLevels) || this.#syn.forbidden.test(l),
        )
      )
        continue;
      if (out.length === 0 && this.#prefixWithSep === "") continue;
      const tail = out.join(this.#syn.sep);
      if (this.syntax === "kafka" && this.#prefixWithSep.length + tail.length > KAFKA_TOPIC_MAX) continue;
      return {
        externalTopic: out.length === 0 ? this.sitePrefix : this.#prefixWithSep + tail,
        rule: c.rule,
      };
    }
    return undefined;
  }

  /** True if `myelinTopic` matches the Myelin pattern of some `out`/`both` rule (whatever the external side). */
  matchesOutbound(myelinTopic: string): boolean {
    return this.outbound(myelinTopic) !== undefined;
  }

  /**
   * What to subscribe to on the external side for the `in`/`both` rules: each external pattern
   * with the site prefix, once, with the highest QoS of the rules that share it.
   */
  externalSubscriptions(): { pattern: string; qos: 0 | 1 | 2 }[] {
    const seen = new Map<string, 0 | 1 | 2>();
    for (const c of this.#in) {
      const pattern = this.#prefixWithSep + c.rule.external;
      const q = seen.get(pattern);
      if (q === undefined || c.rule.qos > q) seen.set(pattern, c.rule.qos);
    }
    return [...seen].map(([pattern, qos]) => ({ pattern, qos }));
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Shortens a reason to a bounded length (rejects are published and counted). */
function clip(s: string, max = 600): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/**
 * Decodes an external payload for a rule: JSON parsed, converted with `fromJson` and validated
 * against the rule's type; raw wrapped as `{ data: payload }`. Never throws: a payload that fails
 * gives `{ ok: false, reason }` naming the type and each bad field.
 *
 * `alloc(size)` gives the buffer that the bytes of a `{"data":"<base64>"}` payload are decoded
 * into (a new buffer without it): the gateway lends the publisher's shared memory, so the decoded
 * bytes are not copied again on their way to subscribers. A buffer it gave that is not the
 * returned message's `data` was not used (give it back).
 */
export function decodeExternal(
  rule: ResolvedMapping,
  payload: Uint8Array,
  alloc?: (size: number) => Uint8Array,
): { ok: true; message: unknown } | { ok: false; reason: string } {
  try {
    if (rule.format === "raw") {
      return { ok: true, message: rule.messageType.create({ data: payload }) };
    }
    const fast = decodeDataOnly(rule, payload, alloc);
    if (fast !== undefined) return { ok: true, message: fast };
    let text: string;
    try {
      text = utf8.decode(payload);
    } catch {
      return { ok: false, reason: `payload (${payload.length} bytes) is not UTF-8 text, so not JSON` };
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return {
        ok: false,
        reason: clip(`payload (${payload.length} bytes) is not valid JSON: ${(err as Error).message}`),
      };
    }
    return { ok: true, message: fromJson(rule.messageType, value) };
  } catch (err) {
    return { ok: false, reason: clip(err instanceof Error ? err.message : String(err)) };
  }
}

const DATA_OPEN = Buffer.from('{"data":"');
const DATA_CLOSE = Buffer.from('"}');

/**
 * The common JSON form of a bytes payload, `{"data":"<base64>"}` for a type whose field `data` is
 * bytes, decoded without the UTF-8 decode and `JSON.parse` of the whole text (2 of the 2.7 ms a
 * 1 MiB payload took). When the payload has exactly that shape and what lies between the quotes
 * is base64 (ASCII letters, digits, `+/-_` and trailing `=`, none of which JSON escapes),
 * `JSON.parse` would give `{ data: <that text> }` and `fromJson` would decode it with the decoder
 * `base64DecodeBytes` matches. So it is decoded straight from the payload's bytes into `alloc`'s
 * buffer, without a string of a megabyte, and `fromJson` gets `{ data: <the bytes> }`. Anything
 * else (another shape, a quote, a backslash, a control or non-ASCII character, text that is not
 * base64) is left to the general path, which gives a refusal its usual reason. Returns the
 * message, or undefined.
 */
function decodeDataOnly(
  rule: ResolvedMapping,
  payload: Uint8Array,
  alloc: ((size: number) => Uint8Array) | undefined,
): unknown {
  const n = payload.length;
  if (
    n < DATA_OPEN.length + DATA_CLOSE.length ||
    (rule.messageType.fields["data"] as { kind?: string } | undefined)?.kind !== "bytes"
  )
    return undefined;
  for (let i = 0; i < DATA_OPEN.length; i++) if (payload[i] !== DATA_OPEN[i]) return undefined;
  const end = n - DATA_CLOSE.length;
  for (let i = 0; i < DATA_CLOSE.length; i++) if (payload[end + i] !== DATA_CLOSE[i]) return undefined;
  // Between the two, base64 or nothing: no quote, backslash, control or non-ASCII character.
  const data = base64DecodeBytes(payload, DATA_OPEN.length, end, alloc);
  if (data === undefined) return undefined;
  try {
    return fromJson(rule.messageType, { data });
  } catch {
    return undefined;
  }
}

/**
 * Encodes a Myelin message for the external side: `toJson` then UTF-8 JSON text, or for `raw` the
 * bytes of its `data` field.
 * @throws MyelinError ERR_ENCODE if the message cannot be encoded (it is assumed valid)
 */
export function encodeExternal(rule: ResolvedMapping, message: unknown): Uint8Array {
  if (rule.format === "raw") {
    const data = (message as { data?: unknown } | null)?.data;
    if (!(data instanceof Uint8Array)) {
      throw new MyelinError(
        "ERR_ENCODE",
        `a raw mapping needs a message whose 'data' is bytes (rule mapping[${rule.index}])`,
      );
    }
    return data;
  }
  return encoder.encode(JSON.stringify(toJson(rule.messageType, message)));
}
