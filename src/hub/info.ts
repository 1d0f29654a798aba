/**
 * `/_hub/info`: what a hub process says about itself (version, pid, runtime directory, endpoints,
 * its clock, its store's data directory and free space, what it refused), for `myelin doctor`, and
 * `/_hub/reload_policy` (read the policy file again; admins only), for `myelin policy reload`. Served by the hidden
 * node `_hub` in the hub's process, as the plugin {@link hubInfoPlugin}; its protocol is
 * {@link HUB_INFO_PROTOCOL} and its client {@link fetchHubInfo}.
 */
import { myelin_msgs, type ResponseOf } from "../msgs/index.js";
import {
  createNode,
  defineProtocol,
  protocolClient,
  runtimeDir,
  serveProtocol,
  type Node,
} from "../node/index.js";
import type { HubPlugin, RunningHubPlugin } from "./plugin.js";
import type { MyelinError } from "../errors.js";

/** The hub's own services. */
export const HUB_INFO_PROTOCOL = defineProtocol({
  /** What the hub process says about itself (myelin_msgs/HubInfo). */
  info: { service: "/_hub/info", type: myelin_msgs.HubInfo },
  /** Reads the hub's policy file again (myelin_msgs/HubReloadPolicy); internal, so admins only. */
  reloadPolicy: { service: "/_hub/reload_policy", type: myelin_msgs.HubReloadPolicy },
});

/** The name of the hub's info service. */
export const HUB_INFO_SERVICE = HUB_INFO_PROTOCOL.info.service;

/** What `/_hub/info` answers. */
export type HubInfo = ResponseOf<typeof myelin_msgs.HubInfo>;

/** The answer of `/_hub/reload_policy`. */
export type PolicyReloadAnswer = ResponseOf<typeof myelin_msgs.HubReloadPolicy>;

/**
 * Asks the hub of `node` to read its policy file again (the caller must be an admin of the policy
 * in force).
 * @throws ServiceError when the hub does not answer, or refuses the caller (ERR_NOT_AUTHORIZED)
 */
export async function reloadHubPolicy(node: Node, timeoutMs: number): Promise<PolicyReloadAnswer> {
  const client = protocolClient(node, HUB_INFO_PROTOCOL, { timeoutMs });
  try {
    return await client.reloadPolicy({});
  } finally {
    client.close();
  }
}

/** Asks the hub of `node` about itself. @throws ServiceError ERR_NO_SERVER when the hub serves no info */
export async function fetchHubInfo(node: Node, timeoutMs: number): Promise<HubInfo> {
  const client = protocolClient(node, HUB_INFO_PROTOCOL, { timeoutMs });
  try {
    return await client.info({});
  } finally {
    client.close();
  }
}

/** The store's health as the store plugin reports it, read field by field. */
function storeHealth(status: Record<string, unknown> | undefined): {
  dataDir: string;
  freeBytes: number;
  diskFullSince: number;
} {
  const diskFull = status?.["diskFull"] as { since?: unknown } | undefined;
  return {
    dataDir: typeof status?.["dataDir"] === "string" ? status["dataDir"] : "",
    freeBytes: typeof status?.["freeBytes"] === "number" ? status["freeBytes"] : -1,
    diskFullSince: typeof diskFull?.since === "number" ? diskFull.since : 0,
  };
}

/**
 * The info plugin (named `info`, optional: the hub runs without it if it cannot be served). Put it
 * after the store, whose health it reports on each call.
 */
export function hubInfoPlugin(opts: { version: string }): HubPlugin {
  return {
    name: "info",
    optional: true,
    async start(ctx): Promise<RunningHubPlugin> {
      const startedAt = Date.now();
      const node = await createNode({
        name: "_hub",
        ...(ctx.runtimeDir !== undefined ? { runtimeDir: ctx.runtimeDir } : {}),
      });
      try {
        await serveProtocol(node, HUB_INFO_PROTOCOL, {
          info: () => {
            const store = storeHealth(ctx.plugin("store")?.status?.());
            const sec = ctx.security();
            const refusals = ctx.refusals();
            return {
              hub_id: ctx.hubId,
              version: opts.version,
              pid: process.pid,
              host: ctx.host,
              runtime_dir: runtimeDir(ctx.runtimeDir),
              endpoints: [...ctx.endpoints],
              started_at: startedAt,
              time_ms: Date.now(),
              node_timeout_ms: ctx.nodeTimeoutMs,
              data_dir: store.dataDir,
              store_free_bytes: store.freeBytes,
              store_disk_full_since: store.diskFullSince,
              insecure: sec.insecure,
              public_key: sec.publicKey,
              refused_handshakes: sec.refusedHandshakes,
              refused_ownership: refusals.ownership,
              refused_declarations: refusals.declarations,
              refused_malformed: refusals.malformed,
              refusal_lines_suppressed: refusals.logLinesSuppressed,
            };
          },
          reloadPolicy: () => {
            try {
              const r = ctx.reloadPolicy();
              return { ok: true, message: "", ...r };
            } catch (err) {
              const e = err as MyelinError;
              return {
                ok: false,
                message: e.code !== undefined ? `${e.code}: ${e.message}` : e.message,
                source: "",
                admins: 0,
                grants: 0,
                changed: false,
                nodes: 0,
              };
            }
          },
        });
      } catch (err) {
        await node.close();
        throw new Error(
          `cannot serve ${HUB_INFO_SERVICE} (\`myelin doctor\` sees less): ${(err as Error).message}`,
          { cause: err },
        );
      }
      return { close: () => node.close() };
    },
  };
}
