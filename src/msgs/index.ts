/**
 * The `msgs` layer: the schema builder, the type registry and the standard message library. Importing
 * this module registers every standard type.
 */
export {
  defineMessage,
  defineService,
  isMessageType,
  isServiceType,
  MAX_VALIDATION_ERRORS,
  t,
  typeSignature,
  type AnyField,
  type ArrayField,
  type ArrayOptions,
  type DeepPartial,
  type Duration,
  type EnumField,
  type Field,
  type FieldKind,
  type FieldValue,
  type InferMessage,
  type JsonSchema,
  type MessageOf,
  type MessageType,
  type MsgField,
  type OptionalField,
  type RequestOf,
  type ResponseOf,
  type ScalarField,
  type ScalarKind,
  type ScalarOptions,
  type ServiceType,
  type Time,
  type ValidationIssue,
  type ValidationResult,
  type SmallIntKind,
  INT_RANGES,
} from "./schema.js";
export * from "./registry.js";
export * from "./time.js";
export {
  describeMessageType,
  messageTypeFromDescription,
  type FieldDescription,
  type TypeDescription,
} from "./type-description.js";
export { builtin_interfaces, type BuiltinInterfaces } from "./std/builtin_interfaces.js";
export { std_msgs, type StdMsgs } from "./std/std_msgs.js";
export { geometry_msgs, type GeometryMsgs } from "./std/geometry_msgs.js";
export { sensor_msgs, sensor_msgs_constants, type SensorMsgs } from "./std/sensor_msgs.js";
export { vision_msgs, type VisionMsgs } from "./std/vision_msgs.js";
export { diagnostic_msgs, DiagnosticLevel, type DiagnosticMsgs } from "./std/diagnostic_msgs.js";
export { rcl_interfaces, LogLevel, type RclInterfaces } from "./std/rcl_interfaces.js";
export { example_interfaces, type ExampleInterfaces } from "./std/example_interfaces.js";
export { std_srvs, type StdSrvs } from "./std/std_srvs.js";
export { myelin_msgs, type MyelinMsgs } from "./std/myelin_msgs.js";
export { rosgraph_msgs, type RosgraphMsgs } from "./std/rosgraph_msgs.js";
