/**
 * The device twins' protocol: the services the MQTT gateway serves on its hidden node
 * (`_gateway`) to list, read, change and delete twins, and the topic where every change of a twin
 * is published. `TwinClient` (`twin-client.ts`) wraps it for users; `myelin twin` calls it.
 */
import { myelin_msgs } from "../msgs/index.js";
import { defineProtocol } from "../node/index.js";

/** The twins' services. */
export const TWIN_PROTOCOL = defineProtocol({
  /** Twins matching a glob, a page at a time (myelin_msgs/TwinList). */
  list: { service: "/_twins/list", type: myelin_msgs.TwinList },
  /** One twin (myelin_msgs/TwinGet). */
  get: { service: "/_twins/get", type: myelin_msgs.TwinGet },
  /** Merge into (or replace) a twin's desired state, checking its version (myelin_msgs/TwinSet). */
  set: { service: "/_twins/set", type: myelin_msgs.TwinSet },
  /** Delete a twin (myelin_msgs/TwinDelete). */
  delete: { service: "/_twins/delete", type: myelin_msgs.TwinDelete },
});

/** The twins' protocol type. */
export type TwinProtocol = typeof TWIN_PROTOCOL;

/** Where every change of a twin is published (myelin_msgs/TwinUpdate), after it is on disk. */
export const TWIN_UPDATES_TOPIC = "/_twins/updates";
