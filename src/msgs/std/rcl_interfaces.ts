/** ROS `rcl_interfaces`: the log record (`/rosout`). */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";

/** Severity levels of {@link rcl_interfaces}.Log, as in ROS (a byte). */
export const LogLevel = Object.freeze({ DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40, FATAL: 50 } as const);

/**
 * A log record: `stamp`, `level`, logger `name`, `msg`, and the source `file`, `function` and `line`.
 */
const Log = defineMessage("rcl_interfaces/Log", {
  stamp: t.time(),
  level: t.enum(LogLevel),
  name: t.string(),
  msg: t.string(),
  file: t.string(),
  function: t.string(),
  line: t.u32(),
});

/**
 * The types of the `rcl_interfaces` package. Each property is declared with an explicit type so that
 * `rcl_interfaces.Log.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface RclInterfaces {
  readonly Log: typeof Log;
}

/** The `rcl_interfaces` package (only `Log`). */
export const rcl_interfaces: RclInterfaces = Object.freeze({ Log });

for (const type of Object.values(rcl_interfaces)) registerType(type);
