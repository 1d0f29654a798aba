/**
 * The supervisors of a site, as the orchestration commands (`myelin up`, `ps`, `logs`, `scale`,
 * `restart`, `down`) see them: every host of the site (this hub's and its peers', from the hub's
 * site status), which of them has a supervisor on the graph, and one call per host aimed at that
 * host's supervisor (`ClientOptions.host`), never at a random one.
 */
import { DecodeError, MyelinError, myelinError } from "../errors.js";
import type { SiteStatus } from "../hub/index.js";
import type { GraphSnapshot, Node } from "../node/index.js";
import {
  SUPERVISOR_PROTOCOL,
  supervisorClient,
  type ProcessRow,
  type SupervisorClient,
} from "../orchestrator/index.js";
import { UsageError } from "./common.js";

/** One host of the site and whether its supervisor can be called. */
export interface SiteHost {
  /** The host's name in the site (for a configured peer never heard from: its address). */
  host: string;
  /** True for the host of the hub this tool talks to. */
  local: boolean;
  /** `up`: its supervisor is on the graph; `unreachable`: its hub is not (now); `no-supervisor`: its hub runs none. */
  state: "up" | "unreachable" | "no-supervisor";
  /** Why it is not `up`, for messages. */
  detail: string;
}

/** Reads the hub's site status, checking the fields used here. @throws DecodeError when it is not one */
export function parseSiteStatus(json: string): SiteStatus {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new DecodeError("ERR_DECODE", `the hub's site status is not JSON: ${(err as Error).message}`);
  }
  const o = v as Partial<SiteStatus> | null;
  if (
    typeof o !== "object" ||
    o === null ||
    typeof o.hub !== "string" ||
    typeof o.host !== "string" ||
    typeof o.version !== "number" ||
    !Array.isArray(o.peers)
  ) {
    throw new DecodeError(
      "ERR_DECODE",
      "the hub's site status lacks hub, host, version or peers: run the same Myelin version everywhere",
    );
  }
  return o as SiteStatus;
}

/**
 * The hosts of the site: this hub's first, then its peers by name. A host is `up` when a
 * supervisor of that host is on `graph`.
 */
export function siteHosts(status: SiteStatus, graph: GraphSnapshot): SiteHost[] {
  const withSupervisor = new Set(
    graph.nodes
      .filter((n) => n.services.some((s) => s.service === SUPERVISOR_PROTOCOL.apply.service))
      .map((n) => n.host),
  );
  const state = (host: string): SiteHost["state"] => (withSupervisor.has(host) ? "up" : "no-supervisor");
  const hosts: SiteHost[] = [
    {
      host: status.host,
      local: true,
      state: state(status.host),
      detail: "the hub runs without a supervisor (started with --no-supervisor?)",
    },
  ];
  const peers = [...status.peers].sort((a, b) =>
    (a.host || a.endpoint || "").localeCompare(b.host || b.endpoint || ""),
  );
  for (const p of peers) {
    const host = p.host !== "" ? p.host : (p.endpoint ?? "?");
    if (hosts.some((h) => h.host === host)) continue;
    if (p.state === "up") {
      hosts.push({ host, local: false, state: state(host), detail: "its hub runs without a supervisor" });
    } else {
      hosts.push({
        host,
        local: false,
        state: "unreachable",
        detail:
          p.state === "connecting"
            ? `its hub at ${p.endpoint ?? "?"} has never answered`
            : `its hub is ${p.state}${p.silentMs >= 0 ? ` (silent for ${p.silentMs} ms)` : ""}`,
      });
    }
  }
  return hosts;
}

/**
 * Keeps the host `only` names (`--host H`); all when undefined.
 * @throws UsageError when the site has no such host, naming those it has
 */
export function restrictHosts(hosts: SiteHost[], only: string | undefined, command: string): SiteHost[] {
  if (only === undefined) return hosts;
  const h = hosts.filter((x) => x.host === only);
  if (h.length === 0) {
    throw new UsageError(
      `${command}: the site has no host '${only}'; hosts: ${hosts.map((x) => x.host).join(", ")} (see \`myelin site status\`)`,
      command,
    );
  }
  return h;
}

/** The outcome of a call on one host. */
export type HostResult<R> =
  { host: string; ok: true; value: R } | { host: string; ok: false; error: Error; unreachable: boolean };

/**
 * Calls `fn` with a client of each `up` host's supervisor, all at once; hosts that are not `up`
 * come back as failures (`unreachable`) without a call.
 */
export async function eachSupervisor<R>(
  node: Node,
  hosts: readonly SiteHost[],
  timeoutMs: number,
  fn: (client: SupervisorClient, host: SiteHost) => Promise<R>,
): Promise<HostResult<R>[]> {
  return Promise.all(
    hosts.map(async (h): Promise<HostResult<R>> => {
      if (h.state !== "up") {
        return {
          host: h.host,
          ok: false,
          unreachable: h.state === "unreachable",
          error: myelinError(h.state === "unreachable" ? "ERR_PEER_UNREACHABLE" : "ERR_NO_SERVER", h.detail),
        };
      }
      const client = supervisorClient(node, { host: h.host, timeoutMs, retries: 0, breaker: false });
      try {
        return { host: h.host, ok: true, value: await fn(client, h) };
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        const code = e instanceof MyelinError ? e.code : "";
        return {
          host: h.host,
          ok: false,
          error: e,
          unreachable: code === "ERR_UNAVAILABLE" || code === "ERR_TIMEOUT" || code === "ERR_NO_SERVER",
        };
      } finally {
        client.close();
      }
    }),
  );
}

/** Parses a supervisor's `processes_json` (rows of an older hub get its host). */
export function rowsOf(json: string, host: string): ProcessRow[] {
  const rows = JSON.parse(json) as ProcessRow[];
  for (const r of rows) if (typeof r.host !== "string" || r.host === "") r.host = host;
  return rows;
}

/** A unit of a running spec as `/_supervisor/ps` describes it (`units_json`). */
export interface UnitSummary {
  name: string;
  nodes: string[];
  placement: string[];
  replicas: number;
}

/**
 * The units of a spec (with replicas) whose placement matches the labels of no host in `labels`
 * (host → its labels; for a host that did not answer, give its name, which is always one of its
 * labels).
 */
export function unplaceable(
  units: readonly UnitSummary[],
  labels: ReadonlyMap<string, readonly string[]>,
): UnitSummary[] {
  return units.filter(
    (u) =>
      u.replicas > 0 &&
      u.placement.length > 0 &&
      ![...labels.values()].some((ls) => u.placement.some((p) => ls.includes(p))),
  );
}
