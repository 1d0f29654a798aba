/**
 * JSON at the edges (gateway, dashboard, CLI). Two forms:
 *
 * - {@link toJson} / {@link fromJson}: the message's JSON face described by `type.jsonSchema`. With a type,
 *   bytes are base64 strings, u64/i64 are decimal strings, non-finite floats are `"NaN"`, `"Infinity"`,
 *   `"-Infinity"`; `fromJson` converts back, fills missing fields with defaults and validates.
 * - {@link jsonCodec}: schema-less and lossless, for carrying any message as JSON bytes: bytes, bigints and
 *   non-finite floats become tagged objects `{"$bytes": base64}`, `{"$bigint": "123"}`, `{"$float": "NaN"}`.
 */
import { DecodeError, MyelinError } from "../errors.js";
import {
  describeValue,
  makeValidationError,
  MAX_VALIDATION_ERRORS,
  type AnyField,
  type Field,
  type MessageType,
  type ValidationIssue,
} from "../msgs/schema.js";
import { base64Decode, base64Encode } from "./base64.js";
import type { Codec } from "./msgpack.js";

const MAX_DEPTH = 1000;

function tooDeep(): MyelinError {
  return new MyelinError(
    "ERR_ENCODE",
    "cannot encode the value as JSON: nested too deeply or contains a cycle",
  );
}

function floatToJson(n: number): number | string {
  if (Number.isFinite(n)) return n;
  return Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity";
}

