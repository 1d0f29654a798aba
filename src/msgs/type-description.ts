/**
 * A message type as plain data that survives structured cloning (`postMessage`, `workerData`), and the
 * type rebuilt from it on the other side: how a worker thread gets the types a process loaded with
 * `--import` (modules a worker does not run). The rebuilt type has the same name and fields, so it
 * decodes, validates and encodes exactly as the original; a registered type with the same definition is
 * used as it is.
 *
 * ```ts
 * const d = describeMessageType(my_msgs.Reading); // post it to a worker
 * const Reading = messageTypeFromDescription(d); // in the worker
 * ```
 */
import { MyelinError } from "../errors.js";
import { lookupType } from "./registry.js";
import {
  defineMessage,
  t,
  typeSignature,
  type AnyField,
  type Field,
  type MessageType,
  type ScalarKind,
} from "./schema.js";

/** One field, as plain data; nested message types are named, their fields are in the description's `types`. */
export type FieldDescription =
  | { kind: ScalarKind; default?: unknown }
  | { kind: "array"; of: FieldDescription; length?: number; maxLength?: number }
  | { kind: "msg"; type: string }
  | { kind: "enum"; values: Record<string, number> }
  | { kind: "optional"; of: FieldDescription };

/** A message type and every type nested in it, as plain data; see the module comment. */
export interface TypeDescription {
  /** The described type's name. */
  root: string;
  /** Every type by name: its fields in declaration order. */
  types: Record<string, [string, FieldDescription][]>;
}

function describeField(field: Field<unknown>, types: TypeDescription["types"]): FieldDescription {
  const f = field as AnyField;
  switch (f.kind) {
    case "array": {
      const d: FieldDescription = { kind: "array", of: describeField(f.of, types) };
      if (f.length !== undefined) d.length = f.length;
      if (f.maxLength !== undefined) d.maxLength = f.maxLength;
      return d;
    }
    case "optional":
      return { kind: "optional", of: describeField(f.of, types) };
    case "msg":
      describeInto(f.type, types);
      return { kind: "msg", type: f.type.name };
    case "enum":
      return { kind: "enum", values: { ...f.values } };
    default:
      return f.default === undefined ? { kind: f.kind } : { kind: f.kind, default: f.default };
  }
}

function describeInto(type: MessageType<unknown>, types: TypeDescription["types"]): void {
  if (types[type.name] !== undefined) return;
  types[type.name] = []; // guards against revisiting while describing
  types[type.name] = Object.entries(type.fields).map(([k, f]) => [k, describeField(f, types)]);
}

/** `type` as plain data (see the module comment). */
export function describeMessageType(type: MessageType<unknown>): TypeDescription {
  const types: TypeDescription["types"] = {};
  describeInto(type, types);
  return { root: type.name, types };
}

function buildField(d: FieldDescription, build: (name: string) => MessageType<unknown>): Field<unknown> {
  switch (d.kind) {
    case "array": {
      const opts: { length?: number; maxLength?: number } = {};
      if (d.length !== undefined) opts.length = d.length;
      if (d.maxLength !== undefined) opts.maxLength = d.maxLength;
      return t.array(buildField(d.of, build), opts);
    }
    case "optional":
      return t.optional(buildField(d.of, build));
    case "msg":
      return t.msg(build(d.type));
    case "enum":
      return t.enum(d.values);
    case "bytes":
    case "time":
    case "duration":
      return t[d.kind]();
    default: {
      const make = t[d.kind] as (opts?: { default?: unknown }) => Field<unknown>;
      return d.default === undefined ? make() : make({ default: d.default });
    }
  }
}

/**
 * The type `d` describes: the registered one when its definition is the same, else one built from `d`
 * (not registered).
 * @throws MyelinError ERR_INVALID_ARGUMENT if `d` is not a description made by {@link describeMessageType}.
 */
export function messageTypeFromDescription(d: TypeDescription): MessageType<unknown> {
  const built = new Map<string, MessageType<unknown>>();
  const build = (name: string): MessageType<unknown> => {
    const have = built.get(name);
    if (have !== undefined) return have;
    const fields = d.types[name];
    if (fields === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `type description of ${d.root} lacks nested type ${name}`,
      );
    }
    const type = defineMessage(
      name,
      Object.fromEntries(fields.map(([k, f]) => [k, buildField(f, build)])),
    ) as MessageType<unknown>;
    const registered = lookupType(name);
    const use =
      registered !== undefined && typeSignature(registered) === typeSignature(type) ? registered : type;
    built.set(name, use);
    return use;
  };
  return build(d.root);
}
