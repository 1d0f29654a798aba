/** The user API: nodes, publishers, subscriptions, services, parameters, QoS. */
export { createNode, Node, NODE_DEFAULTS, PROCESS_ID } from "./node.js";
export type {
  NodeOptions,
  PublisherOptions,
  SubscriptionOptions,
  ClientOptions,
  NodeEvents,
} from "./node.js";
export { Publisher } from "./publisher.js";
export type { PublisherStats, PublishOptions, WithOptionalHeader } from "./publisher.js";
export { Subscription } from "./subscription.js";
export type { RawMessage } from "./raw-message.js";
export type { MessageInfo, Received, SubscriptionStats, Overflow, MessageHandler } from "./subscription.js";
export { ServiceServer, ServiceClient } from "./service.js";
export type {
  ServiceHandler,
  ServiceContext,
  CallOptions,
  ServiceOptions,
  ServiceClientEvents,
} from "./service.js";
export { Balancer, BALANCE_POLICIES } from "./balancer.js";
export type { BalancePolicy, ReplicaStats, BreakerEvent, AttemptOutcome } from "./balancer.js";
export { CircuitBreaker, BREAKER_DEFAULTS } from "./circuit-breaker.js";
export type { BreakerOptions, BreakerState } from "./circuit-breaker.js";
export { RetryBudget, RETRY_BUDGET_DEFAULTS } from "./retry-budget.js";
export type { RetryBudgetOptions } from "./retry-budget.js";
export { Parameter } from "./parameter.js";
export type { ParameterKind, ParameterSpec } from "./parameter.js";
export { QOS_DEFAULT, QOS_SENSOR_DATA, QOS_LATCHED, resolveQos } from "./qos.js";
export type { Qos } from "./qos.js";
export type { GraphSnapshot, NodeRecord, TopicDecl, ServiceDecl } from "./control-protocol.js";
export { hubEndpoint, replicaNodeName, runtimeDir } from "./config.js";
export { DurableConsumer } from "./durable-consumer.js";
export type {
  DurableConsumerOptions,
  DurableMessage,
  DurableStart,
  DurableConsumerStats,
} from "./durable-consumer.js";
export {
  defineProtocol,
  fetchJsonStatus,
  graphServes,
  protocolClient,
  serveProtocol,
  RESERVED_METHODS,
} from "./service-protocol.js";
export type {
  ProtocolClient,
  ProtocolClientControls,
  ProtocolHandlers,
  ProtocolRequest,
  ProtocolResponse,
  ProtocolServer,
  ProtocolService,
  ProtocolSpec,
  ReservedMethod,
} from "./service-protocol.js";
export {
  StoreClient,
  STORE_PROTOCOL,
  STORE_APPEND_TIMEOUT_MS,
  STORE_RESTART_WAIT_MS,
} from "./store-client.js";
export type { StoreProtocol, StoreRequest, StoreResponse } from "./store-client.js";
export { parameterClient, parameterProtocol, serveParameters } from "./parameter-service.js";
export type { ParameterClient, ParameterProtocol } from "./parameter-service.js";
export {
  AccessPolicy,
  DEFAULT_POLICY_DOC,
  HUB_IDENTITY,
  SAME_PROCESS_IDENTITY,
  isInternalName,
  policyFromObject,
  delegateServiceCheck,
} from "./access-policy.js";
export type { AccessDecision, Permission, PolicyDoc, PolicyGrant } from "./access-policy.js";
export { fetchNodeStatus, nodeStatus, serveNodeStatus, statusProtocol } from "./status-service.js";
export type {
  NodeStatus,
  PublisherStatus,
  RemoteSubscriberStatus,
  SubscriptionStatus,
} from "./status-service.js";
