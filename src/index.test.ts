/**
 * Pins Myelin's public API: the exact names src/index.ts exports. A name that appears here is a
 * promise to users (removing or changing it is a breaking change); a layer's internals must not
 * leak through. When this test fails, decide on purpose: either stop exporting the name, or add it
 * to PUBLIC_VALUES / PUBLIC_TYPES below in the same commit and say why (docs/architecture.md,
 * "The public API").
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import ts from "typescript";
import * as api from "./index.js";
import { ERROR_CLASS_OF } from "./errors.js";

/** Values (functions, classes, constants, message packages) a user may import from "myelin". */
const PUBLIC_VALUES = [
  // errors
  "ERROR_CODES",
  "ERROR_CLASS_OF",
  "isErrorCode",
  "myelinError",
  "MyelinError",
  "ValidationError",
  "DecodeError",
  "TimeoutError",
  "TypeMismatchError",
  "ServiceError",
  "ClosedError",
  "SpecError",
  // messages
  "defineMessage",
  "defineService",
  "isMessageType",
  "isServiceType",
  "t",
  "registerType",
  "lookupType",
  "lookupService",
  "listTypes",
  "listServices",
  "timeNow",
  "timeFromMillis",
  "timeToMillis",
  "durationFromMillis",
  "durationToMillis",
  "builtin_interfaces",
  "std_msgs",
  "geometry_msgs",
  "sensor_msgs",
  "sensor_msgs_constants",
  // shared memory for large frames: whether it is on, and its counters
  "shmStats",
  "vision_msgs",
  "diagnostic_msgs",
  "DiagnosticLevel",
  "rcl_interfaces",
  "LogLevel",
  "example_interfaces",
  "std_srvs",
  "rosgraph_msgs",
  // codecs
  "msgpackCodec",
  "jsonCodec",
  "encodeFrames",
  "decodeFrames",
  "DEFAULT_BLOB_THRESHOLD",
  "toJson",
  "fromJson",
  // nodes and QoS
  "createNode",
  "Node",
  "Publisher",
  "Subscription",
  "ServiceServer",
  "ServiceClient",
  "Parameter",
  "DurableConsumer",
  "QOS_DEFAULT",
  "QOS_SENSOR_DATA",
  "QOS_LATCHED",
  // hub, store, launch
  "Hub",
  // permissions: the policy file and its checks (docs/security.md)
  "AccessPolicy",
  "parsePolicy",
  "loadPolicyFile",
  "StoreService",
  "loadSpec",
  "replicaNodeName",
  // MQTT gateway and bridges
  "MqttGateway",
  "hashPassword",
  "loadGatewayConfig",
  "startBridge",
  "TwinClient",
  "BridgeHost",
  "loadBridgeConfig",
];

/** Types (interfaces and aliases) a user may import from "myelin". */
const PUBLIC_TYPES = [
  // errors
  "ErrorCode",
  "ErrorClassName",
  "ErrorOf",
  "CodesOf",
  "SpecProblem",
  "SourcePos",
  "SpecErrorOptions",
  // messages
  "AnyField",
  "ArrayField",
  "ArrayOptions",
  "DeepPartial",
  "Duration",
  "EnumField",
  "Field",
  "FieldKind",
  "FieldValue",
  "InferMessage",
  "JsonSchema",
  "MessageOf",
  "MessageType",
  "MsgField",
  "OptionalField",
  "RequestOf",
  "ResponseOf",
  "ScalarField",
  "ScalarKind",
  "ScalarOptions",
  "ServiceType",
  "Time",
  "ValidationIssue",
  "ValidationResult",
  "BuiltinInterfaces",
  "StdMsgs",
  "GeometryMsgs",
  "SensorMsgs",
  "VisionMsgs",
  "DiagnosticMsgs",
  "RclInterfaces",
  "ExampleInterfaces",
  "StdSrvs",
  "RosgraphMsgs",
  // codecs
  "Codec",
  // nodes and QoS
  "NodeOptions",
  "NodeEvents",
  "PublisherOptions",
  "SubscriptionOptions",
  "ClientOptions",
  "PublisherStats",
  "PublishOptions",
  "WithOptionalHeader",
  "MessageInfo",
  "Received",
  "SubscriptionStats",
  // raw: true subscriptions hand these over (tools that store or forward encoded messages)
  "RawMessage",
  "Overflow",
  "MessageHandler",
  "ServiceHandler",
  "ServiceContext",
  "CallOptions",
  "ServiceOptions",
  "ServiceClientEvents",
  "BalancePolicy",
  "ReplicaStats",
  "BreakerEvent",
  "BreakerOptions",
  "BreakerState",
  "RetryBudgetOptions",
  "ParameterKind",
  "ParameterSpec",
  "Qos",
  "DurableConsumerOptions",
  "DurableMessage",
  "DurableStart",
  "DurableConsumerStats",
  "GraphSnapshot",
  "NodeRecord",
  "TopicDecl",
  "ServiceDecl",
  // what node.status() returns (the flow status the dashboard and `topic info` read)
  "NodeStatus",
  "PublisherStatus",
  "RemoteSubscriberStatus",
  "SubscriptionStatus",
  // what shmStats() returns
  "ShmStats",
  "ShmReaderStats",
  "ShmWriterStats",
  // hub, store, launch
  "HubOptions",
  "PolicyDoc",
  "Permission",
  "StoreServiceOptions",
  "FsyncPolicy",
  "RetentionOptions",
  "TopicConfig",
  "TopicConfigRule",
  "TopicRetention",
  "RetentionMode",
  "LoadSpecOptions",
  "LaunchSpec",
  "UnitSpec",
  "UnitDependency",
  "ModuleEntry",
  "RestartSpec",
  "HealthSpec",
  "ProbeSpec",
  "LimitsSpec",
  "LaunchContext",
  "NodeMain",
  // MQTT gateway and bridges
  "MqttGatewayOptions",
  "MqttListeners",
  "TcpListenerOptions",
  "TlsListenerOptions",
  "WsListenerOptions",
  "GatewayStatus",
  "GatewayConfig",
  "AuthSpec",
  "UserSpec",
  "AclSpec",
  "CertificateSpec",
  "Principal",
  "MqttLimits",
  "MappingSpec",
  "MappingDirection",
  "PayloadFormat",
  "ExternalSyntax",
  "StartBridgeOptions",
  "BridgeHostOptions",
  "Bridge",
  "BridgeState",
  "BridgeStatus",
  "BridgeConfig",
  "BridgeKind",
  "BridgeConfigBase",
  "BridgeQueueConfig",
  "BridgeReconnectConfig",
  "MqttBridgeConfig",
  "NatsBridgeConfig",
  "NatsJetStreamConfig",
  "AmqpBridgeConfig",
  // device twins
  "TwinClientOptions",
  "DeviceTwin",
  "TwinSummary",
  "TwinListOptions",
  "TwinListPage",
  "TwinSetOptions",
  "TwinUpdateEvent",
  "TwinOptions",
  "JsonObject",
  "JsonValue",
];