function isPlainish(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Plain JSON value of anything, without a schema. `tag` chooses tagged objects over plain strings. */
function generic(v: unknown, tag: boolean, depth: number): unknown {
  switch (typeof v) {
    case "number":
      if (Number.isFinite(v)) return v;
      return tag ? { $float: floatToJson(v) } : floatToJson(v);
    case "bigint":
      return tag ? { $bigint: v.toString() } : v.toString();
    case "string":
    case "boolean":
      return v;
    case "undefined":
      return undefined;
    case "object": {
      if (v === null) return null;
      if (depth > MAX_DEPTH) throw tooDeep();
      if (ArrayBuffer.isView(v)) {
        const bytes = v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
        return tag ? { $bytes: base64Encode(bytes) } : base64Encode(bytes);
      }
      if (Array.isArray(v)) {
        return v.map((x) => {
          const y = generic(x, tag, depth + 1);
          return y === undefined ? null : y;
        });
      }
      if (!isPlainish(v)) {
        const toJSON = (v as { toJSON?: unknown }).toJSON;
        if (typeof toJSON === "function") return generic(toJSON.call(v), tag, depth + 1);
        if (v instanceof Map) return generic(Object.fromEntries(v), tag, depth + 1);
        if (v instanceof Set) return generic([...v], tag, depth + 1);
      }
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const y = generic(x, tag, depth + 1);
        if (y !== undefined) out[k] = y;
      }
      return out;
    }
    default:
      throw new MyelinError("ERR_ENCODE", `cannot encode a ${typeof v} as JSON`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Schema-aware conversion, compiled once per field
// ---------------------------------------------------------------------------------------------------------

type ToJson = (v: unknown) => unknown;
type FromJson = (v: unknown, path: string, errs: ValidationIssue[]) => unknown;

interface Converters {
  to: ToJson;
  from: FromJson;
}

const fieldCache = new WeakMap<object, Converters>();

function joinPath(path: string, key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)
    ? path === ""
      ? key
      : `${path}.${key}`
    : `${path}[${JSON.stringify(key)}]`;
}

function push(errs: ValidationIssue[], path: string, reason: string): void {
  if (errs.length < MAX_VALIDATION_ERRORS) errs.push({ path, reason });
}

const same = (v: unknown): unknown => v;
const plain: ToJson = (v) => generic(v, false, 0);

const INT_STRING = /^-?[0-9]+$/;

function convertersOf(field: Field<unknown>): Converters {
  let c = fieldCache.get(field);
  if (c === undefined) {
    c = build(field as AnyField);
    fieldCache.set(field, c);
  }
  return c;
}

function build(f: AnyField): Converters {
  switch (f.kind) {
    case "bool":
    case "u8":
    case "u16":
    case "u32":
    case "i8":
    case "i16":
    case "i32":
    case "string":
      return { to: (v) => (typeof v === "object" ? plain(v) : v), from: same };
    case "f32":
    case "f64":
      return {
        to: (v) => (typeof v === "number" ? floatToJson(v) : plain(v)),
        from(v, path, errs) {
          if (typeof v !== "string") return v;
          if (v === "NaN") return NaN;
          if (v === "Infinity") return Infinity;
          if (v === "-Infinity") return -Infinity;
          push(
            errs,
            path,
            `expected ${f.kind} (a number, "NaN", "Infinity" or "-Infinity"), got ${describeValue(v)}`,
          );
          return v;
        },
      };
    case "u64":
    case "i64":
      return {
        to: (v) => (typeof v === "bigint" ? v.toString() : plain(v)),
        from(v, path, errs) {
          if (typeof v === "number") {
            if (Number.isSafeInteger(v)) return BigInt(v);
            push(
              errs,
              path,
              `expected ${f.kind} (a decimal string or an integer up to 2^53), got ${describeValue(v)}` +
                (Number.isInteger(v) ? "; send large values as strings to keep their precision" : ""),
            );
            return v;
          }
          if (typeof v === "string") {
            if (INT_STRING.test(v) && v.length <= 21) return BigInt(v);
            push(errs, path, `expected ${f.kind} as a decimal string, got ${describeValue(v)}`);
          }
          return v;
        },
      };
    case "bytes":
      return {
        to: (v) => (v instanceof Uint8Array ? base64Encode(v) : plain(v)),
        from(v, path, errs) {
          if (v instanceof Uint8Array) return v;
          if (typeof v === "string") {
            const b = base64Decode(v);
            if (b !== undefined) return b;
            push(errs, path, `expected bytes as a base64 string, got a string that is not base64`);
            return v;
          }
          if (v !== undefined) push(errs, path, `expected bytes as a base64 string, got ${describeValue(v)}`);
          return v;
        },
      };
    case "time":
    case "duration":
      return { to: plain, from: same };
    case "enum": {
      const values = f.values;
      return {
        to: plain,
        from: (v) => (typeof v === "string" && Object.hasOwn(values, v) ? values[v] : v),
      };
    }
    case "array": {
      const el = convertersOf(f.of);
      return {
        to: (v) => (Array.isArray(v) ? v.map((x) => el.to(x)) : plain(v)),
        from: (v, path, errs) => (Array.isArray(v) ? v.map((x, i) => el.from(x, `${path}[${i}]`, errs)) : v),
      };
    }
    case "optional": {
      const inner = convertersOf(f.of);
      return {
        to: (v) => (v === undefined ? undefined : inner.to(v)),
        from: (v, path, errs) => (v === undefined || v === null ? undefined : inner.from(v, path, errs)),
      };
    }
    case "msg":
      return typeConverters(f.type);
  }
}

const typeCache = new WeakMap<object, Converters>();

function typeConverters(type: MessageType<unknown>): Converters {
  let c = typeCache.get(type);
  if (c !== undefined) return c;
  const entries = Object.entries(type.fields);
  const keys = entries.map(([k]) => k);
  const convs = entries.map(([, f]) => convertersOf(f));
  const known = new Set(keys);
  c = {
    to(v) {
      if (typeof v !== "object" || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return plain(v);
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const x = o[k];
        if (x === undefined) continue;
        const y = convs[i]!.to(x);
        if (y !== undefined) out[k] = y;
      }
      for (const k of Object.keys(o)) {
        if (known.has(k)) continue;
        const y = plain(o[k]);
        if (y !== undefined) out[k] = y;
      }
      return out;
    },
    from(v, path, errs) {
      if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o)) {
        const i = keys.indexOf(k);
        const y = i < 0 ? o[k] : convs[i]!.from(o[k], joinPath(path, k), errs);
        // An own property even for `__proto__` (JSON.parse makes one): assigning it would set the
        // prototype, silently dropping a field that validation must report as unknown.
        if (y !== undefined)
          Object.defineProperty(out, k, { value: y, enumerable: true, writable: true, configurable: true });
      }
      return out;
    },
  };
  typeCache.set(type, c);
  return c;
}

