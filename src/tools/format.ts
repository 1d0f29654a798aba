/**
 * Output helpers of the CLI: a YAML-like rendering of messages (type-aware when the type is known),
 * aligned tables and "did you mean" suggestions. No I/O.
 */
import type { AnyField, MessageType } from "../msgs/index.js";

/** Options of {@link renderMessage}. */
export interface RenderOptions {
  /** Arrays longer than this show only their first `maxArray` elements. */
  maxArray: number;
  /** Bytes fields show this many leading bytes in hex. */
  bytesPreview: number;
  /** Strings longer than this are cut, in characters. */
  maxString: number;
}

/** Defaults of RenderOptions. */
export const RENDER_DEFAULTS: Readonly<RenderOptions> = Object.freeze({
  maxArray: 32,
  bytesPreview: 16,
  maxString: 512,
});

const PLAIN = /^[A-Za-z_/][A-Za-z0-9_ ./:@+()-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|~|y|n)$/i;

function renderString(s: string, o: RenderOptions): string {
  const cut = s.length > o.maxString;
  const shown = cut ? s.slice(0, o.maxString) : s;
  const text =
    PLAIN.test(shown) && !RESERVED.test(shown) && !shown.endsWith(" ") ? shown : JSON.stringify(shown);
  return cut ? `${text}… (${s.length} chars)` : text;
}

/** `<N bytes> 0a 1b 2c …`: the size and a hex preview of a byte string. */
export function renderBytes(b: Uint8Array, preview: number = RENDER_DEFAULTS.bytesPreview): string {
  if (b.byteLength === 0) return "<0 bytes>";
  const n = Math.min(preview, b.byteLength);
  let hex = "";
  for (let i = 0; i < n; i++) hex += (i === 0 ? "" : " ") + b[i]!.toString(16).padStart(2, "0");
  return `<${b.byteLength} bytes> ${hex}${b.byteLength > n ? " …" : ""}`;
}

