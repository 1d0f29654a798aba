/**
 * Myelin's public API: what a program written against the `myelin` package may import. Everything
 * else (the layers' internals: the durable log, sockets, flow control, the supervisor, the bridge
 * engine) is reached only from inside the package and may change in any release.
 *
 * The exact list of names is pinned by src/index.test.ts: adding or removing one is a decision,
 * made there on purpose (see docs/architecture.md, "The public API").
 */

// Errors: stable codes, one class per code (docs/errors.md).
export {
  ERROR_CODES,
  ERROR_CLASS_OF,
  isErrorCode,
  myelinError,
  MyelinError,
  ValidationError,
  DecodeError,
  TimeoutError,
  TypeMismatchError,
  ServiceError,
  ClosedError,
  SpecError,
  type ErrorCode,
  type ErrorClassName,
  type ErrorOf,
  type CodesOf,
  type SpecProblem,
  type SourcePos,
  type SpecErrorOptions,
} from "./errors.js";

// Messages: the schema builder, the registry, time helpers and the standard library.
export {
  defineMessage,
  defineService,
  isMessageType,
  isServiceType,
  t,
  registerType,
  lookupType,
  lookupService,
  listTypes,
  listServices,
  timeNow,
  timeFromMillis,
  timeToMillis,
  durationFromMillis,
  durationToMillis,
  builtin_interfaces,
  std_msgs,
  geometry_msgs,
  sensor_msgs,
  sensor_msgs_constants,
  vision_msgs,
  diagnostic_msgs,
  DiagnosticLevel,
  rcl_interfaces,
  LogLevel,
  example_interfaces,
  std_srvs,
  rosgraph_msgs,
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
  type BuiltinInterfaces,
  type StdMsgs,
  type GeometryMsgs,
  type SensorMsgs,
  type VisionMsgs,
  type DiagnosticMsgs,
  type RclInterfaces,
  type ExampleInterfaces,
  type StdSrvs,
  type RosgraphMsgs,
} from "./msgs/index.js";

// Encoding messages by hand (docs/messages.md): msgpack, large binary frames, JSON.
export {
  msgpackCodec,
  jsonCodec,
  encodeFrames,
  decodeFrames,
  DEFAULT_BLOB_THRESHOLD,
  toJson,
  fromJson,
  type Codec,
} from "./codec/index.js";

// Nodes: publishers, subscriptions, services and clients, parameters, durable consumers, QoS.
export {
  createNode,
  Node,
  Publisher,
  Subscription,
  ServiceServer,
  ServiceClient,
  Parameter,
  DurableConsumer,
  QOS_DEFAULT,
  QOS_SENSOR_DATA,
  QOS_LATCHED,
  type NodeOptions,
  type NodeEvents,
  type PublisherOptions,
  type SubscriptionOptions,
  type ClientOptions,
  type PublisherStats,
  type PublishOptions,
  type WithOptionalHeader,
  type MessageInfo,
  type Received,
  type SubscriptionStats,
  type RawMessage,
  type Overflow,
  type MessageHandler,
  type ServiceHandler,
  type ServiceContext,
  type CallOptions,
  type ServiceOptions,
  type ServiceClientEvents,
  type BalancePolicy,
  type ReplicaStats,
  type BreakerEvent,
  type BreakerOptions,
  type BreakerState,
  type RetryBudgetOptions,
  type ParameterKind,
  type ParameterSpec,
  type Qos,
  type DurableConsumerOptions,
  type DurableMessage,
  type DurableStart,
  type DurableConsumerStats,
  type GraphSnapshot,
  type NodeRecord,
  type TopicDecl,
  type ServiceDecl,
  type NodeStatus,
  type PublisherStatus,
  type RemoteSubscriberStatus,
  type SubscriptionStatus,
} from "./node/index.js";

// Shared memory for large frames on one host: status and counters.
export { shmStats, type ShmStats } from "./transport/shm/shm-stats.js";
export type { ShmWriterStats } from "./transport/shm/shm-writer.js";
export type { ShmReaderStats } from "./transport/shm/shm-reader.js";

// The hub, the store, the launch spec and the gateway: the classes come from their layers' small
// `*-api` modules and load their implementation on `start()`, and the functions come from the
// modules that define them, so a program that imports this package only to make nodes does not
// evaluate the hub, the store, the supervisor or the gateway (docs/performance.md).

// The hub, and the store of durable topics when a program embeds it.
export { Hub } from "./hub/hub-api.js";
export type { HubOptions } from "./hub/index.js";
export { loadPolicyFile, parsePolicy } from "./hub/policy-file.js";
export { AccessPolicy, type PolicyDoc, type Permission } from "./node/index.js";
export { StoreService } from "./store/service-api.js";
export type {
  StoreServiceOptions,
  FsyncPolicy,
  RetentionOptions,
  TopicConfig,
  TopicConfigRule,
  TopicRetention,
  RetentionMode,
} from "./store/index.js";

// Launching: the spec `myelin up` reads, and what a node module run by the supervisor exports.
export { replicaNodeName } from "./node/index.js";
export { loadSpec } from "./orchestrator/spec.js";
export type {
  LoadSpecOptions,
  LaunchSpec,
  UnitSpec,
  UnitDependency,
  ModuleEntry,
  RestartSpec,
  HealthSpec,
  ProbeSpec,
  LimitsSpec,
  LaunchContext,
  NodeMain,
} from "./orchestrator/index.js";

// The MQTT gateway with its device twins, and the bridges to external brokers, with their configuration.
export { MqttGateway } from "./gateway/mqtt-gateway-api.js";
export { hashPassword } from "./gateway/mqtt-auth.js";
export { loadGatewayConfig } from "./gateway/gateway-config.js";
export { startBridge, BridgeHost } from "./gateway/bridge-host-api.js";
export { loadBridgeConfig } from "./gateway/bridge-config.js";
export { TwinClient } from "./gateway/twin-client.js";
export type {
  MqttGatewayOptions,
  MqttListeners,
  TcpListenerOptions,
  TlsListenerOptions,
  WsListenerOptions,
  GatewayStatus,
  GatewayConfig,
  AuthSpec,
  UserSpec,
  AclSpec,
  CertificateSpec,
  Principal,
  MqttLimits,
  MappingSpec,
  MappingDirection,
  PayloadFormat,
  ExternalSyntax,
  StartBridgeOptions,
  BridgeHostOptions,
  Bridge,
  BridgeState,
  BridgeStatus,
  BridgeConfig,
  BridgeKind,
  BridgeConfigBase,
  BridgeQueueConfig,
  BridgeReconnectConfig,
  MqttBridgeConfig,
  NatsBridgeConfig,
  NatsJetStreamConfig,
  AmqpBridgeConfig,
  // Device twins
  TwinClientOptions,
  DeviceTwin,
  TwinSummary,
  TwinListOptions,
  TwinListPage,
  TwinSetOptions,
  TwinUpdateEvent,
  TwinOptions,
  JsonObject,
  JsonValue,
} from "./gateway/index.js";
