/** The hub: registry, discovery, graph events. */
export { Hub, HUB_DEFAULTS } from "./hub.js";
export type { HubOptions, HubStats } from "./hub.js";
export { startHubProcess } from "./plugin.js";
export type {
  HubPlugin,
  HubPluginContext,
  HubProcess,
  HubProcessOptions,
  RunningHubPlugin,
} from "./plugin.js";
export { fetchHubInfo, HUB_INFO_PROTOCOL, HUB_INFO_SERVICE, hubInfoPlugin, reloadHubPolicy } from "./info.js";
export type { HubInfo, PolicyReloadAnswer } from "./info.js";
export type { PolicyReload } from "./hub.js";
export type { RefusalCounts } from "./refusal-log.js";
export { loadPolicyFile, parsePolicy } from "./policy-file.js";
export { Authorization } from "./authorization.js";
export { Federation } from "./federation.js";
export type { PeerStatus, SiteStatus } from "./federation.js";
export { parsePortRange } from "./site-address.js";
export { DEFAULT_SCOUT_ADDRESS, parseScoutAddress } from "./scout.js";
export type { ScoutStatus } from "./scout.js";
export { SITE_NAME } from "./scout-protocol.js";
export type { ScoutSettings } from "./hub.js";
export type { PeerSource } from "./federation.js";
