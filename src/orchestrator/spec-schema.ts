/**
 * The JSON Schema of the launch spec (`myelin.yaml`), and the structural validator that checks a
 * parsed file against it. The schema is the one source of truth: the validator interprets it
 * (the subset of draft 2020-12 used here: type, properties, additionalProperties, items, enum,
 * minimum, maximum, minItems, pattern, oneOf, $ref to $defs), and `schema/myelin.schema.json` is
 * this object written out (a test keeps the two in step). Sans-IO: values and positions in,
 * problems out.
 */
import type { SourcePos, SpecProblem } from "../errors.js";

/** A JSON Schema, as far as the launch spec uses it. */
export interface Schema {
  $schema?: string;
  $id?: string;
  $ref?: string;
  $defs?: Record<string, Schema>;
  title?: string;
  description?: string;
  type?: SchemaType | SchemaType[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: readonly (string | number | boolean)[];
  minimum?: number;
  maximum?: number;
  minItems?: number;
  pattern?: string;
  oneOf?: Schema[];
  default?: unknown;
  examples?: unknown[];
}

type SchemaType = "object" | "array" | "string" | "integer" | "number" | "boolean" | "null";

const NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_.-]*$";
const ms = (description: string, dflt?: number): Schema => ({
  type: "integer",
  minimum: 0,
  description,
  ...(dflt !== undefined ? { default: dflt } : {}),
});

const probe: Schema = {
  type: "object",
  additionalProperties: false,
  description:
    "A custom health probe: exactly one of command, http or service; failing `failureThreshold` times in a row makes the process unhealthy (restarted per its restart policy).",
  properties: {
    command: {
      oneOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1 }],
      description: "a command run in the node's working directory; exit code 0 is healthy",
    },
    http: {
      type: "string",
      pattern: "^https?://",
      description: "a URL; a 2xx answer is healthy. {replica} is replaced by the replica index",
    },
    service: {
      type: "string",
      description: "a std_srvs/Trigger service; success true is healthy. {node} and {replica} are replaced",
    },
    intervalMs: ms("time between probes, ms", 5000),
    timeoutMs: ms("a probe slower than this failed, ms", 2000),
    failureThreshold: { type: "integer", minimum: 1, default: 3, description: "consecutive failures" },
    initialDelayMs: ms("first probe after the process started, ms", 0),
  },
};

