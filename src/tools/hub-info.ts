/**
 * `/_hub/info`: what `myelin hub` says about itself (version, pid, runtime directory, endpoints, its
 * clock, its store's data directory and free space), for `myelin doctor`. Served by a hidden node
 * `_hub` in the hub's process.
 */
import { hostname } from "node:os";
import { myelin_msgs } from "../msgs/index.js";
import { createNode, runtimeDir, type Node } from "../node/index.js";
import { version } from "./common.js";

/** The name of the hub's info service. */
export const HUB_INFO_SERVICE = "/_hub/info";

/** What the info service reports; `store` is read on each call. */
export interface HubInfoSource {
  hubId: string;
  endpoints: readonly string[];
  runtimeDir: string | undefined;
  /** The hub's node timeout, in ms. */
  nodeTimeoutMs: number;
  /** The store's health now, or undefined when the hub runs without a store. */
  store: () =>
    { dataDir: string; freeBytes: number | undefined; diskFull: { since: number } | undefined } | undefined;
}

/**
 * Starts the hidden node `_hub` serving {@link HUB_INFO_SERVICE}; close the returned node when the
 * hub stops.
 * @throws MyelinError when the service cannot be declared (e.g. another hub's node serves it)
 */
export async function startHubInfo(src: HubInfoSource): Promise<Node> {
  const startedAt = Date.now();
  const node = await createNode({
    name: "_hub",
    ...(src.runtimeDir !== undefined ? { runtimeDir: src.runtimeDir } : {}),
  });
  try {
    await node.createService(HUB_INFO_SERVICE, myelin_msgs.HubInfo, () => {
      const store = src.store();
      return {
        hub_id: src.hubId,
        version: version(),
        pid: process.pid,
        host: hostname(),
        runtime_dir: runtimeDir(src.runtimeDir),
        endpoints: [...src.endpoints],
        started_at: startedAt,
        time_ms: Date.now(),
        node_timeout_ms: src.nodeTimeoutMs,
        data_dir: store?.dataDir ?? "",
        store_free_bytes: store?.freeBytes ?? -1,
        store_disk_full_since: store?.diskFull?.since ?? 0,
      };
    });
  } catch (err) {
    await node.close();
    throw err;
  }
  return node;
}
