/**
 * DATA as people type it (on the command line, in the dashboard): JSON or YAML text, parsed to a
 * plain value before `fromJson` converts and validates it against a type.
 */
import { yaml } from "./yaml.js";
import { MyelinError } from "../errors.js";

/** Turns integers YAML read as bigint into numbers when safe, else into decimal strings (the JSON form of u64/i64). */
function normalizeInts(v: unknown): unknown {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (Array.isArray(v)) return v.map(normalizeInts);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalizeInts(x)]));
  }
  return v;
}

/**
 * Parses DATA given on the command line: JSON or YAML (`'{data: hello}'`, `'{"x": 1}'`, `'x: 1'`).
 * Empty text is `{}`.
 * @throws MyelinError ERR_INVALID_ARGUMENT when it is neither
 */
export function parseData(text: string, what: string): unknown {
  if (text.trim() === "") return {};
  let v: unknown;
  try {
    v = yaml().parse(text, { intAsBigInt: true });
  } catch (err) {
    const first = ((err as Error).message ?? String(err)).split("\n")[0]!.replace(/:\s*$/, "");
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${what} is not valid JSON or YAML: ${first}`, {
      cause: err,
    });
  }
  return v === null || v === undefined ? {} : normalizeInts(v);
}
