/** The hub: registry, discovery, graph events. */
export { Hub, HUB_DEFAULTS } from "./hub.js";
export type { HubOptions } from "./hub.js";
