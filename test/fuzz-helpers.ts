/**
 * Shared pieces of the fuzz suite (property tests next to each parser, and the corpus mutation
 * loop in test/fuzz-corpus.test.ts). Everything is seeded so a failure reproduces:
 *
 * - `MYELIN_FUZZ_SEED`: the seed of every property and of the mutation loop (default 0x5eed);
 * - `MYELIN_FUZZ_RUNS`: runs per property and mutations per corpus file (default: each test's own,
 *   small enough that the whole suite takes seconds).
 *
 * See docs/fuzzing.md.
 */
import fc from "fast-check";
import { MyelinError, type ErrorCode } from "../src/errors.js";
import type { AnyField, Field, MessageType } from "../src/msgs/schema.js";

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** The seed of this run: `MYELIN_FUZZ_SEED`, else a fixed default. */
export const FUZZ_SEED: number = envInt("MYELIN_FUZZ_SEED") ?? 0x5eed;

/** Runs for a property (or mutations per corpus file): `MYELIN_FUZZ_RUNS` if set, else `dflt`. */
export function fuzzRuns(dflt: number): number {
  const n = envInt("MYELIN_FUZZ_RUNS");
  return n !== undefined && n > 0 ? n : dflt;
}

/** fast-check parameters: the suite's seed and a bounded number of runs. */
export function fcParams<T>(dflt: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  return { seed: FUZZ_SEED, numRuns: fuzzRuns(dflt), endOnFailure: true, ...extra };
}

/** Runs a property with the suite's seed; failures name the seed and how to replay. */
export function check<Ts extends [unknown, ...unknown[]]>(
  name: string,
  dfltRuns: number,
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => void,
): void {
  const prop = fc.property(...(arbs as [fc.Arbitrary<unknown>]), predicate as (...a: unknown[]) => void);
  const out = fc.check(prop, fcParams(dfltRuns));
  if (out.failed) {
    const detail = fc.defaultReportMessage(out) ?? "";
    const err = out.errorInstance;
    const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new Error(
      `fuzz property "${name}" failed (MYELIN_FUZZ_SEED=${FUZZ_SEED}, runs ${fuzzRuns(dfltRuns)}):\n${why}\n${detail}`,
      { cause: err },
    );
  }
}

/** Most CPU time a single parse of a small input may take, in ms: far above normal, far below a hang. */
export const SLOW_MS = 2000;

function describeInput(input: unknown): string {
  if (input instanceof Uint8Array) {
    const hex = Buffer.from(input.buffer, input.byteOffset, Math.min(input.byteLength, 256)).toString("hex");
    return `${input.byteLength} bytes: ${hex}${input.byteLength > 256 ? "…" : ""}`;
  }
  if (typeof input === "string")
    return `text ${JSON.stringify(input.length > 512 ? input.slice(0, 512) + "…" : input)}`;
  try {
    const s = JSON.stringify(input, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
    return s === undefined ? String(input) : s.length > 512 ? s.slice(0, 512) + "…" : s;
  } catch {
    return Object.prototype.toString.call(input);
  }
}

/** What a parse gave: a value, or a coded MyelinError. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: MyelinError };

/**
 * Runs `parse`; returns its value, or the MyelinError it threw if its code is one of `codes`.
 * Anything else — another error class (TypeError, RangeError…), another code, a parse slower than
 * {@link SLOW_MS} — fails with the input and the seed.
 */
export function parseOrCoded<T>(
  what: string,
  codes: readonly ErrorCode[],
  input: unknown,
  parse: () => T,
): Outcome<T> {
  // CPU time, not the wall clock: time the machine spent on other processes does not count.
  const t0 = process.cpuUsage();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: parse() };
  } catch (e) {
    if (!(e instanceof MyelinError) || !codes.includes(e.code)) {
      const err = e as Error;
      throw new Error(
        `${what} threw ${err?.constructor?.name ?? typeof e}${e instanceof MyelinError ? ` ${e.code}` : ""} ` +
          `(allowed: MyelinError ${codes.join("/")}): ${String(err?.message ?? e)}\n` +
          `  input: ${describeInput(input)}\n  MYELIN_FUZZ_SEED=${FUZZ_SEED}`,
        { cause: e },
      );
    }
    out = { ok: false, error: e };
  }
  const used = process.cpuUsage(t0);
  const ms = (used.user + used.system) / 1000;
  if (ms > SLOW_MS) {
    throw new Error(
      `${what} took ${ms.toFixed(0)} ms of CPU on a small input (limit ${SLOW_MS} ms)\n` +
        `  input: ${describeInput(input)}\n  MYELIN_FUZZ_SEED=${FUZZ_SEED}`,
    );
  }
  return out;
}