/** The fields of a node; shared by node definitions and environment overrides. */
const nodeProperties: Record<string, Schema> = {
  module: {
    type: "string",
    description:
      "a JavaScript module (.js/.mjs, relative to this file) whose export is called with (node, ctx); run by the Myelin runner",
  },
  export: {
    type: "string",
    default: "default",
    description: "the module's export to call (default: its default export)",
  },
  command: {
    oneOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1 }],
    description:
      "any program: an array [program, ...args], or a string split at spaces (no shell). `node` means the Node.js running the hub",
  },
  args: {
    type: "array",
    items: { type: "string" },
    description: "extra arguments (command) or ctx.args (module)",
  },
  env: {
    type: "object",
    additionalProperties: { type: ["string", "number", "boolean"] },
    description: "environment variables added to the hub's",
  },
  parameters: {
    type: "object",
    description:
      "initial parameter values of the node (module nodes; commands get them in MYELIN_PARAMETERS)",
  },
  cwd: {
    type: "string",
    description: "working directory, relative to this file (default: this file's folder)",
  },
  replicas: { type: "integer", minimum: 0, maximum: 64, default: 1, description: "number of processes" },
  process: {
    type: "string",
    pattern: NAME_PATTERN,
    description:
      "composition: module nodes with the same process name run together in one process (one per replica)",
  },
  placement: {
    oneOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
    description:
      "labels (edge, server, cloud, a host name, …): a hub runs the node only if it carries one of them. Default: every hub",
  },
  dependsOn: {
    oneOf: [
      { type: "array", items: { type: "string", pattern: NAME_PATTERN } },
      { type: "object", additionalProperties: { type: "string", enum: ["ready", "started"] } },
    ],
    description:
      "nodes that must be ready (or just started) before this one starts: [a, b] or {a: ready, b: started}",
  },
  readiness: {
    type: "string",
    enum: ["node", "process", "probe"],
    default: "node",
    description:
      "when the process counts as ready: node = its Myelin nodes registered and said ready; process = once spawned; probe = the probe passed once",
  },
  restart: {
    oneOf: [
      { type: "string", enum: ["always", "on-failure", "never"] },
      {
        type: "object",
        additionalProperties: false,
        properties: {
          policy: { type: "string", enum: ["always", "on-failure", "never"], default: "on-failure" },
          backoffMs: ms("delay before the first restart; doubles after each quick failure, ms", 100),
          maxBackoffMs: ms("cap of the backoff delay, ms", 10000),
          jitter: {
            type: "number",
            minimum: 0,
            maximum: 1,
            default: 0.2,
            description: "± fraction of the delay",
          },
          resetAfterMs: ms("a process up this long resets the backoff, ms", 10000),
          crashLoop: {
            type: "object",
            additionalProperties: false,
            description: "this many restarts within windowMs mark the process failed (not retried)",
            properties: {
              restarts: { type: "integer", minimum: 1, default: 5 },
              windowMs: ms("window, ms", 60000),
            },
          },
        },
      },
    ],
    description:
      "restart policy: always, on-failure (default) or never, with backoff and crash-loop detection",
  },
  health: {
    type: "object",
    additionalProperties: false,
    properties: {
      heartbeat: {
        type: "boolean",
        default: true,
        description:
          "restart a process whose registered nodes stop heartbeating while it is still alive (hung)",
      },
      readyTimeoutMs: ms("a process not ready this long after it started is restarted, ms", 30000),
      probe,
    },
  },
  limits: {
    type: "object",
    additionalProperties: false,
    properties: {
      memoryMb: {
        type: "integer",
        minimum: 16,
        description:
          "memory: V8 heap limit for Node.js processes (--max-old-space-size), address-space limit (RLIMIT_AS) for others",
      },
      openFiles: { type: "integer", minimum: 16, description: "RLIMIT_NOFILE" },
      nice: { type: "integer", minimum: -20, maximum: 19, description: "scheduling priority" },
    },
  },
  stopGraceMs: ms("after SIGTERM, wait this long before SIGKILL, ms", 5000),
};

/** The launch spec's JSON Schema (draft 2020-12). */
export const LAUNCH_SPEC_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "myelin.schema.json",
  title: "Myelin launch spec (myelin.yaml)",
  description:
    "Nodes to run on this host, how to start, order, restart and check them. See docs/orchestration.md.",
  type: "object",
  additionalProperties: false,
  properties: {
    version: { type: "integer", enum: [1], description: "spec format version" },
    include: {
      type: "array",
      items: { type: "string" },
      description: "other spec files (relative to this one), read first; this file's fields override theirs",
    },
    nodes: {
      type: "object",
      additionalProperties: { $ref: "#/$defs/node" },
      description: "the nodes, by name",
    },
    topics: {
      type: "object",
      additionalProperties: { $ref: "#/$defs/topic" },
      description:
        "settings of durable topics by pattern (`*` one level, `**` any): retention, work-queue mode, fsync, dedup window; the first matching pattern applies (docs/durable-topics.md)",
    },
    environments: {
      type: "object",
      description: "per-environment overrides, chosen with `myelin up --env NAME` (or MYELIN_ENV)",
      additionalProperties: {
        type: "object",
        additionalProperties: false,
        properties: {
          nodes: { type: "object", additionalProperties: { $ref: "#/$defs/node" } },
        },
      },
    },
  },
  $defs: {
    node: { type: "object", additionalProperties: false, properties: nodeProperties },
    topic: {
      type: "object",
      additionalProperties: false,
      properties: {
        mode: {
          type: "string",
          enum: ["limits", "work-queue"],
          description: "work-queue: a message is removed once every consumer acknowledged it",
        },
        retention: {
          type: "object",
          additionalProperties: false,
          description: "whole old segments go once outside every limit; null lifts a broader limit",
          properties: {
            maxMessages: { type: ["integer", "null"], minimum: 1, description: "messages kept" },
            maxBytes: { type: ["integer", "null"], minimum: 1, description: "bytes on disk kept" },
            maxAgeMs: { type: ["integer", "null"], minimum: 1, description: "age of messages kept, ms" },
          },
        },
        fsync: {
          type: "string",
          enum: ["always", "batch", "never"],
          description: "when a persistent publish is confirmed",
        },
        batchMs: { type: "integer", minimum: 0, description: "group-commit bound of fsync batch, ms" },
        dedupWindowMs: {
          type: "integer",
          minimum: 0,
          description: "a message id seen within this many ms is stored once; 0: off",
        },
      },
    },
  },
};

