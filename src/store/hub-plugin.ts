/** The store as a hub plugin: durable topics served by the hub process. */
import type { HubPlugin, RunningHubPlugin } from "../hub/index.js";
import { StoreService, type StoreServiceOptions } from "./service.js";

/** The running store plugin: its service, and its health as its status. */
export interface RunningStorePlugin extends RunningHubPlugin {
  readonly store: StoreService;
}

/**
 * The store plugin (named `store`): opens `opts.dataDir` (taking its lock) and serves the
 * `/_store/*` services on the hidden node `_store`. The hub's runtime directory and log are used
 * unless `opts` gives its own.
 */
export function storePlugin(opts: StoreServiceOptions): HubPlugin {
  return {
    name: "store",
    async start(ctx): Promise<RunningStorePlugin> {
      const full: StoreServiceOptions = { ...opts, log: opts.log ?? ctx.log };
      const runtimeDir = opts.runtimeDir ?? ctx.runtimeDir;
      if (runtimeDir !== undefined) full.runtimeDir = runtimeDir;
      const store = await StoreService.start(full);
      ctx.log(
        `durable topics stored in ${opts.dataDir} (fsync ${opts.fsync ?? opts.defaults?.fsync ?? "always"})`,
      );
      return {
        store,
        close: () => store.close(),
        status: () => ({ ...store.health() }),
      };
    },
  };
}
