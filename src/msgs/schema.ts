/**
 * The schema builder: define a message type once with `defineMessage("pkg/Name", { field: t.f64(), ... })`
 * and get its static TypeScript type, its JSON Schema, a fast validator and a factory of default values.
 *
 * Validators are compiled once per type into closures. On the success path they allocate nothing; only
 * when a value is invalid does a second, slower pass walk it again to name every bad field (up to
 * {@link MAX_VALIDATION_ERRORS}).
 *
 * This module does no I/O and runs in browsers as well as in Node.
 */
import { MyelinError, ValidationError } from "../errors.js";
import { processShared } from "../process-shared.js";

// ---------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------

/** A point in time, as ROS `builtin_interfaces/Time`: whole seconds since the Unix epoch plus nanoseconds. */
export interface Time {
  /** Seconds since 1970-01-01T00:00:00Z, a 32-bit signed integer. */
  sec: number;
  /** Nanoseconds within the second, an integer 0..999999999. */
  nanosec: number;
}

/** A span of time, as ROS `builtin_interfaces/Duration`: `sec` may be negative, `nanosec` is 0..999999999. */
export interface Duration {
  /** Whole seconds, a 32-bit signed integer. */
  sec: number;
  /** Nanoseconds added to `sec`, an integer 0..999999999. */
  nanosec: number;
}

/** Kinds of fields that hold a single value. */
export type ScalarKind =
  | "bool"
  | "u8"
  | "u16"
  | "u32"
  | "i8"
  | "i16"
  | "i32"
  | "f32"
  | "f64"
  | "u64"
  | "i64"
  | "string"
  | "bytes"
  | "time"
  | "duration";

/** Every kind of field; see docs/messages.md for the table of kinds, TypeScript types and JSON forms. */
export type FieldKind = ScalarKind | "array" | "msg" | "enum" | "optional";

declare const fieldValue: unique symbol;

/**
 * A field of a message, made by one of the {@link t} builders. `T` is the TypeScript type of the field's
 * value; it exists only at compile time (a phantom). Narrow on `kind` with {@link AnyField} to read the
 * details of a field.
 */
export interface Field<T> {
  /** What kind of field this is. */
  readonly kind: FieldKind;
  /** Compile-time only: carries `T`. Never present at runtime. */
  readonly [fieldValue]?: () => T;
}

/** A field holding one number, bigint, boolean, string, byte string, time or duration. */
export interface ScalarField<T> extends Field<T> {
  readonly kind: ScalarKind;
  /** The value `create()` uses when none is given; absent means the kind's zero value. */
  readonly default?: T;
}

/** A list of values of one field kind, of fixed `length`, of at most `maxLength`, or unbounded. */
export interface ArrayField<T> extends Field<T[]> {
  readonly kind: "array";
  /** The kind of every element. */
  readonly of: Field<T>;
  /** If set, the array must have exactly this many elements. */
  readonly length?: number;
  /** If set, the array may have at most this many elements. */
  readonly maxLength?: number;
}

/** A nested message. */
export interface MsgField<T> extends Field<T> {
  readonly kind: "msg";
  /** The nested message type. */
  readonly type: MessageType<T>;
}

/** A number that must be one of a fixed set of named values. */
export interface EnumField<E extends Record<string, number>> extends Field<E[keyof E]> {
  readonly kind: "enum";
  /** The allowed values by name, in declaration order; the first is the default. */
  readonly values: Readonly<E>;
}

/** A field that may be absent; in the inferred message type its key is optional (`key?: T`). */
export interface OptionalField<T> extends Field<T | undefined> {
  readonly kind: "optional";
  /** The field's kind when present. */
  readonly of: Field<T>;
  /** Marks the field optional at the type level. */
  readonly optional: true;
}

/** Every field shape, discriminated by `kind`: `switch (f.kind)` on `field as AnyField`. */
export type AnyField =
  | ScalarField<unknown>
  | ArrayField<unknown>
  | MsgField<unknown>
  | EnumField<Record<string, number>>
  | OptionalField<unknown>;

/** Options of scalar builders such as `t.f64({ default: 1 })`. */
export interface ScalarOptions<T> {
  /** The value `create()` puts in this field when none is given. Must itself be valid for the field. */
  default?: T;
}

/** Options of `t.array`: at most one of `length` (fixed size) and `maxLength` (bounded size). */
export interface ArrayOptions {
  /** Exact number of elements; `create()` fills the array with that many default elements. */
  length?: number;
  /** Largest number of elements allowed. */
  maxLength?: number;
}

/** A JSON Schema (draft 2020-12) document or subschema, as a read-only JSON object. */
export interface JsonSchema {
  readonly [keyword: string]: unknown;
}

/** The result of {@link MessageType.validate}: `ok`, or the list of problems (up to ten). */
export type ValidationResult =
  { readonly ok: true } | { readonly ok: false; readonly errors: readonly ValidationIssue[] };

/** One problem found by validation. */
export interface ValidationIssue {
  /** Where: a field path such as `detections[2].bbox.center.x`; `""` for the value itself. */
  readonly path: string;
  /** What is wrong, e.g. `expected f64, got string "a"`. */
  readonly reason: string;
}

/** `T` with every property optional, recursively; arrays of messages take partial elements. */
export type DeepPartial<T> = T extends Uint8Array | bigint | number | string | boolean | undefined | null
  ? T
  : T extends readonly (infer E)[]
    ? DeepPartial<E>[]
    : T extends object
      ? { [K in keyof T]?: DeepPartial<T[K]> }
      : T;

