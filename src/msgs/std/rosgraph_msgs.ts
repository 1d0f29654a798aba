/** ROS `rosgraph_msgs`: `Clock`, the simulated time a player publishes on `/clock`. */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";

/** The current time of a simulation or a played-back recording. */
const Clock = defineMessage("rosgraph_msgs/Clock", { clock: t.time() });

/** The types of the `rosgraph_msgs` package, each with an explicit type (see `BuiltinInterfaces`). */
export interface RosgraphMsgs {
  readonly Clock: typeof Clock;
}

/** The `rosgraph_msgs` package: `Clock`. */
export const rosgraph_msgs: RosgraphMsgs = Object.freeze({ Clock });

for (const type of Object.values(rosgraph_msgs)) registerType(type);
