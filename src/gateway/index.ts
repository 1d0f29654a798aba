/**
 * The `gateway` layer: the embedded MQTT gateway and the topic mapping and Myelin side shared
 * with the bridges to external brokers.
 */
export { TopicMap, decodeExternal, encodeExternal } from "./mapping.js";
export type {
  MappingDirection,
  PayloadFormat,
  ExternalSyntax,
  MappingSpec,
  TopicMapOptions,
  ResolvedMapping,
  InboundMatch,
} from "./mapping.js";
export { MyelinPort } from "./myelin-port.js";
export type { MyelinPortOptions, MyelinPortStats, PortReject } from "./myelin-port.js";
export { MqttGateway } from "./mqtt-gateway.js";
export type {
  MqttGatewayOptions,
  MqttListeners,
  TcpListenerOptions,
  TlsListenerOptions,
  WsListenerOptions,
  GatewayStatus,
} from "./mqtt-gateway.js";
export { hashPassword, verifyPassword, CompiledAcl, Authenticator } from "./mqtt-auth.js";
export type { AuthSpec, UserSpec, AclSpec, CertificateSpec, Principal } from "./mqtt-auth.js";
export { MQTT_LIMIT_DEFAULTS } from "./mqtt-limits.js";
export type { MqttLimits } from "./mqtt-limits.js";
export { FilePersistence } from "./mqtt-persistence.js";
export type { FilePersistenceOptions } from "./mqtt-persistence.js";
export {
  TWIN_DEFAULTS,
  resolveTwinOptions,
  computeDelta,
  mergePatch,
  twinToJson,
  deviceNameProblem,
} from "./twin-document.js";
export type {
  TwinOptions,
  ResolvedTwinOptions,
  TwinDocument,
  TwinJson,
  JsonObject,
  JsonValue,
} from "./twin-document.js";
export { TwinStore } from "./twin-store.js";
export type { TwinStoreOptions, TwinChange, TwinChangeKind } from "./twin-store.js";
export { TwinService } from "./twin-service.js";
export { TWIN_PROTOCOL, TWIN_UPDATES_TOPIC } from "./twin-protocol.js";
export type { TwinProtocol } from "./twin-protocol.js";
export { TwinMqtt } from "./twin-mqtt.js";
export { TwinClient, twinFromMsg } from "./twin-client.js";
export type {
  DeviceTwin,
  TwinSummary,
  TwinListOptions,
  TwinListPage,
  TwinSetOptions,
  TwinUpdateEvent,
  TwinClientOptions,
} from "./twin-client.js";
export { loadGatewayConfig, parseGatewayConfig, parseGatewayConfigText } from "./gateway-config.js";
export type { GatewayConfig } from "./gateway-config.js";
export { createLink } from "./bridge-host.js";
export { startBridge, BridgeHost } from "./bridge-host-api.js";
export { BRIDGE_PROTOCOL, fetchBridgeStatus, serveBridgeStatus } from "./bridge-protocol.js";
export type { BridgeProtocol } from "./bridge-protocol.js";
export { GATEWAY_ERRORS_TOPIC, GATEWAY_PROTOCOL, gatewayClient } from "./gateway-protocol.js";
export type { GatewayClient, GatewayProtocol } from "./gateway-protocol.js";
export type { StartBridgeOptions, BridgeHostOptions } from "./bridge-host.js";
export { BridgeEngine, BRIDGE_DEFAULTS, backoffDelay, bridgeQueueDir } from "./bridge.js";
export type {
  Bridge,
  BridgeState,
  BridgeStatus,
  BrokerLink,
  LinkHandlers,
  OutgoingMessage,
  BridgeEngineOptions,
} from "./bridge.js";
export {
  parseBridgeConfig,
  loadBridgeConfig,
  validateBridgeConfig,
  validateBridgeFile,
} from "./bridge-config.js";
export type {
  BridgeConfig,
  BridgeKind,
  BridgeConfigBase,
  BridgeQueueConfig,
  BridgeReconnectConfig,
  MqttBridgeConfig,
  NatsBridgeConfig,
  NatsJetStreamConfig,
  AmqpBridgeConfig,
} from "./bridge-config.js";
export { OfflineQueue, OFFLINE_QUEUE_DEFAULTS } from "./offline-queue.js";
export type { OfflineQueueOptions, OfflineQueueStats, QueuedMessage } from "./offline-queue.js";
export { MqttLink } from "./bridge-mqtt.js";
export { NatsLink } from "./bridge-nats.js";
export { AmqpLink } from "./bridge-amqp.js";
export { bridgesPlugin, mqttGatewayPlugin, uplinkPlugin } from "./hub-plugin.js";
export type {
  RunningBridgesPlugin,
  RunningGatewayPlugin,
  RunningUplinkPlugin,
  UplinkPluginOptions,
} from "./hub-plugin.js";
export { Uplink } from "./uplink.js";
export type { UplinkOptions } from "./uplink.js";
export { parseUplinkConfig, parseUplinkConfigText, UPLINK_DEFAULTS } from "./uplink-config.js";
export type {
  UplinkConfig,
  UplinkNatsConfig,
  UplinkStreamConfig,
  UplinkCatchUpConfig,
} from "./uplink-config.js";
export { UPLINK_PROTOCOL, fetchUplinkStatus } from "./uplink-protocol.js";
export type { UplinkStatus } from "./uplink-protocol.js";
export type { ForwarderStatus } from "./uplink-forwarder.js";
export type { IngestStatus } from "./uplink-ingest.js";
export { siteStream, commandStream, siteSubject, commandSubject, UPLINK_HEADERS } from "./uplink-subjects.js";
