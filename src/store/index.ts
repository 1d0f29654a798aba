/** Durable topics: the segment log, durable consumer state, and the store service the hub runs. */
export { DurableLog } from "./log.js";
export type {
  DurableLogOptions,
  FsyncPolicy,
  RetentionOptions,
  AppendResult,
  AppendBatchResult,
  LogRecord,
} from "./log.js";
export { ConsumerState, resolveConsumerOptions, resolveStartSeq } from "./consumer.js";
export type {
  ConsumerOptions,
  StartAt,
  Delivery,
  DeadLetter,
  ConsumerSnapshot,
  ConsumerStats,
} from "./consumer.js";
export { ConsumerStateFile } from "./consumer-state-file.js";
export { StoreService } from "./service.js";
export type { StoreConsumerMetrics, StoreServiceOptions, StoreTopicMetrics } from "./service.js";
export { storePlugin } from "./hub-plugin.js";
export type { RunningStorePlugin } from "./hub-plugin.js";
export {
  parseStoreConfig,
  parseStoreConfigText,
  parseTopicConfig,
  resolveTopicConfig,
  TOPIC_CONFIG_DEFAULTS,
} from "./topic-config.js";
export type {
  TopicConfig,
  TopicRetention,
  TopicConfigRule,
  ResolvedTopicConfig,
  RetentionMode,
} from "./topic-config.js";
export { DedupWindow, MAX_MSG_ID_BYTES } from "./dedup.js";