/** A small, fast, seeded PRNG (mulberry32) for the mutation loop. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** Byte values that often sit on a boundary of a length or a tag. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xdd, 0xdf, 0xdb, 0xc6, 0xc9];
/** Multi-byte values that often break length fields: 0, 1, -1, 2^31, 2^32-1 (both byte orders). */
const INTERESTING_WORDS = [
  [0xff, 0xff, 0xff, 0xff],
  [0x7f, 0xff, 0xff, 0xff],
  [0x00, 0x00, 0x00, 0x80],
  [0x80, 0x00, 0x00, 0x00],
  [0x00, 0x00, 0x00, 0x00],
  [0x01, 0x00, 0x00, 0x00],
];

/** The mutations the corpus loop applies, by name (the name goes in failure messages). */
export const MUTATIONS = [
  "flip-bit",
  "set-byte",
  "interesting-byte",
  "interesting-word",
  "insert",
  "delete",
  "duplicate",
  "truncate",
  "splice",
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/**
 * One mutation of `input` (never modified): a bit flip, a random or boundary byte, a boundary
 * 32-bit word (a length claiming 4 GiB), bytes inserted, deleted or duplicated, a truncation, or a
 * splice with another input of the corpus.
 */
export function mutate(
  rng: Rng,
  input: Uint8Array,
  others: readonly Uint8Array[],
): { bytes: Uint8Array; how: string } {
  const b = Uint8Array.from(input);
  const n = b.length;
  const at = n === 0 ? 0 : rng.int(n);
  const m: Mutation = n === 0 ? "insert" : rng.pick(MUTATIONS);
  switch (m) {
    case "flip-bit": {
      const bit = rng.int(8);
      b[at] = b[at]! ^ (1 << bit);
      return { bytes: b, how: `${m} ${bit} at ${at}` };
    }
    case "set-byte": {
      const v = rng.int(256);
      b[at] = v;
      return { bytes: b, how: `${m} 0x${v.toString(16)} at ${at}` };
    }
    case "interesting-byte": {
      const v = rng.pick(INTERESTING);
      b[at] = v;
      return { bytes: b, how: `${m} 0x${v.toString(16)} at ${at}` };
    }
    case "interesting-word": {
      const w = rng.pick(INTERESTING_WORDS);
      for (let i = 0; i < 4 && at + i < n; i++) b[at + i] = w[i]!;
      return { bytes: b, how: `${m} ${Buffer.from(w).toString("hex")} at ${at}` };
    }
    case "insert": {
      const len = 1 + rng.int(8);
      const ins = new Uint8Array(len);
      for (let i = 0; i < len; i++) ins[i] = rng.int(4) === 0 ? rng.pick(INTERESTING) : rng.int(256);
      const out = new Uint8Array(n + len);
      out.set(b.subarray(0, at), 0);
      out.set(ins, at);
      out.set(b.subarray(at), at + len);
      return { bytes: out, how: `${m} ${Buffer.from(ins).toString("hex")} at ${at}` };
    }
    case "delete": {
      const len = 1 + rng.int(Math.min(16, n - at));
      const out = new Uint8Array(n - len);
      out.set(b.subarray(0, at), 0);
      out.set(b.subarray(at + len), at);
      return { bytes: out, how: `${m} ${len} at ${at}` };
    }
    case "duplicate": {
      const len = 1 + rng.int(Math.min(32, n - at));
      const out = new Uint8Array(n + len);
      out.set(b.subarray(0, at + len), 0);
      out.set(b.subarray(at, at + len), at + len);
      out.set(b.subarray(at + len), at + 2 * len);
      return { bytes: out, how: `${m} ${len} at ${at}` };
    }
    case "truncate":
      return { bytes: b.subarray(0, at), how: `${m} to ${at}` };
    case "splice": {
      const other = others.length > 0 ? rng.pick(others) : input;
      const from = other.length === 0 ? 0 : rng.int(other.length);
      const out = new Uint8Array(at + other.length - from);
      out.set(b.subarray(0, at), 0);
      out.set(other.subarray(from), at);
      return { bytes: out, how: `${m} at ${at} with another input from ${from}` };
    }
  }
}

/** Arbitrary byte strings, from empty to `max` bytes, as plain Uint8Arrays. */
export function bytes(max = 256): fc.Arbitrary<Uint8Array> {
  return fc.uint8Array({ maxLength: max });
}

/**
 * Arbitrary JSON-like and YAML-like values for config parsers: plain objects (some keys from
 * `keys`, to get past "unknown field" checks), arrays, strings, numbers (NaN, ±Infinity, -0),
 * bigints, booleans, null, undefined.
 */
export function configValue(keys: readonly string[], depth = 4): fc.Arbitrary<unknown> {
  const key = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("a", ...keys) },
    { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "") },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  );
  const leaf = fc.oneof(
    fc.string({ maxLength: 16 }),
    fc.constantFrom(
      "/a",
      "/a/+",
      "/a/#",
      "a/+",
      "a/#",
      "a.*",
      "a.>",
      "std_msgs/String",
      "mqtt://h:1883",
      "#",
      "+",
    ),
    fc.integer({ min: -5, max: 70000 }),
    fc.double(),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
  );
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { depthSize: "small", maxDepth: depth },
      { weight: 3, arbitrary: leaf },
      { weight: 2, arbitrary: fc.dictionary(key, tie("tree"), { maxKeys: 5, noNullPrototype: true }) },
      { weight: 1, arbitrary: fc.array(tie("tree"), { maxLength: 4 }) },
    ),
  }));
  return tree;
}

