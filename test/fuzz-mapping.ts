/**
 * Generators of valid mapping rules (MQTT gateway and bridges) for the fuzz suite: a Myelin
 * pattern and an external pattern with the same wildcards in the same order.
 */
import fc from "fast-check";
import type { ExternalSyntax, MappingSpec } from "../src/gateway/mapping.js";

/** A literal level valid on every side (no '.', which NATS and AMQP use as a separator). */
export const levelArb: fc.Arbitrary<string> = fc.stringMatching(/^[a-z0-9_~-]{1,6}$/);

const WILD: Record<ExternalSyntax, { one: string; rest: string; sep: string }> = {
  mqtt: { one: "+", rest: "#", sep: "/" },
  nats: { one: "*", rest: ">", sep: "." },
  amqp: { one: "*", rest: "#", sep: "." },
  kafka: { one: "*", rest: "#", sep: "." },
};

/** Shape of a pattern: levels (literal, or "+" for one level), maybe a trailing `#`. */
export type Shape = { levels: string[]; rest: boolean };

export const shapeArb: fc.Arbitrary<Shape> = fc.record(
  {
    levels: fc.array(fc.oneof(levelArb, fc.constant("+" as const)), { minLength: 1, maxLength: 4 }),
    rest: fc.boolean(),
  },
  { noNullPrototype: true },
);

export function myelinPattern(s: Shape): string {
  return "/" + [...s.levels, ...(s.rest ? ["#"] : [])].join("/");
}

/** The external pattern of a shape: the same wildcards, other literals allowed. */
export function externalPattern(s: Shape, syntax: ExternalSyntax, lits: readonly string[] = []): string {
  const w = WILD[syntax];
  let k = 0;
  const levels = s.levels.map((l) => (l === "+" ? w.one : (lits[k++] ?? l)));
  if (s.rest) levels.push(w.rest);
  return levels.join(w.sep);
}

/** Message types the mapping fuzz uses (registered standard types); RawPayload goes with format raw. */
export const MAPPED_TYPES = [
  "std_msgs/String",
  "std_msgs/Float64",
  "sensor_msgs/Temperature",
  "geometry_msgs/Twist",
];

/** A valid rule for `syntax`. */
export function ruleArb(syntax: ExternalSyntax): fc.Arbitrary<MappingSpec> {
  return fc
    .record(
      {
        shape: shapeArb,
        lits: fc.array(levelArb, { maxLength: 4 }),
        raw: fc.boolean(),
        type: fc.constantFrom(...MAPPED_TYPES),
        direction: fc.option(fc.constantFrom("in" as const, "out" as const, "both" as const), {
          nil: undefined,
        }),
        qos: fc.option(fc.constantFrom(0 as const, 1 as const, 2 as const), { nil: undefined }),
      },
      { noNullPrototype: true },
    )
    .map(({ shape, lits, raw, type, direction, qos }) => {
      const r: MappingSpec = {
        myelin: myelinPattern(shape),
        external: externalPattern(shape, syntax, lits),
        type: raw ? "myelin_msgs/RawPayload" : type,
      };
      if (raw) r.format = "raw";
      if (direction !== undefined) r.direction = direction;
      if (qos !== undefined) r.qos = qos;
      return r;
    });
}
