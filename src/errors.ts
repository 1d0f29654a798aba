/**
 * Errors thrown by Myelin. Every error has a stable `code` (listed in docs/errors.md); callers
 * branch on `code` or `instanceof`, never on the message text. Messages say what happened, to
 * what, and how to fix it.
 *
 * The class of an error is a function of its code ({@link ERROR_CLASS_OF}): `ERR_TIMEOUT` is
 * always a {@link TimeoutError}, `ERR_NO_SERVER` always a {@link ServiceError}, and so on. Each
 * class's constructor accepts only its own codes (a type error otherwise, and a `TypeError` at
 * run time for a code that was cast), and {@link myelinError} builds the right class for any code,
 * e.g. one that came over the wire.
 *
 * `instanceof` works across copies of Myelin in one process (the bundle and the CLI's modules):
 * see {@link MyelinError}'s `Symbol.hasInstance`.
 */
import { sharedKey } from "./process-shared.js";

/** Every error code Myelin throws. Kept in step with docs/errors.md by a test. */
export const ERROR_CODES = [
  "ERR_INVALID_ARGUMENT",
  "ERR_VALIDATION",
  "ERR_DECODE",
  "ERR_ENCODE",
  "ERR_PAYLOAD_TOO_LARGE",
  "ERR_TYPE_MISMATCH",
  "ERR_UNKNOWN_TYPE",
  "ERR_UNKNOWN_TOPIC",
  "ERR_TIMEOUT",
  "ERR_NO_SERVER",
  "ERR_SERVICE_FAILED",
  "ERR_BACKPRESSURE",
  "ERR_CLOSED",
  "ERR_HUB_UNREACHABLE",
  "ERR_PEER_UNREACHABLE",
  "ERR_PROTOCOL",
  "ERR_PARAMETER",
  "ERR_STORAGE",
  "ERR_STATE_CORRUPT",
  "ERR_BAD_CONFIG",
  "ERR_SPEC",
  "ERR_UNKNOWN_NODE",
  "ERR_PROCESS_FAILED",
  "ERR_UNPLACEABLE",
  "ERR_QUEUE_FULL",
  "ERR_BROKER",
  "ERR_UNAVAILABLE",
  "ERR_LOCKED",
  "ERR_UNKNOWN_DEVICE",
  "ERR_VERSION_CONFLICT",
  "ERR_NOT_AUTHORIZED",
  "ERR_CARRIER_MISMATCH",
] as const;

/** A stable error code; see docs/errors.md. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** True if `code` is one of {@link ERROR_CODES} (for codes read from the wire or a file). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && (ERROR_CODES as readonly string[]).includes(code);
}

/** The name of each error class Myelin throws. */
export type ErrorClassName =
  | "MyelinError"
  | "ValidationError"
  | "DecodeError"
  | "TimeoutError"
  | "TypeMismatchError"
  | "ServiceError"
  | "ClosedError"
  | "SpecError";

/**
 * The class each code is thrown as: the `class` column of docs/errors.md, checked by a test. A
 * code not listed under a subclass is a plain {@link MyelinError}.
 */