/** A value that contains itself, as YAML aliases (`&a [*a]`) produce. */
export function cyclic(): unknown[] {
  const a: unknown[] = [];
  a.push(a);
  return a;
}

/** -0 becomes 0: msgpack writes -0 as the integer 0, which is not what these tests are about. */
const noNegZero = (x: number): number => (x === 0 ? 0 : x);

function fieldArb(field: Field<unknown>, depth: number): fc.Arbitrary<unknown> {
  const f = field as AnyField;
  const int = (min: number, max: number): fc.Arbitrary<unknown> => fc.integer({ min, max });
  switch (f.kind) {
    case "bool":
      return fc.boolean();
    case "u8":
      return int(0, 0xff);
    case "u16":
      return int(0, 0xffff);
    case "u32":
      return int(0, 0xffffffff);
    case "i8":
      return int(-0x80, 0x7f);
    case "i16":
      return int(-0x8000, 0x7fff);
    case "i32":
      return int(-0x80000000, 0x7fffffff);
    case "f32":
      return fc.float().map(noNegZero);
    case "f64":
      return fc.double().map(noNegZero);
    case "u64":
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case "i64":
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    case "string":
      return fc.string({ unit: "grapheme", maxLength: 12 });
    case "bytes":
      return fc.uint8Array({ maxLength: 24 });
    case "time":
    case "duration":
      return fc.record(
        { sec: int(-0x80000000, 0x7fffffff), nanosec: int(0, 999_999_999) },
        { noNullPrototype: true },
      );
    case "enum":
      return fc.constantFrom(...Object.values(f.values));
    case "msg":
      return messageArb(f.type, depth + 1);
    case "optional":
      return fieldArb(f.of, depth);
    case "array": {
      const el = fieldArb(f.of, depth + 1);
      if (f.length !== undefined) return fc.array(el, { minLength: f.length, maxLength: f.length });
      return fc.array(el, { maxLength: Math.min(f.maxLength ?? 3, depth > 2 ? 1 : 3) });
    }
  }
}

/** Valid messages of `type`: every field kind in range, optional fields present or not. */
export function messageArb<T>(type: MessageType<T>, depth = 0): fc.Arbitrary<T> {
  const arbs: Record<string, fc.Arbitrary<unknown>> = {};
  const required: string[] = [];
  for (const [k, f] of Object.entries(type.fields)) {
    arbs[k] = fieldArb(f, depth);
    if (f.kind !== "optional") required.push(k);
  }
  return fc.record(arbs, { requiredKeys: required, noNullPrototype: true }) as unknown as fc.Arbitrary<T>;
}