/**
 * The JSON-safe form of `msg`, ready for `JSON.stringify`.
 *
 * With a `type`: bytes fields become base64 strings, u64/i64 decimal strings, non-finite f32/f64 the
 * strings `"NaN"`, `"Infinity"`, `"-Infinity"`; absent optional fields are left out; times stay
 * `{ sec, nanosec }`. This is the form `type.jsonSchema` describes. Keys that are not fields are converted
 * as without a type. `msg` is assumed valid; it is not checked.
 *
 * Without a type (`undefined`): every `Uint8Array` becomes a base64 string, every bigint a decimal string,
 * non-finite numbers as above; `undefined` values are dropped.
 * @throws MyelinError ERR_ENCODE on functions, symbols, or nesting deeper than 1000 (e.g. a cycle).
 */
export function toJson(type: MessageType<unknown> | undefined, msg: unknown): unknown {
  if (type === undefined) return generic(msg, false, 0);
  try {
    return typeConverters(type).to(msg);
  } catch (err) {
    if (err instanceof RangeError) throw tooDeep();
    throw err;
  }
}

/**
 * Reads a message of `type` from its JSON form (as made by {@link toJson}, or by hand): base64 strings
 * become `Uint8Array`s in bytes fields; integers (up to 2^53) or decimal strings become bigints in u64/i64
 * fields; `"NaN"`, `"Infinity"`, `"-Infinity"` become numbers in float fields; enum fields also take the
 * value's name; `null` in an optional field means absent. Missing fields get their defaults (as
 * `type.create()`), then the result is validated.
 * @param where prefixed to the error message, e.g. the topic name.
 * @throws ValidationError ERR_VALIDATION naming each bad field's path and what is wrong.
 */
export function fromJson<T>(type: MessageType<T>, value: unknown, where?: string): T {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw makeValidationError(
      type.name,
      [{ path: "", reason: `expected a JSON object, got ${describeValue(value)}` }],
      where,
    );
  }
  const errs: ValidationIssue[] = [];
  const converted = typeConverters(type).from(value, "", errs);
  if (errs.length > 0) throw makeValidationError(type.name, errs, where);
  const msg = type.create(converted as never);
  type.assert(msg, where);
  return msg;
}

// ---------------------------------------------------------------------------------------------------------
// Schema-less JSON codec
// ---------------------------------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function revive(this: unknown, _key: string, v: unknown): unknown {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
  const o = v as Record<string, unknown>;
  let tag: string | undefined;
  for (const k in o) {
    if (tag !== undefined) return v; // more than one key: not a tag
    tag = k;
  }
  if (tag === undefined) return v;
  const x = o[tag];
  switch (tag) {
    case "$bytes": {
      const b = typeof x === "string" ? base64Decode(x) : undefined;
      if (b === undefined) throw new Error(`"$bytes" must hold a base64 string`);
      return b;
    }
    case "$bigint":
      if (typeof x !== "string" || !INT_STRING.test(x))
        throw new Error(`"$bigint" must hold a decimal string`);
      return BigInt(x);
    case "$float":
      if (x === "NaN") return NaN;
      if (x === "Infinity") return Infinity;
      if (x === "-Infinity") return -Infinity;
      throw new Error(`"$float" must hold "NaN", "Infinity" or "-Infinity"`);
    default:
      return v;
  }
}

/**
 * A schema-less, lossless JSON codec (UTF-8 bytes). `Uint8Array` ↔ `{"$bytes": "<base64>"}`, bigint ↔
 * `{"$bigint": "123"}`, NaN/±Infinity ↔ `{"$float": "NaN"}`; `undefined` object values are dropped and
 * become `null` in arrays. An object whose only key is one of these tags is always read as the tag.
 * For the JSON face of a known type use {@link toJson}/{@link fromJson} instead.
 */
export const jsonCodec: Codec = Object.freeze({
  name: "json" as const,
  encode(msg: unknown): Uint8Array {
    const json = JSON.stringify(generic(msg, true, 0));
    if (json === undefined) throw new MyelinError("ERR_ENCODE", "cannot encode undefined as JSON");
    return encoder.encode(json);
  },
  decode(bytes: Uint8Array): unknown {
    if (!(bytes instanceof Uint8Array)) {
      throw new DecodeError("ERR_DECODE", `JSON input must be a Uint8Array, got ${describeValue(bytes)}`);
    }
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch (err) {
      throw new DecodeError("ERR_DECODE", `invalid JSON message (${bytes.length} bytes): not UTF-8`, {
        cause: err,
      });
    }
    try {
      return JSON.parse(text, revive);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new DecodeError("ERR_DECODE", `invalid JSON message (${bytes.length} bytes): ${why}`, {
        cause: err,
      });
    }
  },
});
