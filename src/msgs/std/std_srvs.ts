/** ROS `std_srvs`: services with no or trivial arguments. */
import { defineService, t } from "../schema.js";
import { registerType } from "../registry.js";

/** No request, no response fields. */
const Empty = defineService("std_srvs/Empty", {}, {});
/** Do something: no request; response `success` and a `message`. */
const Trigger = defineService("std_srvs/Trigger", {}, { success: t.bool(), message: t.string() });
/** Set a flag: request `data`; response `success` and a `message`. */
const SetBool = defineService(
  "std_srvs/SetBool",
  { data: t.bool() },
  { success: t.bool(), message: t.string() },
);

/**
 * The types of the `std_srvs` package. Each property is declared with an explicit type so that
 * `std_srvs.Trigger.response.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface StdSrvs {
  readonly Empty: typeof Empty;
  readonly Trigger: typeof Trigger;
  readonly SetBool: typeof SetBool;
}

/** The `std_srvs` package. */
export const std_srvs: StdSrvs = Object.freeze({ Empty, Trigger, SetBool });

for (const type of Object.values(std_srvs)) registerType(type);
