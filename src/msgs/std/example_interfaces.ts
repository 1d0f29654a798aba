/** ROS `example_interfaces`: the `AddTwoInts` service used in tutorials and tests. */
import { defineService, t } from "../schema.js";
import { registerType } from "../registry.js";

/** `a + b`: request `{ a, b }` (i64), response `{ sum }` (i64). */
const AddTwoInts = defineService(
  "example_interfaces/AddTwoInts",
  { a: t.i64(), b: t.i64() },
  { sum: t.i64() },
);

/**
 * The types of the `example_interfaces` package. Each property is declared with an explicit type so that
 * `example_interfaces.AddTwoInts.request.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface ExampleInterfaces {
  readonly AddTwoInts: typeof AddTwoInts;
}

/** The `example_interfaces` package (only `AddTwoInts`). */
export const example_interfaces: ExampleInterfaces = Object.freeze({ AddTwoInts });

for (const type of Object.values(example_interfaces)) registerType(type);