/** Where a value came from, and one thing wrong with a spec: defined with SpecError in src/errors.ts. */
export type { SourcePos, SpecProblem };

/** A parsed file: its value and the position of every field path. */
export interface SourceDoc {
  file: string;
  value: unknown;
  /**
   * Position of each path ("" is the document): a map entry's path points at its key, `<path>#v`
   * at its value; a list item's path at the item.
   */
  pos: Map<string, SourcePos>;
}

/** Joins a path and a key: `a.b` + `c` → `a.b.c`; array indexes as `[i]`. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

/** The position of `path`, else of its nearest ancestor with one. */
export function posOf(doc: { file: string; pos: Map<string, SourcePos> }, path: string): SourcePos {
  let p = path;
  for (;;) {
    const hit = doc.pos.get(p);
    if (hit !== undefined) return hit;
    if (p === "") return { file: doc.file, line: 1, col: 1 };
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    p = cut < 0 ? "" : p.slice(0, cut);
  }
}

function typeOf(v: unknown): SchemaType {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  if (typeof v === "bigint") return "integer";
  return typeof v as SchemaType;
}

function matchesType(v: unknown, t: SchemaType): boolean {
  const actual = typeOf(v);
  return actual === t || (t === "number" && actual === "integer");
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** ` (did you mean 'x'?)` for a close match among `known`, else "". */
export function suggest(word: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(word.toLowerCase(), k.toLowerCase());
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3))
    ? ` (did you mean '${best}'?)`
    : "";
}

function describe(s: Schema): string {
  if (s.enum !== undefined) return `one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}`;
  const t = s.type;
  if (t === undefined) return "a value";
  const names: Record<SchemaType, string> = {
    object: "a map",
    array: "a list",
    string: "a string",
    integer: "an integer",
    number: "a number",
    boolean: "true or false",
    null: "empty",
  };
  return (Array.isArray(t) ? t : [t]).map((x) => names[x]).join(" or ");
}

/**
 * Checks `doc.value` against `schema` (the launch spec schema by default); returns every problem
 * with its position and field path. Never throws.
 */
