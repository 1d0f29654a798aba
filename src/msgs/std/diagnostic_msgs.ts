/** ROS `diagnostic_msgs`: the health of hardware and software components. */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";
import { std_msgs } from "./std_msgs.js";

/** Levels of {@link diagnostic_msgs}.DiagnosticStatus (a byte in ROS). */
export const DiagnosticLevel = Object.freeze({ OK: 0, WARN: 1, ERROR: 2, STALE: 3 } as const);

/** A key and a value, both strings. */
const KeyValue = defineMessage("diagnostic_msgs/KeyValue", { key: t.string(), value: t.string() });
/** The status of one component: `level` (OK, WARN, ERROR, STALE), `name`, `message`, `hardware_id`, `values`. */
const DiagnosticStatus = defineMessage("diagnostic_msgs/DiagnosticStatus", {
  level: t.enum(DiagnosticLevel),
  name: t.string(),
  message: t.string(),
  hardware_id: t.string(),
  values: t.array(t.msg(KeyValue)),
});
/** The statuses of many components: `header`, `status` (DiagnosticStatus[]). */
const DiagnosticArray = defineMessage("diagnostic_msgs/DiagnosticArray", {
  header: t.msg(std_msgs.Header),
  status: t.array(t.msg(DiagnosticStatus)),
});

/**
 * The types of the `diagnostic_msgs` package. Each property is declared with an explicit type so that
 * `diagnostic_msgs.KeyValue.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface DiagnosticMsgs {
  readonly KeyValue: typeof KeyValue;
  readonly DiagnosticStatus: typeof DiagnosticStatus;
  readonly DiagnosticArray: typeof DiagnosticArray;
}

/** The `diagnostic_msgs` package. */
export const diagnostic_msgs: DiagnosticMsgs = Object.freeze({ KeyValue, DiagnosticStatus, DiagnosticArray });

for (const type of Object.values(diagnostic_msgs)) registerType(type);
