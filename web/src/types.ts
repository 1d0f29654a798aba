/** What the hub sends the page (see src/web/live-feed.ts on the hub side). */

export interface QosSummary {
  reliability: string;
  durability: string;
  depth: number;
}
export interface TopicDecl {
  topic: string;
  type: string;
  qos: QosSummary;
  group?: string;
}
export interface ServiceDecl {
  service: string;
  type: string;
}
export interface NodeRecord {
  id: string;
  name: string;
  pid: number;
  host: string;
  process: string;
  endpoint: string;
  startedAt: number;
  pubs: TopicDecl[];
  subs: TopicDecl[];
  services: ServiceDecl[];
  ready?: boolean;
  instance?: string;
}
export interface GraphSnapshot {
  hub: string;
  version: number;
  nodes: NodeRecord[];
}
export interface TopicStats {
  hz: number;
  bytesPerSec: number;
  drops: number;
  received: number;
  lastAt: number;
}
export type ImageView =
  | { kind: "raw"; width: number; height: number; encoding: string; data: string }
  | { kind: "file"; mime: string; data: string };
export interface Sample {
  topic: string;
  type: string;
  at: number;
  json: unknown;
  image?: ImageView;
}
export interface ProcessRow {
  process: string;
  nodes: string[];
  replica: number;
  state: string;
  pid: number;
  restarts: number;
  uptimeMs: number;
  cpuPercent: number;
  rssBytes: number;
  health: string;
  detail: string;
  adopted: boolean;
}
export interface LogEntry {
  at: number;
  level: number;
  name: string;
  msg: string;
}
export interface Alarm {
  id: string;
  source: string;
  kind: string;
  subject: string;
  severity: "warning" | "error";
  message: string;
  since: number;
  clearedAt?: number;
}
export interface DurableTopic {
  topic: string;
  type: string;
  first_seq: number;
  last_seq: number;
  count: number;
  bytes: number;
  consumers: string[];
  lags: number[];
  pending: number[];
  dead_lettered: number[];
  config_json: string;
}
export interface GatewayClient {
  id: string;
  user: string;
  address: string;
  transport: string;
  clean: boolean;
  connected_at: number;
  subscriptions: string[];
  msgs_in: number;
  msgs_out: number;
  rejected: number;
}
export interface GatewayStatus {
  listeners: string[];
  clients: GatewayClient[];
  msgs_in: number;
  msgs_out: number;
  rate_in: number;
  rate_out: number;
  rejected: number;
  reject_reasons: string[];
  reject_counts: number[];
  last_reject: string;
  refused_connections: number;
  persistent_sessions: number;
  retained: number;
}
export interface BridgeStatus {
  name: string;
  kind: string;
  url: string;
  state: string;
  since: number;
  in: number;
  out: number;
  sent: number;
  dropped: number;
  rejected: number;
  lastError?: string;
  queue?: { messages?: number; bytes?: number; [k: string]: unknown };
  [k: string]: unknown;
}
/** One remote subscriber of a publisher as the publisher sees it (src/web/flow-alarms.ts). */
export interface FlowSubscriberRow {
  subscriber: string;
  reliable: boolean;
  group: string;
  backlog: number;
  backlogBytes: number;
  waits: number;
  dropped: number;
  state: "ok" | "slow" | "dropping";
}
export interface FlowPublisherRow {
  publisher: string;
  published: number;
  subscribers: FlowSubscriberRow[];
}
export interface FlowSubscriptionRow {
  node: string;
  received: number;
  dropped: number;
  pending: number;
  deadlineMs: number;
  deadlinesMissed: number;
  silentMs: number;
  late: boolean;
}
/** The flow of one topic: its publishers' subscribers and its subscriptions' deadlines. */
export interface TopicFlow {
  publishers: FlowPublisherRow[];
  subscriptions: FlowSubscriptionRow[];
}
