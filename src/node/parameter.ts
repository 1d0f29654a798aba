/**
 * Typed node parameters with defaults, settable at runtime, with change events. A value given
 * at node creation (`parameters` option, e.g. from a launch spec) overrides the default.
 */
import { EventEmitter } from "node:events";
import { MyelinError } from "../errors.js";

/** Kinds of parameter values. */
export type ParameterKind =
  "bool" | "int" | "double" | "string" | "bool[]" | "int[]" | "double[]" | "string[]";

type ValueOf<K extends ParameterKind> = K extends "bool"
  ? boolean
  : K extends "int" | "double"
    ? number
    : K extends "string"
      ? string
      : K extends "bool[]"
        ? boolean[]
        : K extends "int[]" | "double[]"
          ? number[]
          : string[];

/** Declaration of a parameter. */
export interface ParameterSpec<K extends ParameterKind> {
  type: K;
  default: ValueOf<K>;
  description?: string;
  /** Inclusive bounds for numbers. */
  min?: number;
  max?: number;
  /** Refuse set() at runtime. */
  readOnly?: boolean;
}

function check(kind: ParameterKind, v: unknown, spec: { min?: number; max?: number }, where: string): void {
  const scalar = (k: string, x: unknown): boolean => {
    switch (k) {
      case "bool":
        return typeof x === "boolean";
      case "int":
        return Number.isSafeInteger(x);
      case "double":
        return typeof x === "number";
      default:
        return typeof x === "string";
    }
  };
  const base = kind.endsWith("[]") ? kind.slice(0, -2) : kind;
  const items = kind.endsWith("[]") ? (Array.isArray(v) ? v : null) : [v];
  if (items === null || !items.every((x) => scalar(base, x))) {
    throw new MyelinError("ERR_PARAMETER", `${where} must be ${kind}, got ${JSON.stringify(v)}`);
  }
  for (const x of items) {
    if (typeof x !== "number") continue;
    if ((spec.min !== undefined && x < spec.min) || (spec.max !== undefined && x > spec.max)) {
      throw new MyelinError(
        "ERR_PARAMETER",
        `${where} must be within [${spec.min ?? "-inf"}, ${spec.max ?? "inf"}], got ${x}`,
      );
    }
  }
}

/** One declared parameter. Listen with `param.on("change", (value, old) => …)`. */
export class Parameter<K extends ParameterKind = ParameterKind> extends EventEmitter<{
  change: [ValueOf<K>, ValueOf<K>];
}> {
  readonly name: string;
  readonly spec: ParameterSpec<K>;
  #value: ValueOf<K>;

  /** @internal */
  constructor(name: string, spec: ParameterSpec<K>, initial: unknown, where: string) {
    super();
    this.name = name;
    this.spec = spec;
    check(spec.type, spec.default, spec, `${where}: default of parameter ${name}`);
    const v = initial === undefined ? spec.default : initial;
    check(spec.type, v, spec, `${where}: parameter ${name}`);
    this.#value = v as ValueOf<K>;
  }

  /** The current value. */
  get value(): ValueOf<K> {
    return this.#value;
  }

  /**
   * Sets the value and emits `change` if it changed.
   * @throws MyelinError ERR_PARAMETER for a value of the wrong type or out of bounds
   */
  set(v: unknown, opts: { force?: boolean } = {}): void {
    if (this.spec.readOnly === true && opts.force !== true) {
      throw new MyelinError("ERR_PARAMETER", `parameter ${this.name} is read-only`);
    }
    check(this.spec.type, v, this.spec, `parameter ${this.name}`);
    const old = this.#value;
    if (JSON.stringify(old) === JSON.stringify(v)) return;
    this.#value = v as ValueOf<K>;
    this.emit("change", this.#value, old);
  }
}