/** A message type: its name, fields, JSON Schema, validator and default-value factory. */
export interface MessageType<T> {
  /** Tells message types from service types at runtime. */
  readonly kind: "message";
  /** ROS-style name `pkg/Name`, e.g. `sensor_msgs/Image`. */
  readonly name: string;
  /** The fields, in declaration order. */
  readonly fields: Readonly<Record<string, Field<unknown>>>;
  /**
   * The JSON Schema (draft 2020-12) of the message's JSON form (see `toJson` in the codec): an object
   * schema whose `title` is the type name. Bytes are base64 strings, u64/i64 are decimal strings (integers
   * accepted on input), f32/f64 are numbers or `"NaN"`, `"Infinity"`, `"-Infinity"`. Built on first use.
   */
  readonly jsonSchema: JsonSchema;
  /** True if the type contains a `bytes` field anywhere, nested messages and arrays included. */
  readonly blobFields: boolean;
  /** Checks `value` against the type. Never throws. Allocates nothing when the value is valid. */
  validate(value: unknown): ValidationResult;
  /**
   * Throws a {@link ValidationError} (code `ERR_VALIDATION`) unless `value` is a valid message. The error
   * message names the type, each bad field's path and what is wrong; `where` (a topic or service name) is
   * put in front.
   */
  assert(value: unknown, where?: string): asserts value is T;
  /**
   * Makes a complete message: every field at its default (0, `""`, `false`, empty `Uint8Array`,
   * `{sec:0,nanosec:0}`, `[]` or a fixed-length array of defaults, nested defaults, the first enum value,
   * optional fields absent) overlaid with `init`. Elements of arrays in `init` are completed the same way.
   * Does not validate and does not copy `Uint8Array`s from `init`; keys of `init` that are not fields are
   * kept, so that validation reports them.
   */
  create(init?: DeepPartial<T>): T;
}

/** The TypeScript type of a field's value. */
export type FieldValue<F> = F extends Field<infer T> ? T : never;

type OptionalKeys<F> = { [K in keyof F]: F[K] extends OptionalField<any> ? K : never }[keyof F];
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The TypeScript type of a message with fields `F`: optional fields become optional keys. */
export type InferMessage<F extends Record<string, Field<any>>> = Simplify<
  { -readonly [K in Exclude<keyof F, OptionalKeys<F>>]: FieldValue<F[K]> } & {
    -readonly [K in OptionalKeys<F>]?: Exclude<FieldValue<F[K]>, undefined>;
  }
>;

/** The message type carried by a {@link MessageType}: `MessageOf<typeof geometry_msgs.Twist>`. */
export type MessageOf<M> = M extends MessageType<infer T> ? T : never;

/** A service type: a name and its request and response message types. */
export interface ServiceType<Req, Res> {
  /** Tells service types from message types at runtime. */
  readonly kind: "service";
  /** ROS-style name `pkg/Name`, e.g. `std_srvs/Trigger`. */
  readonly name: string;
  /** The request message type, named `<name>_Request`. */
  readonly request: MessageType<Req>;
  /** The response message type, named `<name>_Response`. */
  readonly response: MessageType<Res>;
}

/** The request message type of a service type. */
export type RequestOf<S> = S extends ServiceType<infer Q, any> ? Q : never;
/** The response message type of a service type. */
export type ResponseOf<S> = S extends ServiceType<any, infer R> ? R : never;

/** At most this many problems are reported by one validation. */
export const MAX_VALIDATION_ERRORS = 10;

// ---------------------------------------------------------------------------------------------------------
// Compiled operations
// ---------------------------------------------------------------------------------------------------------

/** What a field or a message compiles to. */
interface Ops {
  /** Fast check; no allocation. */
  readonly is: (v: unknown) => boolean;
  /** Slow path: push what is wrong with `v` (known invalid) to `errs`. */
  readonly explain: (v: unknown, path: string, errs: ValidationIssue[]) => void;
  /** Default value (init undefined) or init completed with defaults. */
  readonly make: (init: unknown) => unknown;
  /** Short description used in reasons: `f64`, `u8`, `geometry_msgs/Twist`, `f64[9]`. */
  readonly desc: string;
  /** Structural signature, used to compare two definitions of one name. */
  readonly sig: string;
  /** JSON Schema of the field's JSON form. */
  readonly schema: () => JsonSchema;
  /** True if a bytes field is reachable. */
  readonly blobs: boolean;
  /**
   * Code generation: a JS boolean expression equivalent to `is(x)` for the variable named `x`. Absent:
   * the generated code calls `is`.
   */
  readonly gen?: (x: string, ctx: GenCtx) => string;
}

/** Lets field generators reference outside values and declare helper functions. */
interface GenCtx {
  /** An expression that evaluates to `v` inside the generated code. */
  ref(v: unknown): string;
  /** Declares a helper function whose source is `make(name)`; returns its name. */
  helper(make: (name: string) => string): string;
}

/** Expression testing variable `x` with `ops`: its generator, or a call of its closure. */
function genOf(ops: Ops, x: string, ctx: GenCtx): string {
  return ops.gen !== undefined ? ops.gen(x, ctx) : `${ctx.ref(ops.is)}(${x})`;
}

let codegen = true;

/**
 * @internal Turns code generation of validators on or off for types defined afterwards (tests compare
 * the generated validators with the closure ones). Code generation is also skipped, silently, where
 * `new Function` is forbidden (a Content-Security-Policy without `unsafe-eval`).
 */
export function _setValidatorCodegen(enabled: boolean): void {
  codegen = enabled;
}

/**
 * The compiled operations of every field and message type, by the object `t.*()` or
 * `defineMessage` returned. One pair per process (src/process-shared.ts), so that a type defined
 * with one copy of Myelin is a type to every other copy in the process (the bundle and the CLI's
 * modules): validation, nesting with `t.msg`, signatures and the codecs all go through these.
 */
const { fieldOps, typeOps } = processShared("msgs.schema.ops", () => ({
  fieldOps: new WeakMap<object, Ops>(),
  typeOps: new WeakMap<object, Ops>(),
}));