const UPDATE_HINT =
  "src/index.ts is Myelin's public API. If this name is internal, stop exporting it from src/index.ts " +
  "(import it from its module inside the package); if it is meant for users, add it to PUBLIC_VALUES or " +
  "PUBLIC_TYPES in src/index.test.ts deliberately, in the same commit, and say why.";

/** The names src/index.ts exports, read from its source: values and types apart. */
function exportedNames(): { values: string[]; types: string[]; problems: string[] } {
  const file = new URL("../../src/index.ts", import.meta.url);
  const sf = ts.createSourceFile("index.ts", readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const values: string[] = [];
  const types: string[] = [];
  const problems: string[] = [];
  for (const st of sf.statements) {
    if (ts.isExportDeclaration(st)) {
      const clause = st.exportClause;
      if (clause === undefined || ts.isNamespaceExport(clause)) {
        problems.push(`\`${st.getText()}\`: re-export names one by one, never \`export *\``);
        continue;
      }
      for (const el of clause.elements) (st.isTypeOnly || el.isTypeOnly ? types : values).push(el.name.text);
    } else if (
      ts.canHaveModifiers(st) &&
      ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
    ) {
      problems.push(
        `\`${st.getText().split("\n")[0]}\`: src/index.ts only re-exports; define it in its layer`,
      );
    } else if (ts.isExportAssignment(st)) {
      problems.push("src/index.ts has a default export; the API has named exports only");
    }
  }
  return { values, types, problems };
}

/** What is in `actual` and not in `expected`, and the other way round. */
function diff(actual: string[], expected: string[]): { leaked: string[]; missing: string[] } {
  return {
    leaked: actual.filter((n) => !expected.includes(n)).sort(),
    missing: expected.filter((n) => !actual.includes(n)).sort(),
  };
}

test("src/index.ts re-exports names one by one", () => {
  const { problems } = exportedNames();
  assert.deepEqual(problems, [], problems.join("\n"));
});

test("src/index.ts exports exactly the public values", () => {
  const { leaked, missing } = diff(Object.keys(api), PUBLIC_VALUES);
  assert.deepEqual(leaked, [], `exported but not on the public list: ${leaked.join(", ")}. ${UPDATE_HINT}`);
  assert.deepEqual(missing, [], `on the public list but not exported: ${missing.join(", ")}. ${UPDATE_HINT}`);
  assert.equal(new Set(PUBLIC_VALUES).size, PUBLIC_VALUES.length, "PUBLIC_VALUES has a duplicate");
  assert.deepEqual(exportedNames().values.sort(), [...PUBLIC_VALUES].sort());
});

test("src/index.ts exports exactly the public types", () => {
  const { leaked, missing } = diff(exportedNames().types, PUBLIC_TYPES);
  assert.deepEqual(leaked, [], `exported but not on the public list: ${leaked.join(", ")}. ${UPDATE_HINT}`);
  assert.deepEqual(missing, [], `on the public list but not exported: ${missing.join(", ")}. ${UPDATE_HINT}`);
  assert.equal(new Set(PUBLIC_TYPES).size, PUBLIC_TYPES.length, "PUBLIC_TYPES has a duplicate");
  const both = PUBLIC_TYPES.filter((n) => PUBLIC_VALUES.includes(n));
  assert.deepEqual(both, [], "a name is on both lists");
});

test("every error class is public", () => {
  for (const name of new Set(Object.values(ERROR_CLASS_OF))) {
    assert.equal(typeof (api as Record<string, unknown>)[name], "function", `${name} is exported`);
  }
});
