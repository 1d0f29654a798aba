/** The `web` layer: the dashboard's server side, a hub plugin (the page itself is built from web/). */
export {
  dashboardPlugin,
  dashboardFile,
  type DashboardOptions,
  type DashboardFile,
} from "./dashboard-plugin.js";
export { DashboardServer, DEFAULT_STATIC_DIR, type DashboardServerOptions } from "./dashboard-server.js";
export { LiveFeed, type LiveFeedOptions, type FeedClient, type LogEntry } from "./live-feed.js";
export { AlarmBook, type Alarm, type AlarmCondition, type AlarmSeverity } from "./alarms.js";
export {
  metricsFile,
  metricsPlugin,
  type MetricsFile,
  type MetricsPluginOptions,
  type RunningMetricsPlugin,
} from "./metrics-plugin.js";
export { parseMetricsAddress, isLoopbackHost, type MetricsAddress } from "./metrics-address.js";
export {
  HubMetrics,
  FSYNC_BUCKETS_SECONDS,
  type MetricsSources,
  type MetricsFormat,
} from "./metrics-registry.js";
export { MetricsServer, metricsFormatFor } from "./metrics-server.js";