function opsOf(f: Field<unknown>): Ops {
  const ops = fieldOps.get(f);
  if (ops === undefined) throw new MyelinError("ERR_INVALID_ARGUMENT", "not a field made by t.*()");
  return ops;
}

function push(errs: ValidationIssue[], path: string, reason: string): void {
  if (errs.length < MAX_VALIDATION_ERRORS) errs.push({ path, reason });
}

/** Describes a value for error messages without dumping large or untrusted content. */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  switch (typeof v) {
    case "undefined":
      return "undefined";
    case "number":
    case "bigint":
    case "boolean":
      return `${typeof v} ${String(v)}`;
    case "string":
      return v.length <= 32 ? `string ${JSON.stringify(v)}` : `string (${v.length} chars)`;
    case "object": {
      if (Array.isArray(v)) return `array(${v.length})`;
      if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.byteLength} bytes)`;
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto === null || proto === Object.prototype) return "object";
      const ctor = (v as { constructor?: { name?: unknown } }).constructor;
      return typeof ctor?.name === "string" && ctor.name !== "" ? ctor.name : "object";
    }
    default:
      return typeof v;
  }
}

function expected(desc: string, v: unknown, hint = ""): string {
  return `expected ${desc}, got ${describeValue(v)}${hint}`;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Appends a key to a path: `a.b`, or `a["odd key"]` for keys that are not identifiers. */
function joinPath(path: string, key: string): string {
  if (IDENT.test(key)) return path === "" ? key : `${path}.${key}`;
  const shown = key.length > 40 ? `${key.slice(0, 40)}…` : key;
  return `${path}[${JSON.stringify(shown)}]`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function freezeDeep<T>(o: T): T {
  if (typeof o === "object" && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) freezeDeep(v);
  }
  return o;
}

// ---- integers ----

interface IntSpec {
  readonly min: number;
  readonly max: number;
  readonly is: (v: unknown) => boolean;
}

/** The integer field kinds that fit in a JavaScript number exactly (64-bit ones are bigints). */
export type SmallIntKind = "u8" | "u16" | "u32" | "i8" | "i16" | "i32";

const INT_SPECS: Record<SmallIntKind, IntSpec> = {
  u8: { min: 0, max: 0xff, is: (v) => typeof v === "number" && (v & 0xff) === v },
  u16: { min: 0, max: 0xffff, is: (v) => typeof v === "number" && (v & 0xffff) === v },
  u32: { min: 0, max: 0xffffffff, is: (v) => typeof v === "number" && v >>> 0 === v },
  i8: { min: -0x80, max: 0x7f, is: (v) => typeof v === "number" && (v << 24) >> 24 === v },
  i16: { min: -0x8000, max: 0x7fff, is: (v) => typeof v === "number" && (v << 16) >> 16 === v },
  i32: { min: -0x80000000, max: 0x7fffffff, is: (v) => typeof v === "number" && (v | 0) === v },
};

/** The range of each {@link SmallIntKind}, inclusive: what validation, decoders and encoders check. */
export const INT_RANGES: Readonly<Record<SmallIntKind, { readonly min: number; readonly max: number }>> =
  INT_SPECS;

function intHint(v: unknown, min: number, max: number): string {
  if (typeof v !== "number") return "";
  if (!Number.isInteger(v)) return " (not an integer)";
  return ` (out of range ${min}..${max})`;
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function intOps(kind: keyof typeof INT_SPECS, dflt: number | undefined): Ops {
  const { min, max, is } = INT_SPECS[kind];
  const d = dflt ?? 0;
  const mask: Record<typeof kind, string> = {
    u8: "(X & 255) === X",
    u16: "(X & 65535) === X",
    u32: "X >>> 0 === X",
    i8: "(X << 24) >> 24 === X",
    i16: "(X << 16) >> 16 === X",
    i32: "(X | 0) === X",
  };
  return {
    is,
    gen: (x) => `(typeof ${x} === "number" && ${mask[kind].replaceAll("X", x)})`,
    explain: (v, path, errs) => push(errs, path, expected(kind, v, intHint(v, min, max))),
    make: (init) => (init === undefined ? d : init),
    desc: kind,
    sig: dflt === undefined ? kind : `${kind}=${dflt}`,
    schema: () => ({
      type: "integer",
      minimum: min,
      maximum: max,
      ...(dflt === undefined ? {} : { default: dflt }),
    }),
    blobs: false,
  };
}

function bigOps(kind: "u64" | "i64", dflt: bigint | undefined): Ops {
  const min = kind === "u64" ? 0n : I64_MIN;
  const max = kind === "u64" ? U64_MAX : I64_MAX;
  const d = dflt ?? 0n;
  return {
    is: (v) => typeof v === "bigint" && v >= min && v <= max,
    gen: (x) => `(typeof ${x} === "bigint" && ${x} >= ${min}n && ${x} <= ${max}n)`,
    explain: (v, path, errs) =>
      push(
        errs,
        path,
        expected(`${kind} (bigint)`, v, typeof v === "bigint" ? ` (out of range ${min}..${max})` : ""),
      ),
    make: (init) => (init === undefined ? d : init),
    desc: `${kind} (bigint)`,
    sig: dflt === undefined ? kind : `${kind}=${dflt}`,
    schema: () => ({
      anyOf: [
        { type: "string", pattern: kind === "u64" ? "^[0-9]+$" : "^-?[0-9]+$" },
        { type: "integer", minimum: Number(min), maximum: Number(max) },
      ],
      ...(dflt === undefined ? {} : { default: String(dflt) }),
    }),
    blobs: false,
  };
}

function simpleOps(
  kind: "bool" | "f32" | "f64" | "string",
  jsType: "boolean" | "number" | "string",
  is: (v: unknown) => boolean,
  zero: unknown,
  dflt: unknown,
  schema: () => JsonSchema,
): Ops {
  const d = dflt === undefined ? zero : dflt;
  return {
    is,
    gen: (x) => `typeof ${x} === "${jsType}"`,
    explain: (v, path, errs) => push(errs, path, expected(kind, v)),
    make: (init) => (init === undefined ? d : init),
    desc: kind,
    sig: dflt === undefined ? kind : `${kind}=${JSON.stringify(dflt)}`,
    schema: () => ({ ...schema(), ...(dflt === undefined ? {} : { default: dflt }) }),
    blobs: false,
  };
}

const FLOAT_SCHEMA: JsonSchema = { anyOf: [{ type: "number" }, { enum: ["NaN", "Infinity", "-Infinity"] }] };

const isBytes = (v: unknown): boolean => v instanceof Uint8Array;
const bytesOps: Ops = {
  is: isBytes,
  gen: (x, ctx) => `${x} instanceof ${ctx.ref(Uint8Array)}`,
  explain: (v, path, errs) => push(errs, path, expected("bytes (Uint8Array)", v)),
  make: (init) => (init === undefined ? new Uint8Array(0) : init),
  desc: "bytes",
  sig: "bytes",
  schema: () => ({ type: "string", contentEncoding: "base64" }),
  blobs: true,
};

const NANOS_MAX = 999_999_999;

function isStamp(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  const s = v.sec;
  const n = v.nanosec;
  if (typeof s !== "number" || (s | 0) !== s || typeof n !== "number" || n >>> 0 !== n || n > NANOS_MAX) {
    return false;
  }
  let count = 0;
  for (const _k in v) count++;
  return count === 2;
}

function stampOps(kind: "time" | "duration"): Ops {
  const title = kind === "time" ? "builtin_interfaces/Time" : "builtin_interfaces/Duration";
  return {
    is: isStamp,
    explain(v, path, errs) {
      if (!isPlainObject(v)) {
        push(errs, path, expected(`${kind} ({sec, nanosec})`, v));
        return;
      }
      const s = v.sec;
      const n = v.nanosec;
      if (s === undefined) push(errs, joinPath(path, "sec"), "missing required field (i32)");
      else if (!INT_SPECS.i32.is(s)) {
        push(errs, joinPath(path, "sec"), expected("i32 seconds", s, intHint(s, -0x80000000, 0x7fffffff)));
      }
      if (n === undefined) push(errs, joinPath(path, "nanosec"), "missing required field (u32)");
      else if (typeof n !== "number" || n >>> 0 !== n || n > NANOS_MAX) {
        push(errs, joinPath(path, "nanosec"), expected("nanoseconds", n, intHint(n, 0, NANOS_MAX)));
      }
      for (const k in v) {
        if (k !== "sec" && k !== "nanosec") push(errs, joinPath(path, k), `unknown field '${k}' in ${title}`);
      }
    },
    make(init) {
      if (init === undefined) return { sec: 0, nanosec: 0 };
      if (!isPlainObject(init)) return init;
      return { ...init, sec: init.sec ?? 0, nanosec: init.nanosec ?? 0 };
    },
    desc: kind,
    sig: kind,
    schema: () => ({
      title,
      type: "object",
      properties: {
        sec: { type: "integer", minimum: -0x80000000, maximum: 0x7fffffff },
        nanosec: { type: "integer", minimum: 0, maximum: NANOS_MAX },
      },
      required: ["sec", "nanosec"],
      additionalProperties: false,
    }),
    blobs: false,
  };
}

function arrayOps(el: Ops, length: number | undefined, maxLength: number | undefined): Ops {
  const desc =
    length !== undefined
      ? `${el.desc}[${length}]`
      : maxLength !== undefined
        ? `${el.desc}[<=${maxLength}]`
        : `${el.desc}[]`;
  const elIs = el.is;
  const lengthCheck =
    length !== undefined ? `n !== ${length}` : maxLength !== undefined ? `n > ${maxLength}` : "false";
  return {
    gen: (x, ctx) => {
      const name = ctx.helper(
        (fn) =>
          `function ${fn}(a) { if (!Array.isArray(a)) return false; const n = a.length; ` +
          `if (${lengthCheck}) return false; for (let i = 0; i < n; i++) { const e = a[i]; ` +
          `if (!(${genOf(el, "e", ctx)})) return false; } return true; }`,
      );
      return `${name}(${x})`;
    },
    is(v) {
      if (!Array.isArray(v)) return false;
      const n = v.length;
      if (length !== undefined ? n !== length : maxLength !== undefined && n > maxLength) return false;
      for (let i = 0; i < n; i++) if (!elIs(v[i])) return false;
      return true;
    },
    explain(v, path, errs) {
      if (!Array.isArray(v)) {
        push(errs, path, expected(`array of ${el.desc}`, v));
        return;
      }
      const n = v.length;
      if (length !== undefined && n !== length) {
        push(errs, path, `expected exactly ${length} elements, got ${n}`);
        return;
      }
      if (maxLength !== undefined && n > maxLength) {
        push(errs, path, `expected at most ${maxLength} elements, got ${n}`);
        return;
      }
      for (let i = 0; i < n && errs.length < MAX_VALIDATION_ERRORS; i++) {
        if (!elIs(v[i])) el.explain(v[i], `${path}[${i}]`, errs);
      }
    },
    make(init) {
      if (init === undefined) {
        if (length === undefined) return [];
        const out: unknown[] = new Array<unknown>(length);
        for (let i = 0; i < length; i++) out[i] = el.make(undefined);
        return out;
      }
      if (!Array.isArray(init)) return init;
      return init.map((x) => el.make(x));
    },
    desc,
    sig: `${el.sig}[${length !== undefined ? length : maxLength !== undefined ? `<=${maxLength}` : ""}]`,
    schema: () => ({
      type: "array",
      items: el.schema(),
      ...(length !== undefined ? { minItems: length, maxItems: length } : {}),
      ...(maxLength !== undefined ? { maxItems: maxLength } : {}),
    }),
    blobs: el.blobs,
  };
}

function enumOps(values: Record<string, number>): Ops {
  const entries = Object.entries(values);
  const nums = entries.map(([, n]) => n);
  const set = new Set(nums);
  const first = nums[0];
  const listing = entries.map(([k, n]) => `${k}=${n}`).join(", ");
  return {
    is: (v) => typeof v === "number" && set.has(v),
    gen: (x) => `(${[...set].map((n) => `${x} === ${String(n)}`).join(" || ")})`,
    explain: (v, path, errs) => push(errs, path, expected(`one of ${listing}`, v)),
    make: (init) => (init === undefined ? first : init),
    desc: `enum {${listing}}`,
    sig: `enum{${listing}}`,
    schema: () => ({ type: "integer", oneOf: entries.map(([k, n]) => ({ const: n, title: k })) }),
    blobs: false,
  };
}

/**
 * Value of `make` for an optional field that stays absent. One per process, like the ops: a
 * message of one copy may hold an optional field made by another.
 */
const ABSENT: symbol = processShared("msgs.schema.absent", () => Symbol("absent"));

function optionalOps(inner: Ops): Ops {
  return {
    is: (v) => v === undefined || inner.is(v),
    gen: (x, ctx) => `(${x} === undefined || ${genOf(inner, x, ctx)})`,
    explain: (v, path, errs) => inner.explain(v, path, errs),
    make: (init) => (init === undefined ? ABSENT : inner.make(init)),
    desc: inner.desc,
    sig: `${inner.sig}?`,
    schema: () => inner.schema(),
    blobs: inner.blobs,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Field builders
// ---------------------------------------------------------------------------------------------------------

function brand<F extends Field<any>>(field: F, ops: Ops): F {
  Object.freeze(field);
  fieldOps.set(field, ops);
  return field;
}

function scalar<T>(kind: ScalarKind, ops: Ops, opts: ScalarOptions<T> | undefined): ScalarField<T> {
  if (opts !== undefined && (typeof opts !== "object" || opts === null)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `t.${kind}() options must be an object, got ${describeValue(opts)}`,
    );
  }
  const field: { kind: ScalarKind; default?: T } = { kind };
  if (opts?.default !== undefined) {
    if (!ops.is(opts.default)) {
      const errs: ValidationIssue[] = [];
      ops.explain(opts.default, "", errs);
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `t.${kind}({ default }) is not a valid ${kind}: ${errs[0]?.reason ?? "invalid"}`,
      );
    }
    field.default = opts.default;
  }
  return brand(field as ScalarField<T>, ops);
}

function intField(kind: keyof typeof INT_SPECS, opts?: ScalarOptions<number>): ScalarField<number> {
  // validate the default against a default-less ops first, then build the real ops
  const d = opts?.default;
  if (d !== undefined && !INT_SPECS[kind].is(d)) {
    const { min, max } = INT_SPECS[kind];
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `t.${kind}({ default }): ${expected(kind, d, intHint(d, min, max))}`,
    );
  }
  return scalar(kind, intOps(kind, d), opts);
}

function bigField(kind: "u64" | "i64", opts?: ScalarOptions<bigint>): ScalarField<bigint> {
  return scalar(kind, bigOps(kind, opts?.default), opts);
}

const isNumber = (v: unknown): boolean => typeof v === "number";

function floatField(kind: "f32" | "f64", opts?: ScalarOptions<number>): ScalarField<number> {
  return scalar(
    kind,
    simpleOps(kind, "number", isNumber, 0, opts?.default, () => FLOAT_SCHEMA),
    opts,
  );
}

function checkLength(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `t.array(): ${name} must be an integer >= 0, got ${describeValue(v)}`,
    );
  }
  return v;
}

function requireField(f: unknown, where: string): Field<unknown> {
  if (typeof f !== "object" || f === null || !fieldOps.has(f)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where} must be a field made by t.*() (e.g. t.f64()), got ${describeValue(f)}`,
    );
  }
  return f as Field<unknown>;
}