export function validateAgainstSchema(doc: SourceDoc, schema: Schema = LAUNCH_SPEC_SCHEMA): SpecProblem[] {
  const root = schema;
  const problems: SpecProblem[] = [];
  /** Problems with a value point at the value; unknown fields at their key. */
  const report = (path: string, message: string, at: "key" | "value" = "value"): void => {
    const where = (at === "value" ? doc.pos.get(`${path}#v`) : undefined) ?? posOf(doc, path);
    problems.push({ ...where, field: path === "" ? "(document)" : path, message });
  };
  const resolve = (s: Schema): Schema => {
    if (s.$ref === undefined) return s;
    const name = s.$ref.replace(/^#\/\$defs\//, "");
    const target = root.$defs?.[name];
    if (target === undefined) throw new Error(`schema: unknown $ref ${s.$ref}`);
    return target;
  };
  /** Checks v; returns false (after reporting unless `quiet`) if it does not match. */
  const check = (v: unknown, s0: Schema, path: string, quiet: boolean): boolean => {
    const s = resolve(s0);
    if (s.oneOf !== undefined) {
      const fits = s.oneOf.filter((alt) => {
        const r = resolve(alt);
        const t = r.type;
        return t === undefined || (Array.isArray(t) ? t : [t]).some((x) => matchesType(v, x));
      });
      if (fits.length === 0) {
        if (!quiet)
          report(path, `must be ${s.oneOf.map((a) => describe(resolve(a))).join(", or ")}, not ${typeOf(v)}`);
        return false;
      }
      return check(v, fits[0]!, path, quiet);
    }
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? s.type : [s.type];
      if (!types.some((t) => matchesType(v, t))) {
        if (!quiet) report(path, `must be ${describe({ type: s.type })}, not ${describeValue(v)}`);
        return false;
      }
    }
    if (s.enum !== undefined && !s.enum.includes(v as string | number | boolean)) {
      if (!quiet)
        report(
          path,
          `${literal(v)} is not allowed; use ${describe(s)}${typeof v === "string" ? suggest(v, s.enum.map(String)) : ""}`,
        );
      return false;
    }
    let ok = true;
    if (typeof v === "number") {
      if (s.minimum !== undefined && v < s.minimum) {
        if (!quiet) report(path, `must be at least ${s.minimum}, got ${v}`);
        ok = false;
      }
      if (s.maximum !== undefined && v > s.maximum) {
        if (!quiet) report(path, `must be at most ${s.maximum}, got ${v}`);
        ok = false;
      }
    }
    if (typeof v === "string" && s.pattern !== undefined && !new RegExp(s.pattern).test(v)) {
      if (!quiet) report(path, `${literal(v)} does not match ${s.pattern}`);
      ok = false;
    }
    if (Array.isArray(v)) {
      if (s.minItems !== undefined && v.length < s.minItems) {
        if (!quiet) report(path, `needs at least ${s.minItems} item${s.minItems === 1 ? "" : "s"}`);
        ok = false;
      }
      if (s.items !== undefined)
        v.forEach((x, i) => (ok = check(x, s.items!, childPath(path, i), quiet) && ok));
    }
    if (typeOf(v) === "object") {
      const o = v as Record<string, unknown>;
      const props = s.properties ?? {};
      for (const [k, x] of Object.entries(o)) {
        const p = props[k];
        if (p !== undefined) ok = check(x, p, childPath(path, k), quiet) && ok;
        else if (s.additionalProperties === false) {
          if (!quiet) {
            const known = Object.keys(props);
            report(
              childPath(path, k),
              `unknown field '${k}'${suggest(k, known)}; known fields: ${known.join(", ")}`,
              "key",
            );
          }
          ok = false;
        } else if (typeof s.additionalProperties === "object") {
          ok = check(x, s.additionalProperties, childPath(path, k), quiet) && ok;
        }
      }
    }
    return ok;
  };
  check(doc.value, root, "", false);
  return problems;
}

function describeValue(v: unknown): string {
  const t = typeOf(v);
  if (t === "object") return "a map";
  if (t === "array") return "a list";
  if (t === "null") return "empty";
  return `${t} ${literal(v)}`;
}

/**
 * A scalar as written in a message: strings quoted and cut at 60 characters. Never throws (a bigint,
 * or a value that contains itself, cannot go through JSON.stringify).
 */
function literal(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length <= 60 ? v : `${v.slice(0, 60)}…`);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  const t = typeOf(v);
  return t === "object" ? "a map" : t === "array" ? "a list" : t === "null" ? "empty" : String(t);
}