export const ERROR_CLASS_OF = {
  ERR_INVALID_ARGUMENT: "MyelinError",
  ERR_VALIDATION: "ValidationError",
  ERR_DECODE: "DecodeError",
  ERR_ENCODE: "MyelinError",
  ERR_PAYLOAD_TOO_LARGE: "MyelinError",
  ERR_TYPE_MISMATCH: "TypeMismatchError",
  ERR_UNKNOWN_TYPE: "MyelinError",
  ERR_UNKNOWN_TOPIC: "MyelinError",
  ERR_TIMEOUT: "TimeoutError",
  ERR_NO_SERVER: "ServiceError",
  ERR_SERVICE_FAILED: "ServiceError",
  ERR_BACKPRESSURE: "MyelinError",
  ERR_CLOSED: "ClosedError",
  ERR_HUB_UNREACHABLE: "TimeoutError",
  ERR_PEER_UNREACHABLE: "MyelinError",
  ERR_PROTOCOL: "MyelinError",
  ERR_PARAMETER: "MyelinError",
  ERR_STORAGE: "MyelinError",
  ERR_STATE_CORRUPT: "MyelinError",
  ERR_BAD_CONFIG: "MyelinError",
  ERR_SPEC: "SpecError",
  ERR_UNKNOWN_NODE: "MyelinError",
  ERR_PROCESS_FAILED: "MyelinError",
  ERR_UNPLACEABLE: "MyelinError",
  ERR_QUEUE_FULL: "MyelinError",
  ERR_BROKER: "MyelinError",
  ERR_UNAVAILABLE: "ServiceError",
  ERR_LOCKED: "MyelinError",
  ERR_UNKNOWN_DEVICE: "MyelinError",
  ERR_VERSION_CONFLICT: "MyelinError",
  ERR_NOT_AUTHORIZED: "MyelinError",
  ERR_CARRIER_MISMATCH: "MyelinError",
} as const satisfies Record<ErrorCode, ErrorClassName>;

/** The codes thrown as class `N`, e.g. `CodesOf<"TimeoutError">` = `"ERR_TIMEOUT" | "ERR_HUB_UNREACHABLE"`. */
export type CodesOf<N extends ErrorClassName> = {
  [C in ErrorCode]: (typeof ERROR_CLASS_OF)[C] extends N ? C : never;
}[ErrorCode];

/**
 * Lets the classes below call the base constructor with their own codes; not exported, so code
 * elsewhere cannot reach that overload.
 */
const SUBCLASS: unique symbol = Symbol("MyelinError subclass");

/**
 * The brand every Myelin error carries, under a `Symbol.for` key (so the same for every copy of
 * Myelin of this `SHARED_STATE_VERSION`, src/process-shared.ts): lets `instanceof` recognize an error made by
 * another copy of Myelin in the process (the bundle and the CLI's modules each have their classes).
 */
const BRAND = sharedKey("error.brand");

/** The built-in `instanceof`: the prototype chain only. */
const ordinaryHasInstance = Function.prototype[Symbol.hasInstance];

/**
 * Base class of every error Myelin throws. Constructed directly only for the codes whose class is
 * `MyelinError` (`CodesOf<"MyelinError">`); use the subclass of the code, or {@link myelinError}.
 * @throws TypeError if `code` belongs to another class (possible only through a cast)
 */
export class MyelinError extends Error {
  readonly code: ErrorCode;
  constructor(code: CodesOf<"MyelinError">, message: string, options?: ErrorOptions);
  /** @internal the subclasses' path: `token` is module-private. */
  constructor(code: ErrorCode, message: string, options: ErrorOptions | undefined, token: typeof SUBCLASS);
  constructor(code: ErrorCode, message: string, options?: ErrorOptions, _token?: typeof SUBCLASS) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
    const expected = classOf(code);
    if (expected !== undefined && !(this instanceof expected)) {
      throw new TypeError(
        `${code} is thrown as ${ERROR_CLASS_OF[code]}, not ${new.target.name}: build it with new ${ERROR_CLASS_OF[code]}(…) or myelinError("${code}", …)`,
      );
    }
    Object.defineProperty(this, BRAND, { value: true });
  }

  /**
   * `err instanceof C` for `MyelinError` and every subclass: true when `err`'s prototype chain has
   * `C` (the ordinary check, tried first), and also for an error made by another copy of Myelin
   * in this process (see src/process-shared.ts) whose class chain has a class of `C`'s name, e.g.
   * a `TimeoutError` of the bundle is an instance of the CLI modules' `TimeoutError` and
   * `MyelinError`, not of their `ServiceError`. Anything without the brand (a plain `Error`) is
   * never an instance.
   */
  static override [Symbol.hasInstance]<C extends abstract new (...args: never[]) => unknown>(
    this: C,
    value: unknown,
  ): value is InstanceType<C> {
    if (ordinaryHasInstance.call(this, value)) return true;
    if (typeof value !== "object" || value === null || (value as Record<symbol, unknown>)[BRAND] !== true)
      return false;
    const name = this.name;
    for (let p: unknown = Object.getPrototypeOf(value); p !== null; p = Object.getPrototypeOf(p)) {
      const ctor = Object.prototype.hasOwnProperty.call(p, "constructor")
        ? (p as { constructor: unknown }).constructor
        : undefined;
      if (typeof ctor === "function" && ctor.name === name) return true;
      if (ctor === Error) return false;
    }
    return false;
  }
}

