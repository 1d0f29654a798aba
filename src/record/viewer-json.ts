/**
 * JSON for viewers: the `json` message encoding with a `jsonschema` schema that Foxglove and Lichtblick
 * parse. Their JSON Schema reader knows `type` (object, array, string, number, integer, boolean) and
 * `contentEncoding: base64`, not `anyOf`, so this schema is a plainer cousin of `type.jsonSchema`:
 *
 * - f32/f64 are `number` (a non-finite value is written as the string `"NaN"`, `"Infinity"`, `"-Infinity"`);
 * - u64/i64 are `integer`, written as a JSON number when it is a safe integer (|v| < 2^53) and as a
 *   decimal string otherwise, so that no digit is lost;
 * - bytes are base64 strings (`contentEncoding: base64`), times and durations `{ sec, nanosec }`,
 *   enums integers (their names in `description`), optional fields are left out when absent.
 *
 * Reading back goes through the codec's `fromJson`, which accepts each of these forms. No I/O.
 */
import { DecodeError } from "../errors.js";
import { fromJson } from "../codec/index.js";
import type { AnyField, Field, JsonSchema, MessageType } from "../msgs/index.js";

type Convert = (v: unknown) => unknown;

const identity: Convert = (v) => v;

function floatOut(v: unknown): unknown {
  const n = v as number;
  if (Number.isFinite(n)) return n;
  return Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity";
}

function bigOut(v: unknown): unknown {
  const b = v as bigint;
  return b <= 9007199254740991n && b >= -9007199254740991n ? Number(b) : b.toString();
}

function bytesOut(v: unknown): unknown {
  const b = v as Uint8Array;
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

const converters = new WeakMap<object, Convert>();

/** The converter of a field, or `identity` when its value is already the JSON form. */
function fieldOut(field: Field<unknown>): Convert {
  const f = field as AnyField;
  switch (f.kind) {
    case "f32":
    case "f64":
      return floatOut;
    case "u64":
    case "i64":
      return bigOut;
    case "bytes":
      return bytesOut;
    case "array": {
      const el = fieldOut(f.of);
      return el === identity ? identity : (v) => (v as unknown[]).map(el);
    }
    case "optional": {
      const inner = fieldOut(f.of);
      return inner === identity ? identity : (v) => (v === undefined ? undefined : inner(v));
    }
    case "msg":
      return messageOut(f.type);
    default:
      return identity;
  }
}

function messageOut(type: MessageType<unknown>): Convert {
  let c = converters.get(type);
  if (c !== undefined) return c;
  const special = Object.entries(type.fields)
    .map(([k, f]) => [k, fieldOut(f)] as const)
    .filter(([, conv]) => conv !== identity);
  if (special.length === 0) c = identity;
  else {
    c = (v) => {
      const out: Record<string, unknown> = { ...(v as Record<string, unknown>) };
      for (const [k, conv] of special) {
        const x = out[k];
        if (x !== undefined) out[k] = conv(x);
      }
      return out;
    };
  }
  converters.set(type, c);
  return c;
}

function fieldSchema(field: Field<unknown>): JsonSchema {
  const f = field as AnyField;
  switch (f.kind) {
    case "bool":
      return { type: "boolean" };
    case "u8":
    case "u16":
    case "u32":
    case "i8":
    case "i16":
    case "i32":
      return { type: "integer" };
    case "u64":
    case "i64":
      return { type: "integer", description: `${f.kind}: a decimal string beyond ±2^53` };
    case "f32":
    case "f64":
      return { type: "number" };
    case "string":
      return { type: "string" };
    case "bytes":
      return { type: "string", contentEncoding: "base64" };
    case "time":
    case "duration":
      return {
        type: "object",
        title: f.kind === "time" ? "builtin_interfaces/Time" : "builtin_interfaces/Duration",
        properties: { sec: { type: "integer" }, nanosec: { type: "integer" } },
      };
    case "enum":
      return {
        type: "integer",
        description: Object.entries(f.values)
          .map(([name, n]) => `${n}: ${name}`)
          .join(", "),
      };
    case "array": {
      const s: Record<string, unknown> = { type: "array", items: fieldSchema(f.of) };
      if (f.length !== undefined) {
        s["minItems"] = f.length;
        s["maxItems"] = f.length;
      }
      if (f.maxLength !== undefined) s["maxItems"] = f.maxLength;
      return s;
    }
    case "optional":
      return fieldSchema(f.of);
    case "msg":
      return messageSchema(f.type);
  }
}

function messageSchema(type: MessageType<unknown>): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [k, f] of Object.entries(type.fields)) {
    properties[k] = fieldSchema(f);
    if (f.kind !== "optional") required.push(k);
  }
  return { type: "object", title: type.name, properties, required };
}

/** The JSON Schema (draft 2020-12) of `type`'s viewer JSON form, as a viewer reads it. */
export function viewerJsonSchema(type: MessageType<unknown>): JsonSchema {
  return { $schema: "https://json-schema.org/draft/2020-12/schema", ...messageSchema(type) };
}

/** The viewer JSON text of `msg`, a valid message of `type`. */
export function viewerJsonText<T>(type: MessageType<T>, msg: T): string {
  return JSON.stringify(messageOut(type)(msg));
}

/** The viewer JSON text of `msg`, a valid message of `type`, as UTF-8 bytes. */
export function viewerJsonEncode<T>(type: MessageType<T>, msg: T): Uint8Array {
  return Buffer.from(viewerJsonText(type, msg), "utf8");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a message of `type` from viewer JSON bytes (or any JSON form `fromJson` accepts).
 * @throws DecodeError ERR_DECODE if the bytes are not UTF-8 JSON.
 * @throws ValidationError ERR_VALIDATION naming each field that does not fit the type.
 */
export function viewerJsonDecode<T>(type: MessageType<T>, data: Uint8Array): T {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(data));
  } catch (err) {
    throw new DecodeError(
      "ERR_DECODE",
      `a ${type.name} message is not valid UTF-8 JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return fromJson(type, value);
}
