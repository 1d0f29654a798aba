/**
 * The `msgs` layer: the schema builder, the type registry and the standard message library. Importing
 * this module registers every standard type.
 */
export * from "./schema.js";
export * from "./registry.js";
export * from "./time.js";
export { builtin_interfaces, type BuiltinInterfaces } from "./std/builtin_interfaces.js";
export { std_msgs, type StdMsgs } from "./std/std_msgs.js";
export { geometry_msgs, type GeometryMsgs } from "./std/geometry_msgs.js";
export { sensor_msgs, sensor_msgs_constants, type SensorMsgs } from "./std/sensor_msgs.js";
export { vision_msgs, type VisionMsgs } from "./std/vision_msgs.js";
export { diagnostic_msgs, DiagnosticLevel, type DiagnosticMsgs } from "./std/diagnostic_msgs.js";
export { rcl_interfaces, LogLevel, type RclInterfaces } from "./std/rcl_interfaces.js";
export { example_interfaces, type ExampleInterfaces } from "./std/example_interfaces.js";
export { std_srvs, type StdSrvs } from "./std/std_srvs.js";