/** A value failed its schema: wrong type, missing field, out of range. Code `ERR_VALIDATION`. */
export class ValidationError extends MyelinError {
  declare readonly code: CodesOf<"ValidationError">;
  constructor(code: CodesOf<"ValidationError">, message: string, options?: ErrorOptions) {
    super(code, message, options, SUBCLASS);
  }
}

/** Bytes could not be decoded as a message or frame. Code `ERR_DECODE`. */
export class DecodeError extends MyelinError {
  declare readonly code: CodesOf<"DecodeError">;
  constructor(code: CodesOf<"DecodeError">, message: string, options?: ErrorOptions) {
    super(code, message, options, SUBCLASS);
  }
}

/** Something did not answer in time: `ERR_TIMEOUT`, or the hub (`ERR_HUB_UNREACHABLE`). */
export class TimeoutError extends MyelinError {
  declare readonly code: CodesOf<"TimeoutError">;
  constructor(code: CodesOf<"TimeoutError">, message: string, options?: ErrorOptions) {
    super(code, message, options, SUBCLASS);
  }
}

/** A topic or service was used with a type other than the one it has. Code `ERR_TYPE_MISMATCH`. */
export class TypeMismatchError extends MyelinError {
  declare readonly code: CodesOf<"TypeMismatchError">;
  constructor(code: CodesOf<"TypeMismatchError">, message: string, options?: ErrorOptions) {
    super(code, message, options, SUBCLASS);
  }
}

/**
 * A service call failed: no server (`ERR_NO_SERVER`), no replica could take it
 * (`ERR_UNAVAILABLE`), or the server reported an error (`ERR_SERVICE_FAILED`).
 */
export class ServiceError extends MyelinError {
  declare readonly code: CodesOf<"ServiceError">;
  constructor(code: CodesOf<"ServiceError">, message: string, options?: ErrorOptions) {
    super(code, message, options, SUBCLASS);
  }
}

/** The resource was closed before or during the operation. Code `ERR_CLOSED`. */
export class ClosedError extends MyelinError {
  declare readonly code: CodesOf<"ClosedError">;
  constructor(code: CodesOf<"ClosedError">, message: string, options?: ErrorOptions) {
    super(code, message, options, SUBCLASS);
  }
}

/** Where a value of a launch spec came from: file and 1-based line and column. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** One thing wrong with a launch spec: where, which field, what. */
export interface SpecProblem extends SourcePos {
  /** Dotted path of the field, e.g. `nodes.camera.replicas`. */
  field: string;
  message: string;
}

/** Options of {@link SpecError}: `message` replaces the list made from the problems. */
export interface SpecErrorOptions extends ErrorOptions {
  message?: string;
}

/** `file:line:col: field: message`, one line per problem, under a heading. */
export function formatProblems(problems: readonly SpecProblem[]): string {
  const n = problems.length;
  const head = `launch spec refused (${n} problem${n === 1 ? "" : "s"}; nothing was started):`;
  return [head, ...problems.map((p) => `  ${p.file}:${p.line}:${p.col}: ${p.field}: ${p.message}`)].join(
    "\n",
  );
}

