/** Myelin's public API. Everything a user imports comes from here. */
export * from "./errors.js";
export * from "./msgs/index.js";
export * from "./codec/index.js";
export * from "./node/index.js";
export * from "./hub/index.js";
export * from "./store/index.js";
export * from "./orchestrator/index.js";
export * from "./gateway/index.js";