/**
 * Field builders. Each returns a {@link Field} that carries the static TypeScript type of its value.
 *
 * | builder | TS type | notes |
 * | --- | --- | --- |
 * | `t.bool()` | `boolean` | |
 * | `t.u8() t.u16() t.u32() t.i8() t.i16() t.i32()` | `number` | integers, range-checked |
 * | `t.f32() t.f64()` | `number` | any number, NaN and ±Infinity included |
 * | `t.u64() t.i64()` | `bigint` | must be a bigint, range-checked |
 * | `t.string()` | `string` | |
 * | `t.bytes()` | `Uint8Array` | `Buffer` accepted; never copied by the msgpack codec |
 * | `t.time() t.duration()` | `{ sec, nanosec }` | |
 * | `t.array(f, { length?, maxLength? })` | `T[]` | |
 * | `t.msg(Type)` | the nested message | |
 * | `t.enum({ A: 0, B: 1 })` | `0 \| 1` | the first value is the default |
 * | `t.optional(f)` | `key?: T` | only directly on a message field |
 *
 * Scalar builders take `{ default }`, the value `create()` uses (e.g. `t.f64({ default: 1 })`).
 * Builders throw `MyelinError` `ERR_INVALID_ARGUMENT` on bad arguments.
 */
export const t = Object.freeze({
  /** A boolean. */
  bool: (opts?: ScalarOptions<boolean>): ScalarField<boolean> =>
    scalar(
      "bool",
      simpleOps(
        "bool",
        "boolean",
        (v) => typeof v === "boolean",
        false,
        opts?.default,
        () => ({ type: "boolean" }),
      ),
      opts,
    ),
  /** An unsigned 8-bit integer, 0..255. */
  u8: (opts?: ScalarOptions<number>): ScalarField<number> => intField("u8", opts),
  /** An unsigned 16-bit integer, 0..65535. */
  u16: (opts?: ScalarOptions<number>): ScalarField<number> => intField("u16", opts),
  /** An unsigned 32-bit integer, 0..4294967295. */
  u32: (opts?: ScalarOptions<number>): ScalarField<number> => intField("u32", opts),
  /** A signed 8-bit integer, -128..127. */
  i8: (opts?: ScalarOptions<number>): ScalarField<number> => intField("i8", opts),
  /** A signed 16-bit integer, -32768..32767. */
  i16: (opts?: ScalarOptions<number>): ScalarField<number> => intField("i16", opts),
  /** A signed 32-bit integer, -2147483648..2147483647. */
  i32: (opts?: ScalarOptions<number>): ScalarField<number> => intField("i32", opts),
  /** A 32-bit float. Any JS number is accepted (it is carried as a 64-bit float on the wire). */
  f32: (opts?: ScalarOptions<number>): ScalarField<number> => floatField("f32", opts),
  /** A 64-bit float; NaN and ±Infinity included. */
  f64: (opts?: ScalarOptions<number>): ScalarField<number> => floatField("f64", opts),
  /** An unsigned 64-bit integer, as a `bigint` 0..2^64-1 (a `number` is refused). */
  u64: (opts?: ScalarOptions<bigint>): ScalarField<bigint> => bigField("u64", opts),
  /** A signed 64-bit integer, as a `bigint` -2^63..2^63-1 (a `number` is refused). */
  i64: (opts?: ScalarOptions<bigint>): ScalarField<bigint> => bigField("i64", opts),
  /** A UTF-16 JS string (UTF-8 on the wire). */
  string: (opts?: ScalarOptions<string>): ScalarField<string> =>
    scalar(
      "string",
      simpleOps(
        "string",
        "string",
        (v) => typeof v === "string",
        "",
        opts?.default,
        () => ({ type: "string" }),
      ),
      opts,
    ),
  /** A byte string: a `Uint8Array` (or `Buffer`). Default: empty. */
  bytes: (): ScalarField<Uint8Array> => scalar("bytes", bytesOps, undefined),
  /** A point in time `{ sec, nanosec }` (ROS `builtin_interfaces/Time`). Default: `{ sec: 0, nanosec: 0 }`. */
  time: (): ScalarField<Time> => scalar("time", stampOps("time"), undefined),
  /** A span of time `{ sec, nanosec }` (ROS `builtin_interfaces/Duration`). */
  duration: (): ScalarField<Duration> => scalar("duration", stampOps("duration"), undefined),
  /**
   * An array of `of`: fixed size with `{ length }`, bounded with `{ maxLength }`, else unbounded.
   * @throws MyelinError ERR_INVALID_ARGUMENT if `of` is optional or not a field, or on bad options.
   */
  array<T>(of: Field<T>, opts?: ArrayOptions): ArrayField<T> {
    const el = requireField(of, "t.array(of)");
    if (el.kind === "optional") {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        "t.array(t.optional(...)) is not allowed: elements cannot be absent",
      );
    }
    const length = checkLength("length", opts?.length);
    const maxLength = checkLength("maxLength", opts?.maxLength);
    if (length !== undefined && maxLength !== undefined) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", "t.array(): give either length or maxLength, not both");
    }
    const field: { kind: "array"; of: Field<T>; length?: number; maxLength?: number } = { kind: "array", of };
    if (length !== undefined) field.length = length;
    if (maxLength !== undefined) field.maxLength = maxLength;
    return brand(field as ArrayField<T>, arrayOps(opsOf(el), length, maxLength));
  },
  /**
   * A nested message of type `type`.
   * @throws MyelinError ERR_INVALID_ARGUMENT if `type` was not made by {@link defineMessage}.
   */
  msg<T>(type: MessageType<T>): MsgField<T> {
    const ops = typeof type === "object" && type !== null ? typeOps.get(type) : undefined;
    if (ops === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `t.msg(type) needs a message type made by defineMessage(), got ${describeValue(type)}`,
      );
    }
    return brand({ kind: "msg", type }, ops);
  },
  /**
   * A number restricted to the values of `values` (name → number), e.g.
   * `t.enum({ OK: 0, WARN: 1, ERROR: 2, STALE: 3 })`. The first value is the default.
   * @throws MyelinError ERR_INVALID_ARGUMENT if `values` is empty or holds a non-finite number.
   */
  enum<const E extends Record<string, number>>(values: E): EnumField<E> {
    if (typeof values !== "object" || values === null || Object.keys(values).length === 0) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        "t.enum(values) needs a non-empty { NAME: number } object",
      );
    }
    for (const [k, n] of Object.entries(values)) {
      if (typeof n !== "number" || !Number.isFinite(n)) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `t.enum(): value of '${k}' must be a finite number, got ${describeValue(n)}`,
        );
      }
    }
    const frozen = Object.freeze({ ...values });
    return brand({ kind: "enum", values: frozen }, enumOps(frozen));
  },
  /**
   * Makes field `f` optional: the key may be absent (or `undefined`) in a message.
   * @throws MyelinError ERR_INVALID_ARGUMENT if `f` is already optional or not a field.
   */
  optional<T>(f: Field<T>): OptionalField<T> {
    const inner = requireField(f, "t.optional(f)");
    if (inner.kind === "optional")
      throw new MyelinError("ERR_INVALID_ARGUMENT", "t.optional(t.optional(...)) is not allowed");
    return brand({ kind: "optional", of: f, optional: true }, optionalOps(opsOf(inner)));
  },
});