function renderNumber(v: number, field: AnyField | undefined): string {
  if (Number.isNaN(v)) return ".nan";
  if (v === Infinity) return ".inf";
  if (v === -Infinity) return "-.inf";
  if (field !== undefined && (field.kind === "f32" || field.kind === "f64") && Number.isInteger(v))
    return `${v}.0`;
  if (field?.kind === "enum") {
    const name = Object.entries(field.values).find(([, n]) => n === v)?.[0];
    if (name !== undefined) return `${v}  # ${name}`;
  }
  return String(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The field describing the elements/inner value, unwrapping `optional`. */
function unwrap(field: AnyField | undefined): AnyField | undefined {
  return field?.kind === "optional" ? (field.of as AnyField) : field;
}

/** Inline text of a scalar, or undefined if `v` needs a block (object, array of objects). */
function inline(v: unknown, field: AnyField | undefined, o: RenderOptions): string | undefined {
  const f = unwrap(field);
  if (v === null) return "null";
  if (v === undefined) return "~";
  switch (typeof v) {
    case "string":
      return renderString(v, o);
    case "number":
      return renderNumber(v, f);
    case "bigint":
    case "boolean":
      return String(v);
    case "object":
      break;
    default:
      return `<${typeof v}>`;
  }
  if (v instanceof Uint8Array) return renderBytes(v, o.bytesPreview);
  if (ArrayBuffer.isView(v)) return `<${v.constructor.name} ${v.byteLength} bytes>`;
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    const elem = f?.kind === "array" ? (f.of as AnyField) : undefined;
    const shown = v.slice(0, o.maxArray);
    const parts: string[] = [];
    for (const e of shown) {
      const s = inline(e, elem, o);
      if (s === undefined || s.includes("  # ")) return undefined;
      parts.push(s);
    }
    if (v.length > shown.length)
      return `[${parts.join(", ")}, …]  # ${v.length} items, first ${shown.length} shown`;
    return `[${parts.join(", ")}]`;
  }
  if (isPlainObject(v) && Object.keys(v).length === 0) return "{}";
  return undefined;
}

function fieldsOf(field: AnyField | undefined): Readonly<Record<string, unknown>> | undefined {
  const f = unwrap(field);
  return f?.kind === "msg" ? f.type.fields : undefined;
}

function block(
  v: unknown,
  field: AnyField | undefined,
  indent: string,
  o: RenderOptions,
  out: string[],
): void {
  const f = unwrap(field);
  if (Array.isArray(v)) {
    const elem = f?.kind === "array" ? (f.of as AnyField) : undefined;
    const shown = v.slice(0, o.maxArray);
    for (const e of shown) {
      const s = inline(e, elem, o);
      if (s !== undefined) {
        out.push(`${indent}- ${s}`);
        continue;
      }
      const sub: string[] = [];
      block(e, elem, `${indent}  `, o, sub);
      if (sub.length === 0) out.push(`${indent}- {}`);
      else out.push(`${indent}- ${sub[0]!.slice(indent.length + 2)}`, ...sub.slice(1));
    }
    if (v.length > shown.length) out.push(`${indent}# … ${v.length - shown.length} more (${v.length} items)`);
    return;
  }
  if (!isPlainObject(v)) {
    out.push(`${indent}${inline(v, f, o) ?? String(v)}`);
    return;
  }
  const fields = fieldsOf(f);
  const keys =
    fields === undefined
      ? Object.keys(v)
      : [...Object.keys(fields), ...Object.keys(v).filter((k) => !(k in fields))];
  for (const k of keys) {
    const value = v[k];
    const kf = fields?.[k] as AnyField | undefined;
    if (value === undefined && kf?.kind === "optional") continue;
    if (value === undefined && !(k in v)) continue;
    const s = inline(value, kf, o);
    if (s !== undefined) {
      out.push(`${indent}${k}: ${s}`);
      continue;
    }
    out.push(`${indent}${k}:`);
    block(value, kf, Array.isArray(value) ? indent : `${indent}  `, o, out);
  }
}

/**
 * Renders a message as YAML-like lines, like `ros2 topic echo`: nested messages indented, bytes as
 * `<N bytes>` with a hex preview, long arrays and strings cut. With `type`, fields come in declaration
 * order, whole floats show as `1.0` and enum values carry their name as a comment.
 */
export function renderMessage(
  msg: unknown,
  type: MessageType<unknown> | undefined,
  opts: Partial<RenderOptions> = {},
): string[] {
  const o: RenderOptions = { ...RENDER_DEFAULTS, ...opts };
  const field = type === undefined ? undefined : ({ kind: "msg", type } as AnyField);
  const s = inline(msg, field, o);
  if (s !== undefined) return [s];
  const out: string[] = [];
  block(msg, field, "", o, out);
  return out;
}

/** Aligns `rows` under `header` in columns separated by two spaces; the last column is not padded. */
export function table(header: string[], rows: string[][]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

/** Edit distance between `a` and `b` (insertions, deletions, substitutions, each 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * Up to `max` candidates close to `word`: by edit distance (at most a third of the word, at least 2),
 * or containing it (case-insensitively), closest first.
 */
export function closeMatches(word: string, candidates: Iterable<string>, max = 3): string[] {
  const w = word.toLowerCase();
  const limit = Math.max(2, Math.floor(w.length / 3));
  const scored: [string, number][] = [];
  for (const c of candidates) {
    const lc = c.toLowerCase();
    const tail = lc.slice(lc.lastIndexOf("/") + 1);
    const d = Math.min(editDistance(w, lc), editDistance(w, tail) + 1);
    if (d <= limit) scored.push([c, d]);
    else if (w.length >= 3 && lc.includes(w)) scored.push([c, limit + 1]);
  }
  scored.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  return scored.slice(0, max).map(([c]) => c);
}

/** `" (did you mean 'a' or 'b'?)"`, or `""` when there is nothing close. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const m = closeMatches(word, candidates);
  if (m.length === 0) return "";
  const quoted = m.map((x) => `'${x}'`);
  const last = quoted.pop()!;
  return ` (did you mean ${quoted.length > 0 ? `${quoted.join(", ")} or ${last}` : last}?)`;
}

/** `reliable, volatile, depth 10` */
export function describeQos(q: { reliability: string; durability: string; depth: number }): string {
  return `${q.reliability}, ${q.durability}, depth ${q.depth}`;
}

/** Local wall-clock time `HH:MM:SS.mmm`, for log lines. */
export function clock(d: Date = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** How long ago `ms` (ms since the epoch) was: "42s", "5m", "3h". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}
