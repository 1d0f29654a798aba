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
export type { PublisherStats } from "./publisher.js";
export { Subscription } from "./subscription.js";
export type { MessageInfo, Received, SubscriptionStats, Overflow, MessageHandler } from "./subscription.js";
export { ServiceServer, ServiceClient } from "./service.js";
export type { ServiceHandler, ServiceContext, CallOptions } from "./service.js";
export { Parameter } from "./parameter.js";
export type { ParameterKind, ParameterSpec } from "./parameter.js";
export { QOS_DEFAULT, QOS_SENSOR_DATA, QOS_LATCHED, resolveQos } from "./qos.js";
export type { Qos } from "./qos.js";
export type { GraphSnapshot, NodeRecord, TopicDecl, ServiceDecl } from "./control-protocol.js";
export { hubEndpoint, runtimeDir } from "./config.js";
export { DurableConsumer } from "./durable-consumer.js";
export type {
  DurableConsumerOptions,
  DurableMessage,
  DurableStart,
  DurableConsumerStats,
} from "./durable-consumer.js";
