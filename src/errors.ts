/**
 * Errors thrown by Myelin. Every error has a stable `code` (listed in docs/errors.md); callers
 * branch on `code` or `instanceof`, never on the message text. Messages say what happened, to
 * what, and how to fix it.
 */

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
  "ERR_PROTOCOL",
  "ERR_PARAMETER",
  "ERR_STORAGE",
  "ERR_STATE_CORRUPT",
  "ERR_BAD_CONFIG",
  "ERR_SPEC",
  "ERR_UNKNOWN_NODE",
  "ERR_PROCESS_FAILED",
  "ERR_QUEUE_FULL",
  "ERR_BROKER",
  "ERR_UNAVAILABLE",
  "ERR_LOCKED",
] as const;

/** A stable error code; see docs/errors.md. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Base class of every error Myelin throws. */
export class MyelinError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A value failed its schema: wrong type, missing field, out of range. */
export class ValidationError extends MyelinError {}
/** Bytes could not be decoded as a message or frame. */
export class DecodeError extends MyelinError {}
/** Something did not answer in time. */
export class TimeoutError extends MyelinError {}
/** A topic or service was used with a type other than the one it has. */
export class TypeMismatchError extends MyelinError {}
/** A service call failed: no server, or the server reported an error. */
export class ServiceError extends MyelinError {}
/** The resource was closed before or during the operation. */
export class ClosedError extends MyelinError {}

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
