/**
 * A strict reader of the Prometheus text exposition format 0.0.4 (and the subset of OpenMetrics
 * 1.0 the hub writes), for the metrics tests: every line must be a `# HELP`, a `# TYPE` or a
 * sample of a family whose TYPE came before it; names and labels must be valid; label values must
 * be escaped; a series may appear once; values must be numbers. Anything else throws, naming the
 * line.
 */

/** One parsed exposition. */
export interface Exposition {
  /** Family name → its type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  /** Family name → its help text. */
  help: Map<string, string>;
  /** Series key (`name{a="x",b="y"}`, labels sorted) → value. */
  samples: Map<string, number>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped", "unknown"]);

/** The key of a series: its name and sorted labels. */
export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const ls = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return ls.length === 0 ? name : `${name}{${ls.join(",")}}`;
}

function parseValue(v: string, where: string): number {
  if (v === "+Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  if (v === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) throw new Error(`${where}: '${v}' is not a number`);
  return Number(v);
}

/** The family a sample name belongs to (histogram and summary parts, OpenMetrics `_total`). */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ["_bucket", "_sum", "_count", "_total", "_created"]) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      if (types.has(base)) return base;
    }
  }
  return undefined;
}

/**
 * Parses `text`.
 * @param openMetrics expect the OpenMetrics ending `# EOF`
 * @throws Error naming the line that breaks the format
 */
export function parseExposition(text: string, openMetrics = false): Exposition {
  const out: Exposition = { types: new Map(), help: new Map(), samples: new Map() };
  if (!text.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (openMetrics) {
    if (lines[lines.length - 1] !== "# EOF") throw new Error("an OpenMetrics exposition ends with '# EOF'");
    lines.pop();
  }
  lines.forEach((line, i) => {
    const where = `line ${i + 1} '${line.slice(0, 120)}'`;
    if (line === "") {
      if (openMetrics) throw new Error(`${where}: OpenMetrics has no empty lines`);
      return;
    }
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) {
        if (openMetrics) throw new Error(`${where}: not a HELP or TYPE line`);
        return; // a comment
      }
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`${where}: '${name}' is not a metric name`);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`${where}: '${rest}' is not a metric type`);
        if (out.types.has(name)) throw new Error(`${where}: a second TYPE for ${name}`);
        out.types.set(name, rest);
      } else {
        if (out.help.has(name)) throw new Error(`${where}: a second HELP for ${name}`);
        out.help.set(name, rest);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line);
    if (m === null) throw new Error(`${where}: not a sample line`);
    const [, name, rawLabels, value] = m as unknown as [string, string, string | undefined, string];
    const family = familyOf(name, out.types);
    if (family === undefined) throw new Error(`${where}: sample of ${name} before its TYPE`);
    const labels: Record<string, string> = {};
    if (rawLabels !== undefined) {
      let rest = rawLabels.slice(1, -1);
      while (rest !== "") {
        const lm = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,?)/.exec(rest);
        if (lm === null) throw new Error(`${where}: bad labels at '${rest}'`);
        const [all, k, v] = lm as unknown as [string, string, string];
        if (!LABEL.test(k)) throw new Error(`${where}: '${k}' is not a label name`);
        if (k in labels) throw new Error(`${where}: label ${k} twice`);
        labels[k] = v.replace(/\\(["\\n])/g, (_x, c: string) => (c === "n" ? "\n" : c));
        rest = rest.slice(all.length);
      }
    }
    const key = seriesKey(name, labels);
    if (out.samples.has(key)) throw new Error(`${where}: series ${key} appears twice`);
    out.samples.set(key, parseValue(value, where));
  });
  return out;
}

/** The value of a series, or undefined when it is not there. */
export function sample(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  return e.samples.get(seriesKey(name, labels));
}
