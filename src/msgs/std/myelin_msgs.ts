/**
 * `myelin_msgs`: the runtime's own services. Every node with parameters serves
 * `/<node>/list_parameters` and `/<node>/set_parameter`; values travel as JSON text so one type
 * serves every parameter kind.
 */
import { defineService, t } from "../schema.js";
import { registerType } from "../registry.js";

/** Lists a node's parameters: names, kinds, current values (JSON), descriptions. */
const ListParameters = defineService(
  "myelin_msgs/ListParameters",
  {},
  {
    names: t.array(t.string()),
    kinds: t.array(t.string()),
    values_json: t.array(t.string()),
    descriptions: t.array(t.string()),
  },
);
/** Sets one parameter from its JSON value; `success` false with the `reason` when refused. */
const SetParameter = defineService(
  "myelin_msgs/SetParameter",
  { name: t.string(), value_json: t.string() },
  { success: t.bool(), reason: t.string(), value_json: t.string() },
);

/** The types of the `myelin_msgs` package (explicit, so `assert` can narrow). */
export interface MyelinMsgs {
  readonly ListParameters: typeof ListParameters;
  readonly SetParameter: typeof SetParameter;
}

/** The `myelin_msgs` package. */
export const myelin_msgs: MyelinMsgs = Object.freeze({ ListParameters, SetParameter });

for (const type of Object.values(myelin_msgs)) registerType(type);
