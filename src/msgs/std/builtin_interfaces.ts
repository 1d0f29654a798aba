/** ROS `builtin_interfaces`: `Time` and `Duration` as message types (fields use `t.time()`/`t.duration()`). */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";

/** A point in time: `sec` (i32) and `nanosec` (u32) since the Unix epoch. */
const Time = defineMessage("builtin_interfaces/Time", { sec: t.i32(), nanosec: t.u32() });
/** A span of time: `sec` (i32) and `nanosec` (u32). */
const Duration = defineMessage("builtin_interfaces/Duration", { sec: t.i32(), nanosec: t.u32() });

/**
 * The types of the `builtin_interfaces` package. Each property is declared with an explicit type so that
 * `builtin_interfaces.Time.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface BuiltinInterfaces {
  readonly Time: typeof Time;
  readonly Duration: typeof Duration;
}

/** The `builtin_interfaces` package: `Time`, `Duration`. */
export const builtin_interfaces: BuiltinInterfaces = Object.freeze({ Time, Duration });

for (const type of Object.values(builtin_interfaces)) registerType(type);