// ---------------------------------------------------------------------------------------------------------
// Messages and services
// ---------------------------------------------------------------------------------------------------------

/**
 * Generates the fast validator of a message type with `new Function`: straight-line code with named
 * property loads, inline scalar checks and one helper per array field. Field names are identifiers
 * (checked by defineMessage) and are emitted as JSON strings; every other value enters through `r`.
 * Returns undefined where code generation is not allowed.
 */
function generateIs(
  keys: readonly string[],
  opts: readonly boolean[],
  all: readonly Ops[],
): ((v: unknown) => boolean) | undefined {
  const refs: unknown[] = [Object.prototype, Object.getPrototypeOf];
  const helpers: string[] = [];
  const ctx: GenCtx = {
    // Each value is bound to a constant of its own (`r2`), not read from the array per call.
    ref(v) {
      let i = refs.indexOf(v);
      if (i < 0) i = refs.push(v) - 1;
      return `r${i}`;
    },
    helper(make) {
      const index = helpers.push("") - 1; // reserve the slot before nested helpers take theirs
      const name = `h${index}`;
      helpers[index] = make(name);
      return name;
    },
  };
  const lines: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const key = JSON.stringify(keys[i]);
    const test = genOf(all[i]!, "x", ctx);
    // The first field is read before the prototype check (see below); the others here.
    if (i > 0) lines.push(`x = v[${key}];`);
    lines.push(
      opts[i]
        ? `if (x !== undefined) { if (!(${test})) return false; seen++; } else if (${key} in v) seen++;`
        : `if (x === undefined || !(${test})) return false; seen++;`,
    );
  }
  // The first field's read comes before the prototype check: its map check lets the optimizing
  // compiler fold `getProto(v)` into a constant, where called first it is a runtime call (about half
  // of the check's cost for a one-field message). Only a value that is not a plain object can tell
  // the difference (a getter on its prototype runs before it is refused), and it is refused anyway.
  const first = keys.length > 0 ? `x = v[${JSON.stringify(keys[0])}];\n` : "";
  const source =
    `"use strict";\nconst ${refs.map((_, i) => `r${i} = r[${i}]`).join(", ")};\n` +
    `${helpers.join("\n")}\n` +
    `return function is(v) {\n` +
    `if (typeof v !== "object" || v === null) return false;\n` +
    `let x, seen = 0;\n${first}` +
    `const p = r1(v); if (p !== r0 && p !== null) return false;\n` +
    `${lines.join("\n")}\n` +
    `let count = 0; for (const k in v) count++;\nreturn count === seen;\n};`;
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return new Function("r", source)(refs) as (v: unknown) => boolean;
  } catch {
    return undefined;
  }
}

