/** The `foxglove` layer: the Foxglove WebSocket server of the hub, a hub plugin. */
export { foxglovePlugin, foxgloveEncodingFor, FOXGLOVE_TOKEN_FILE } from "./hub-plugin.js";
export type { RunningFoxglovePlugin } from "./hub-plugin.js";
export { FoxgloveServer } from "./server.js";
export type { FoxgloveServerOptions } from "./server.js";
export { FOXGLOVE_PROTOCOL, fetchFoxgloveStatus, serveFoxgloveStatus } from "./foxglove-protocol.js";
export type { FoxgloveProtocol, FoxgloveStatus } from "./foxglove-protocol.js";
export type { ClientStatus, SubscriptionStatus } from "./session.js";
export {
  FOXGLOVE_DEFAULTS,
  checkToken,
  isLoopback,
  loadFoxgloveConfig,
  parseFoxgloveConfig,
} from "./config.js";
export type { FoxgloveSettings, FoxgloveTls } from "./config.js";
export { parseRateCap } from "./rate-cap.js";
export type { RateCap } from "./rate-cap.js";
export { FOXGLOVE_SUBPROTOCOLS } from "./protocol.js";