/**
 * A launch spec was refused (code `ERR_SPEC`); `problems` lists every reason with file, line,
 * column and field. The message lists them too, unless `options.message` gives another.
 */
export class SpecError extends MyelinError {
  declare readonly code: "ERR_SPEC";
  constructor(
    readonly problems: SpecProblem[],
    options?: SpecErrorOptions,
  ) {
    const { message, ...errorOptions } = options ?? {};
    super("ERR_SPEC", message ?? formatProblems(problems), errorOptions, SUBCLASS);
  }
}

/** The instance type of each class, by name. */
interface ErrorClasses {
  MyelinError: MyelinError;
  ValidationError: ValidationError;
  DecodeError: DecodeError;
  TimeoutError: TimeoutError;
  TypeMismatchError: TypeMismatchError;
  ServiceError: ServiceError;
  ClosedError: ClosedError;
  SpecError: SpecError;
}

/** The error type of a code, e.g. `ErrorOf<"ERR_TIMEOUT">` = `TimeoutError`. */
export type ErrorOf<C extends ErrorCode> = ErrorClasses[(typeof ERROR_CLASS_OF)[C]];

/** The constructor of each class, by name (for instanceof). */
const CLASSES: { [N in ErrorClassName]: abstract new (...args: never[]) => ErrorClasses[N] } = {
  MyelinError,
  ValidationError,
  DecodeError,
  TimeoutError,
  TypeMismatchError,
  ServiceError,
  ClosedError,
  SpecError,
};

/** The class a code is thrown as (undefined only for a string that is no code). */
function classOf(code: ErrorCode): (abstract new (...args: never[]) => MyelinError) | undefined {
  return (CLASSES as Partial<Record<string, abstract new (...args: never[]) => MyelinError>>)[
    ERROR_CLASS_OF[code]
  ];
}

/**
 * Builds the error for `code`, of the class docs/errors.md names for it: the way to make an error
 * whose code is only known at run time (a reply from a peer, a rethrow with context). An
 * `ERR_SPEC` built this way has no `problems`.
 */
export function myelinError<C extends ErrorCode>(
  code: C,
  message: string,
  options?: ErrorOptions,
): ErrorOf<C> {
  const c: ErrorCode = code;
  let err: MyelinError;
  switch (ERROR_CLASS_OF[c]) {
    case "MyelinError":
      err = new MyelinError(c as CodesOf<"MyelinError">, message, options);
      break;
    case "ValidationError":
      err = new ValidationError(c as CodesOf<"ValidationError">, message, options);
      break;
    case "DecodeError":
      err = new DecodeError(c as CodesOf<"DecodeError">, message, options);
      break;
    case "TimeoutError":
      err = new TimeoutError(c as CodesOf<"TimeoutError">, message, options);
      break;
    case "TypeMismatchError":
      err = new TypeMismatchError(c as CodesOf<"TypeMismatchError">, message, options);
      break;
    case "ServiceError":
      err = new ServiceError(c as CodesOf<"ServiceError">, message, options);
      break;
    case "ClosedError":
      err = new ClosedError(c as CodesOf<"ClosedError">, message, options);
      break;
    case "SpecError":
      err = new SpecError([], { ...options, message });
      break;
  }
  return err as ErrorOf<C>;
}

/**
 * A value as an error message shows it: never throws (a bigint, or a cyclic value from YAML
 * aliases, cannot go through JSON.stringify) and is never long (strings are cut at `maxChars`).
 */
export function showValue(v: unknown, maxChars = 40): string {
  if (typeof v === "string")
    return v.length <= maxChars
      ? JSON.stringify(v)
      : `${JSON.stringify(v.slice(0, maxChars))}… (${v.length} chars)`;
  if (
    v === null ||
    v === undefined ||
    typeof v === "number" ||
    typeof v === "boolean" ||
    typeof v === "bigint"
  )
    return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === "object") return "a map";
  return typeof v;
}