const TYPE_NAME = /^([a-z][a-z0-9_]*)\/([A-Z][A-Za-z0-9_]*)$/;
const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const OK: ValidationResult = Object.freeze({ ok: true });

function checkTypeName(name: unknown, what: string): asserts name is string {
  if (typeof name !== "string" || !TYPE_NAME.test(name)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what} name must look like "pkg/Name" (pkg: lowercase letters, digits, _; Name: starts uppercase, ` +
        `then letters, digits, _), got ${describeValue(name)}`,
    );
  }
}

/** Builds the ValidationError thrown by `assert()` and `fromJson()`. */
export function makeValidationError(
  typeName: string,
  errors: readonly ValidationIssue[],
  where?: string,
): ValidationError {
  const shown = errors.slice(0, 5).map((e) => (e.path === "" ? e.reason : `${e.path}: ${e.reason}`));
  const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : "";
  const prefix = where === undefined || where === "" ? "" : `${where}: `;
  return new ValidationError("ERR_VALIDATION", `${prefix}invalid ${typeName}: ${shown.join("; ")}${more}`);
}

/**
 * Defines a message type named `name` (`pkg/Name`) with `fields` (name → field, in order). Field names
 * start with a letter and hold letters, digits and `_` (ROS uses `snake_case`).
 *
 * ```ts
 * const Reading = defineMessage("my_pkg/Reading", { stamp: t.time(), value: t.f64(), note: t.optional(t.string()) });
 * type Reading = MessageOf<typeof Reading>; // { stamp: Time; value: number; note?: string }
 * ```
 *
 * Does not register the type; see `registerType`.
 * @throws MyelinError ERR_INVALID_ARGUMENT on a bad type name, field name or field.
 */
export function defineMessage<const F extends Record<string, Field<any>>>(
  name: string,
  fields: F,
): MessageType<InferMessage<F>> {
  checkTypeName(name, "message type");
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `fields of ${name} must be an object { name: t.*() }`);
  }
  const keys: string[] = [];
  const opts: boolean[] = [];
  const all: Ops[] = [];
  const checks: ((v: unknown) => boolean)[] = [];
  for (const [key, f] of Object.entries(fields)) {
    if (!FIELD_NAME.test(key) || key in Object.prototype) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `field name '${key}' of ${name} is not allowed: start with a letter, then letters, digits or _ ` +
          `(and not a name of Object.prototype)`,
      );
    }
    const field = requireField(f, `field '${key}' of ${name}`);
    const ops = opsOf(field);
    keys.push(key);
    opts.push(field.kind === "optional");
    all.push(ops);
    checks.push(ops.is);
  }
  const known = new Set(keys);
  const n = keys.length;
  const frozenFields = Object.freeze({ ...fields }) as Readonly<Record<string, Field<unknown>>>;

  const closureIs = (v: unknown): boolean => {
    if (typeof v !== "object" || v === null) return false;
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return false;
    const o = v as Record<string, unknown>;
    let seen = 0;
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      const x = o[k];
      if (x === undefined) {
        if (!opts[i]) return false;
        if (k in o) seen++;
      } else {
        if (!checks[i]!(x)) return false;
        seen++;
      }
    }
    let count = 0;
    for (const _k in o) count++;
    return count === seen;
  };

  // Generated on first use: most of the ~100 standard types are never validated in a given
  // process, and compiling them all up front costs memory at start.
  let isImpl: ((v: unknown) => boolean) | undefined;
  const is = (v: unknown): boolean =>
    (isImpl ??= (codegen ? generateIs(keys, opts, all) : undefined) ?? closureIs)(v);

  const explain = (v: unknown, path: string, errs: ValidationIssue[]): void => {
    if (!isPlainObject(v)) {
      push(errs, path, expected(`object (${name})`, v));
      return;
    }
    for (let i = 0; i < n && errs.length < MAX_VALIDATION_ERRORS; i++) {
      const k = keys[i]!;
      const x = v[k];
      if (x === undefined) {
        if (!opts[i]) push(errs, joinPath(path, k), `missing required field (${all[i]!.desc})`);
      } else if (!checks[i]!(x)) {
        all[i]!.explain(x, joinPath(path, k), errs);
      }
    }
    for (const k in v) {
      if (errs.length >= MAX_VALIDATION_ERRORS) break;
      if (!known.has(k))
        push(
          errs,
          joinPath(path, k),
          `unknown field '${k.length > 40 ? k.slice(0, 40) + "…" : k}' in ${name}`,
        );
    }
  };

  const make = (init: unknown): unknown => {
    if (init !== undefined && !isPlainObject(init)) return init;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      const x = all[i]!.make(init === undefined ? undefined : init[k]);
      if (x !== ABSENT) out[k] = x;
    }
    if (init !== undefined) {
      // Kept as own properties, even `__proto__` (an assignment would set the prototype and lose it).
      for (const k of Object.keys(init))
        if (!known.has(k))
          Object.defineProperty(out, k, {
            value: init[k],
            enumerable: true,
            writable: true,
            configurable: true,
          });
    }
    return out;
  };

  let schemaCache: JsonSchema | undefined;
  const objectSchema = (): JsonSchema => {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (let i = 0; i < n; i++) {
      properties[keys[i]!] = all[i]!.schema();
      if (!opts[i]) required.push(keys[i]!);
    }
    return { title: name, type: "object", properties, required, additionalProperties: false };
  };

  const sig = `${name}{${keys.map((k, i) => `${k}:${all[i]!.sig}`).join(",")}}`;
  const blobs = all.some((o) => o.blobs);
  const ops: Ops = { is, explain, make, desc: name, sig, schema: objectSchema, blobs };
  // nested uses call this type's validator (no `gen`: genOf emits a call of `is`)

  // Getters that throw and revoked proxies must not make validation throw.
  const safeIs = (v: unknown): boolean => {
    try {
      return is(v);
    } catch {
      return false;
    }
  };
  const issues = (v: unknown): ValidationIssue[] => {
    const errors: ValidationIssue[] = [];
    try {
      explain(v, "", errors);
    } catch (err) {
      errors.push({ path: "", reason: `the value could not be inspected: ${String(err)}` });
    }
    if (errors.length === 0) errors.push({ path: "", reason: `not a valid ${name}` });
    return errors;
  };

  const type: MessageType<InferMessage<F>> = {
    kind: "message",
    name,
    fields: frozenFields,
    get jsonSchema(): JsonSchema {
      schemaCache ??= freezeDeep({
        $schema: "https://json-schema.org/draft/2020-12/schema",
        ...objectSchema(),
      });
      return schemaCache;
    },
    blobFields: blobs,
    validate(value: unknown): ValidationResult {
      if (safeIs(value)) return OK;
      return { ok: false, errors: issues(value) };
    },
    assert(value: unknown, where?: string): asserts value is InferMessage<F> {
      if (safeIs(value)) return;
      throw makeValidationError(name, issues(value), where);
    },
    create(init?: DeepPartial<InferMessage<F>>): InferMessage<F> {
      return make(init) as InferMessage<F>;
    },
  };
  Object.freeze(type);
  typeOps.set(type, ops);
  return type;
}

/**
 * Defines a service type: the request type is named `<name>_Request` and the response `<name>_Response`.
 *
 * ```ts
 * const AddTwoInts = defineService("example_interfaces/AddTwoInts", { a: t.i64(), b: t.i64() }, { sum: t.i64() });
 * ```
 * @throws MyelinError ERR_INVALID_ARGUMENT on a bad name or field.
 */
export function defineService<
  const Q extends Record<string, Field<any>>,
  const R extends Record<string, Field<any>>,
>(name: string, request: Q, response: R): ServiceType<InferMessage<Q>, InferMessage<R>> {
  checkTypeName(name, "service type");
  return Object.freeze({
    kind: "service",
    name,
    request: defineMessage(`${name}_Request`, request),
    response: defineMessage(`${name}_Response`, response),
  });
}

/** True if `v` is a message type made by {@link defineMessage}. */
export function isMessageType(v: unknown): v is MessageType<unknown> {
  return typeof v === "object" && v !== null && typeOps.has(v);
}

/** True if `v` is a service type made by {@link defineService}. */
export function isServiceType(v: unknown): v is ServiceType<unknown, unknown> {
  return (
    typeof v === "object" &&
    v !== null &&
    (v as { kind?: unknown }).kind === "service" &&
    isMessageType((v as { request?: unknown }).request) &&
    isMessageType((v as { response?: unknown }).response)
  );
}

/**
 * A string that is equal for two message types exactly when they have the same name and the same fields
 * (names, kinds, sizes, defaults, nested types), recursively. Used by the registry to accept a second,
 * identical definition of a type.
 * @throws MyelinError ERR_INVALID_ARGUMENT if `type` was not made by {@link defineMessage}.
 */
export function typeSignature(type: MessageType<unknown>): string {
  const ops = typeOps.get(type);
  if (ops === undefined)
    throw new MyelinError("ERR_INVALID_ARGUMENT", "typeSignature(type): not a message type");
  return ops.sig;
}
