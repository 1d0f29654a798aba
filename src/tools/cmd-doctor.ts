/**
 * `myelin doctor`: checks the Myelin setup of this host — the hub, the runtime directory and its
 * sockets, the clock, the data directory and its locks, the MQTT gateway's listeners, the bridges, the metrics endpoint —
 * and prints OK/WARN/FAIL with what to do for each.
 */
import { constants, type Stats } from "node:fs";
import { access, readdir, readFile, stat, statfs } from "node:fs/promises";
import { connect } from "node:net";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import { BRIDGE_PROTOCOL, fetchBridgeStatus, GATEWAY_PROTOCOL, gatewayClient } from "../gateway/index.js";
import { fetchFoxgloveStatus, FOXGLOVE_PROTOCOL } from "../foxglove/index.js";
import {
  createNode,
  graphServes,
  hubEndpoint,
  runtimeDir,
  type GraphSnapshot,
  type Node,
} from "../node/index.js";
import { DirLock, holderAlive, type LockHolder } from "../store/dir-lock.js";
import { processRunning } from "../store/proc-stat.js";
import {
  boolOpt,
  connectOpts,
  numOpt,
  strOpt,
  unlessInterrupted,
  version,
  type CommandSpec,
  type Context,
  type Invocation,
} from "./common.js";
import { defaultDataDir } from "./cmd-hub.js";
import { ago, table } from "./format.js";
import { fetchHubInfo, HUB_INFO_PROTOCOL, HUB_INFO_SERVICE } from "../hub/index.js";
import { metricsFile, type MetricsFile } from "../web/index.js";
import { shmStatus } from "../transport/shm/shm-addon.js";
import { poolOwnerGone } from "../transport/shm/shm-writer.js";
import { POOL_NAME_PREFIX } from "../transport/shm/shm-layout.js";

/** Outcome of one check: OK, WARN (works, but look at it), FAIL (broken), SKIP (not applicable). */
export type CheckStatus = "OK" | "WARN" | "FAIL" | "SKIP";

/** One line of the doctor's report. */
export interface CheckResult {
  /** What was checked, e.g. `hub`, `data dir`. */
  check: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do about a WARN or FAIL (or why a check was skipped). */
  fix?: string;
}

/** Free space below which the data directory check fails, in bytes (the store then refuses appends soon). */
const FAIL_FREE_BYTES = 64 * 1024 * 1024;
/** Free space below which it warns, in bytes (also below 5 % of the file system). */
const WARN_FREE_BYTES = 1024 * 1024 * 1024;
/** Clock offset from the hub above which the clock check warns, in ms (beyond the measuring error). */
const CLOCK_WARN_MS = 100;
/** statfs type of tmpfs: a data directory there loses durable topics at reboot. */
const TMPFS_MAGIC = 0x01021994;

/** What the hub said, when it answered. */
interface HubView {
  graph: GraphSnapshot;
  /** This host's name as the hub's nodes know it (the hub's `--host` when it runs here). */
  here: string;
  /** `/_hub/info`, when the hub serves it. */
  info?: {
    version: string;
    pid: number;
    host: string;
    runtime_dir: string;
    endpoints: string[];
    started_at: number;
    time_ms: number;
    data_dir: string;
    store_free_bytes: number;
    store_disk_full_since: number;
  };
  /** Offset of the hub's clock from ours and the error of that measure, in ms. */
  clock?: { offsetMs: number; errorMs: number };
}

function mib(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

function errText(err: unknown): string {
  if (err instanceof MyelinError) return `${err.message} [${err.code}]`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whether something listens on a Unix socket or TCP port: `listening`, `refused` (nobody listens),
 * `gone` (the socket file vanished), or why it is not known (an errno code, or a timeout).
 */
function probe(where: { path: string } | { host: string; port: number }, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(where);
    const done = (r: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    s.once("connect", () => done("listening"));
    s.once("error", (err: NodeJS.ErrnoException) =>
      done(
        err.code === "ECONNREFUSED" ? "refused" : err.code === "ENOENT" ? "gone" : (err.code ?? err.message),
      ),
    );
  });
}

// ---- the checks ------------------------------------------------------------------------------

/** The runtime directory: exists, is ours, mode 0700 (nobody else may reach the sockets). */
async function checkRuntimeDir(dir: string): Promise<CheckResult> {
  let st: Stats;
  try {
    st = await stat(dir);
  } catch (err) {
    return {
      check: "runtime dir",
      status: "FAIL",
      detail: `${dir} does not exist (${(err as NodeJS.ErrnoException).code ?? errText(err)})`,
      fix: "start the hub (`myelin hub`), which creates it; or point --runtime-dir / MYELIN_RUNTIME_DIR at the hub's",
    };
  }
  if (!st.isDirectory()) {
    return {
      check: "runtime dir",
      status: "FAIL",
      detail: `${dir} is not a directory`,
      fix: `remove it, or use another runtime directory (--runtime-dir, MYELIN_RUNTIME_DIR)`,
    };
  }
  const mode = (st.mode & 0o777).toString(8).padStart(3, "0");
  const uid = userInfo().uid;
  try {
    await access(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch {
    return {
      check: "runtime dir",
      status: "FAIL",
      detail: `${dir} is not writable by this user (uid ${uid}; owner uid ${st.uid}, mode ${mode})`,
      fix: `run as the user who runs the hub, or give this user its own runtime directory`,
    };
  }
  if (st.uid !== uid) {
    return {
      check: "runtime dir",
      status: "WARN",
      detail: `${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}); mode ${mode}`,
      fix: "use a runtime directory of your own (MYELIN_RUNTIME_DIR), or run as its owner",
    };
  }
  if ((st.mode & 0o077) !== 0) {
    return {
      check: "runtime dir",
      status: "WARN",
      detail: `${dir} has mode ${mode}: other users can reach the hub's and nodes' sockets`,
      fix: `chmod 700 ${dir}`,
    };
  }
  return { check: "runtime dir", status: "OK", detail: `${dir} (mode ${mode}, owned by this user)` };
}

/** Sockets in the runtime directory that nobody listens on, and a hub.pid of a dead process. */
async function checkSockets(dir: string, timeoutMs: number, own: string | undefined): Promise<CheckResult> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".sock") && `ipc://${join(dir, n)}` !== own);
  } catch {
    return {
      check: "sockets",
      status: "SKIP",
      detail: `${dir} cannot be read`,
      fix: "see the runtime dir check",
    };
  }
  const results = await Promise.all(
    names.map(async (n) => [n, await probe({ path: join(dir, n) }, timeoutMs)] as const),
  );
  const stale = results.filter(([, r]) => r === "refused").map(([n]) => n);
  const unknown = results.filter(([, r]) => r !== "refused" && r !== "listening" && r !== "gone");
  const live = results.filter(([, r]) => r === "listening").length;
  let pidNote = "";
  let stalePid: string | undefined;
  try {
    const pid = Number((await readFile(join(dir, "hub.pid"), "utf8")).trim());
    if (Number.isInteger(pid) && pid > 0 && !processRunning(pid)) {
      stalePid = join(dir, "hub.pid");
      pidNote = `; hub.pid names pid ${pid}, which is not running`;
    }
  } catch {
    // no pid file: no hub ran here, or it stopped cleanly
  }
  const removals = [...stale.map((n) => join(dir, n)), ...(stalePid !== undefined ? [stalePid] : [])];
  if (removals.length > 0) {
    return {
      check: "sockets",
      status: "WARN",
      detail:
        (stale.length > 0
          ? `${stale.length} of ${names.length} sockets have nobody listening (left behind by processes that ended): ${stale.join(", ")}`
          : `${names.length} sockets, all listened on`) + pidNote,
      fix: `they do no harm (a new hub or node binds over its own), but clutter: rm ${removals.join(" ")}`,
    };
  }
  if (unknown.length > 0) {
    return {
      check: "sockets",
      status: "WARN",
      detail: `${unknown.length} of ${names.length} sockets could not be probed: ${unknown.map(([n, r]) => `${n} (${r})`).join(", ")}`,
      fix: "check the permissions of the runtime directory and its sockets",
    };
  }
  return { check: "sockets", status: "OK", detail: `${live} sockets in ${dir}, each one listened on` };
}

/** Asks the hub for its graph and, when served, `/_hub/info` (timing the call to measure its clock). */
async function askHub(
  ctx: Context,
  node: Node,
  endpoint: string,
  timeoutMs: number,
): Promise<{ view?: HubView; result: CheckResult; extra: CheckResult[] }> {
  let graph: GraphSnapshot;
  try {
    graph = await unlessInterrupted(node.queryGraph(timeoutMs), ctx.signal);
  } catch (err) {
    if (!(err instanceof MyelinError)) throw err;
    return {
      result: {
        check: "hub",
        status: "FAIL",
        detail: `no hub answered at ${endpoint} within ${timeoutMs} ms (${err.code})`,
        fix: "start one with `myelin hub` (or `myelin up`), or point --hub / MYELIN_HUB at the running one",
      },
      extra: [],
    };
  }
  const view: HubView = { graph, here: node.host };
  const extra: CheckResult[] = [];
  const nodes = graph.nodes.filter((n) => !n.name.startsWith("_"));
  const counts = `${nodes.length} node${nodes.length === 1 ? "" : "s"}`;
  if (!graphServes(graph, HUB_INFO_PROTOCOL.info)) {
    return {
      view,
      result: {
        check: "hub",
        status: "WARN",
        detail: `answers at ${endpoint} (hub ${graph.hub}, ${counts}) but does not report its version, pid or directories`,
        fix: "it is an older hub, or not `myelin hub`; upgrade it so version, clock and store can be checked",
      },
      extra,
    };
  }
  try {
    const t0 = Date.now();
    const info = await unlessInterrupted(fetchHubInfo(node, timeoutMs), ctx.signal);
    const t1 = Date.now();
    view.info = info;
    view.clock = { offsetMs: info.time_ms - (t0 + t1) / 2, errorMs: (t1 - t0) / 2 };
  } catch (err) {
    if (!(err instanceof MyelinError)) throw err;
    return {
      view,
      result: {
        check: "hub",
        status: "WARN",
        detail: `answers at ${endpoint} (hub ${graph.hub}), but ${HUB_INFO_SERVICE} failed: ${errText(err)}`,
        fix: "the hub may be overloaded; look at its output, or restart it",
      },
      extra,
    };
  }
  const i = view.info;
  const where = `myelin ${i.version}, pid ${i.pid} on ${i.host}, up ${ago(i.started_at)}, runtime dir ${i.runtime_dir}`;
  const result: CheckResult = {
    check: "hub",
    status: "OK",
    detail: `answers at ${endpoint}: ${where}; ${counts}`,
  };
  if (i.version !== version()) {
    extra.push({
      check: "versions",
      status: "WARN",
      detail: `the hub runs myelin ${i.version}, this CLI is ${version()}`,
      fix: "run the same Myelin version on the hub and its nodes (restart the hub after upgrading)",
    });
  }
  const notReady = nodes.filter((n) => n.ready === false).map((n) => n.name);
  if (notReady.length > 0) {
    extra.push({
      check: "nodes",
      status: "WARN",
      detail: `${notReady.length} of ${nodes.length} nodes report not ready: ${notReady.join(", ")}`,
      fix: "look at them with `myelin node info NAME` and, if supervised, `myelin ps` / `myelin logs NAME`",
    });
  }
  return { view, result, extra };
}

/** The hub's clock against ours, and the start times of nodes on other hosts. */
function checkClock(view: HubView | undefined): CheckResult {
  if (view === undefined) {
    return {
      check: "clock",
      status: "SKIP",
      detail: "not checked: no hub answered",
      fix: "nodes report no heartbeat times, so the clock is compared with the hub's; start the hub and run again",
    };
  }
  const here = view.here;
  const now = Date.now();
  const ahead = view.graph.nodes.filter((n) => n.host !== here && n.startedAt > now + 2000);
  const aheadNote =
    ahead.length > 0
      ? `; nodes started in the future by this clock: ${ahead.map((n) => `${n.name} on ${n.host} (+${((n.startedAt - now) / 1000).toFixed(1)} s)`).join(", ")}`
      : "";
  if (view.clock === undefined || view.info === undefined) {
    return {
      check: "clock",
      status: ahead.length > 0 ? "WARN" : "SKIP",
      detail: `the hub does not report its clock (no ${HUB_INFO_SERVICE}), and nodes report no heartbeat times${aheadNote}`,
      fix:
        ahead.length > 0
          ? "sync the clocks of these hosts with NTP (chrony or systemd-timesyncd)"
          : "upgrade the hub to compare clocks",
    };
  }
  const { offsetMs, errorMs } = view.clock;
  const measured = `${offsetMs >= 0 ? "+" : ""}${offsetMs.toFixed(1)} ms (±${errorMs.toFixed(1)} ms)`;
  if (view.info.host === here && ahead.length === 0) {
    return {
      check: "clock",
      status: "OK",
      detail: `the hub runs on this host (same clock; measured ${measured})`,
    };
  }
  if (Math.abs(offsetMs) - errorMs > CLOCK_WARN_MS || ahead.length > 0) {
    return {
      check: "clock",
      status: "WARN",
      detail: `the clock of ${view.info.host} (hub) differs from this host's by ${measured}${aheadNote}`,
      fix: "sync the clocks with NTP (chrony or systemd-timesyncd): message stamps, `topic delay` and `topic read --from-time` depend on them",
    };
  }
  return { check: "clock", status: "OK", detail: `hub on ${view.info.host}: offset ${measured}` };
}

/** Where the data directory check should look, or why it is skipped. */
function dataDirOf(
  inv: Invocation,
  view: HubView | undefined,
): { dir: string; hubUses: boolean } | CheckResult {
  const given = strOpt(inv, "data-dir");
  const info = view?.info;
  if (info !== undefined && info.host !== view?.here && given === undefined) {
    return {
      check: "data dir",
      status: "SKIP",
      detail: `the hub runs on ${info.host}`,
      fix: "run `myelin doctor` on that host to check its data directory",
    };
  }
  if (info !== undefined && info.data_dir === "" && given === undefined) {
    return {
      check: "data dir",
      status: "SKIP",
      detail: "the hub runs without a store (--no-store): no durable topics",
      fix: "check a directory anyway with --data-dir DIR",
    };
  }
  const dir = given ?? (info !== undefined && info.data_dir !== "" ? info.data_dir : defaultDataDir());
  return { dir, hubUses: info !== undefined && info.data_dir === dir };
}

/** The data directory: exists, writable, free space, not a tmpfs. */
async function checkDataDir(dir: string, hubUses: boolean, view: HubView | undefined): Promise<CheckResult> {
  const c = "data dir";
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) {
      return {
        check: c,
        status: "FAIL",
        detail: `${dir} is not a directory`,
        fix: "remove it, or pass --data-dir to the hub",
      };
    }
  } catch {
    return {
      check: c,
      status: hubUses ? "FAIL" : "WARN",
      detail: `${dir} does not exist`,
      fix: hubUses
        ? "the hub's store lost its directory: restart the hub, which creates it"
        : "the hub creates it when it starts with its store; nothing to do unless you meant another one (--data-dir)",
    };
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    return {
      check: c,
      status: "FAIL",
      detail: `${dir} is not writable by this user`,
      fix: `run the hub as the directory's owner, or fix its permissions (chown/chmod), or use another one (--data-dir)`,
    };
  }
  let free: number | undefined;
  let total: number | undefined;
  let tmpfs = false;
  try {
    const fs = await statfs(dir);
    free = fs.bavail * fs.bsize;
    total = fs.blocks * fs.bsize;
    tmpfs = fs.type === TMPFS_MAGIC;
  } catch {
    // statfs not supported here
  }
  const fullSince = view?.info !== undefined && hubUses ? view.info.store_disk_full_since : 0;
  const space =
    free === undefined
      ? "free space unknown"
      : `${mib(free)} free${total !== undefined && total > 0 ? ` (${((100 * free) / total).toFixed(0)} %)` : ""}`;
  if (fullSince > 0) {
    return {
      check: c,
      status: "FAIL",
      detail: `${dir}: the store has refused writes since ${new Date(fullSince).toISOString()} (disk full); ${space}`,
      fix: "free space on that file system (or lower retention: `myelin topic config TOPIC --max-bytes N`)",
    };
  }
  if (free !== undefined && free < FAIL_FREE_BYTES) {
    return {
      check: c,
      status: "FAIL",
      detail: `${dir}: only ${space}`,
      fix: "free space on that file system: persistent publishes fail with ERR_STORAGE when it is full",
    };
  }
  if (free !== undefined && (free < WARN_FREE_BYTES || (total !== undefined && free < total * 0.05))) {
    return {
      check: c,
      status: "WARN",
      detail: `${dir}: ${space}`,
      fix: "free space, or limit retention (`myelin topic config TOPIC --max-bytes N`)",
    };
  }
  if (tmpfs) {
    return {
      check: c,
      status: "WARN",
      detail: `${dir} is on a tmpfs (${space}): durable topics are lost at reboot`,
      fix: "give the hub a data directory on a disk (--data-dir, MYELIN_DATA_DIR)",
    };
  }
  return {
    check: c,
    status: "OK",
    detail: `${dir}: writable, ${space}${hubUses ? ", used by the hub's store" : ""}`,
  };
}

/** The LOCK files of the data directory (store, MQTT sessions, bridge queues) and their holders. */
async function checkLocks(dir: string, hubUses: boolean, view: HubView | undefined): Promise<CheckResult> {
  const c = "locks";
  const dirs = [dir, join(dir, "mqtt")];
  try {
    for (const b of await readdir(join(dir, "bridges"))) dirs.push(join(dir, "bridges", b, "queue"));
  } catch {
    // no bridges
  }
  // A lock names the system's host name; the hub goes by its site name (`--host`), which this
  // tool's node took from it when both run here.
  const here = hostname();
  const hubPid = view?.info !== undefined && view.info.host === view.here ? view.info.pid : undefined;
  const found: { dir: string; holder: LockHolder | undefined }[] = [];
  for (const d of dirs) {
    try {
      await stat(join(d, "LOCK"));
    } catch {
      continue;
    }
    found.push({ dir: d, holder: DirLock.holder(d) });
  }
  if (found.length === 0) {
    if (hubUses) {
      return {
        check: c,
        status: "WARN",
        detail: `${join(dir, "LOCK")} is missing although the hub's store uses ${dir}`,
        fix: "something removed it: another hub could now open the same directory; restart the hub to take the lock again",
      };
    }
    return { check: c, status: "OK", detail: `no LOCK in ${dir}: no process holds it` };
  }
  const warns: string[] = [];
  const fixes: string[] = [];
  const oks: string[] = [];
  for (const { dir: d, holder: h } of found) {
    const file = join(d, "LOCK");
    if (h === undefined) {
      warns.push(`${file} cannot be read`);
      fixes.push(`if no hub runs on it, remove ${file}`);
      continue;
    }
    const who = `${h.what}, pid ${h.pid} on ${h.host}`;
    if (!holderAlive(h, here)) {
      warns.push(`${file}: stale (${who} is gone)`);
      fixes.push(`nothing needed: the next hub takes over ${file} (and logs it); or remove it`);
    } else if (h.host !== here) {
      warns.push(`${file}: held from another host (${who})`);
      fixes.push(`if ${h.host} no longer uses ${d}, remove ${file}`);
    } else if (hubPid !== undefined && h.pid === hubPid) {
      oks.push(`${file}: held by the hub (pid ${h.pid})`);
    } else {
      warns.push(`${file}: held by ${who}, a live process that is not the hub answering here`);
      fixes.push(
        `a hub started on ${d} refuses with ERR_LOCKED: stop pid ${h.pid}, or give the hub another --data-dir`,
      );
    }
  }
  if (warns.length > 0)
    return { check: c, status: "WARN", detail: [...warns, ...oks].join("; "), fix: fixes.join("; ") };
  return { check: c, status: "OK", detail: oks.join("; ") };
}

/** The host to probe a listener bound to `addr` on: the hub's host for a wildcard address. */
function probeHost(addr: string, view: HubView | undefined, inv: Invocation): string {
  const a = addr.replace(/^\[|\]$/g, "");
  if (a !== "0.0.0.0" && a !== "::") return a;
  const hub = strOpt(inv, "hub") ?? process.env["MYELIN_HUB"];
  const remote =
    hub !== undefined && hub.startsWith("tcp://")
      ? /^tcp:\/\/\[?([^\]]+?)\]?:\d+$/.exec(hub)?.[1]
      : undefined;
  if (view?.info !== undefined && view.info.host !== view.here && remote !== undefined) return remote;
  return a === "::" ? "::1" : "127.0.0.1";
}

/** The MQTT gateway's listeners (each probed) and the bridges' connections, as the hub reports them. */
async function checkGatewayAndBridges(
  ctx: Context,
  node: Node,
  view: HubView | undefined,
  inv: Invocation,
  timeoutMs: number,
): Promise<CheckResult[]> {
  if (view === undefined) return [];
  const out: CheckResult[] = [];
  if (graphServes(view.graph, GATEWAY_PROTOCOL.status)) {
    const client = gatewayClient(node, { timeoutMs });
    try {
      const s = await unlessInterrupted(client.status({}), ctx.signal);
      for (const url of s.listeners) {
        const m = /^(\w+):\/\/(\[[^\]]+\]|[^:/]+):(\d+)/.exec(url);
        if (m === null) continue;
        const host = probeHost(m[2]!, view, inv);
        const r = await probe({ host, port: Number(m[3]) }, timeoutMs);
        out.push(
          r === "listening"
            ? { check: "mqtt", status: "OK", detail: `${url} accepts connections (probed ${host}:${m[3]})` }
            : {
                check: "mqtt",
                status: "FAIL",
                detail: `${url}: a connection to ${host}:${m[3]} failed (${r})`,
                fix: "the gateway reports this listener but it does not accept connections: check firewalls, then restart the hub",
              },
        );
      }
      if (s.listeners.length === 0) {
        out.push({
          check: "mqtt",
          status: "FAIL",
          detail: "the MQTT gateway runs without a listener",
          fix: "give it one: `myelin hub --mqtt-port 1883` or listeners in --gateway-config",
        });
      }
    } catch (err) {
      if (!(err instanceof MyelinError)) throw err;
      out.push({
        check: "mqtt",
        status: "WARN",
        detail: `the MQTT gateway did not answer: ${errText(err)}`,
        fix: "look at the hub's output; `myelin gateway status`",
      });
    } finally {
      client.close();
    }
  } else {
    out.push({
      check: "mqtt",
      status: "SKIP",
      detail: "no MQTT gateway runs",
      fix: "devices connect over MQTT when the hub runs with --mqtt-port or --gateway-config",
    });
  }
  if (graphServes(view.graph, BRIDGE_PROTOCOL.status)) {
    try {
      for (const b of await unlessInterrupted(fetchBridgeStatus(node, { timeoutMs }), ctx.signal)) {
        const c = `bridge ${b.name}`;
        if (b.state !== "connected") {
          out.push({
            check: c,
            status: "WARN",
            detail: `${b.kind} ${b.url}: ${b.state} for ${ago(b.since)}${b.lastError !== undefined ? `; last error: ${b.lastError}` : ""}`,
            fix: "check that the broker runs and is reachable from this host, and the bridge's credentials; outbound QoS 1 messages wait in its queue meanwhile",
          });
        } else if (b.queue !== undefined && b.queue.refused > 0) {
          out.push({
            check: c,
            status: "WARN",
            detail: `${b.kind} ${b.url}: connected, but ${b.queue.refused} messages were refused because the offline queue was full`,
            fix: "raise the bridge's queue.maxMessages / queue.maxBytes, or keep the broker reachable",
          });
        } else {
          out.push({ check: c, status: "OK", detail: `${b.kind} ${b.url}: connected for ${ago(b.since)}` });
        }
      }
    } catch (err) {
      if (!(err instanceof MyelinError)) throw err;
      out.push({
        check: "bridges",
        status: "WARN",
        detail: `the bridges did not answer: ${errText(err)}`,
        fix: "look at the hub's output; `myelin bridge status`",
      });
    }
  }
  if (graphServes(view.graph, FOXGLOVE_PROTOCOL.status)) {
    try {
      const st = await unlessInterrupted(fetchFoxgloveStatus(node, { timeoutMs }), ctx.signal);
      const dropped = st.clients.reduce((n, c) => n + c.dropped, 0);
      const detail = `${st.url}${st.tls ? " (TLS)" : ""}: ${st.clients.length} client(s), ${st.channels} channels`;
      if (dropped > 0) {
        out.push({
          check: "foxglove",
          status: "WARN",
          detail: `${detail}; ${dropped} messages dropped for clients reading slower than topics come`,
          fix: "see `myelin foxglove status`: cap the rates (?maxHz= in the client's URL, maxHz in --foxglove-config) or subscribe to fewer topics",
        });
      } else {
        out.push({ check: "foxglove", status: "OK", detail });
      }
    } catch (err) {
      if (!(err instanceof MyelinError)) throw err;
      out.push({
        check: "foxglove",
        status: "WARN",
        detail: `the Foxglove server did not answer: ${errText(err)}`,
        fix: "look at the hub's output; `myelin foxglove status`",
      });
    }
  }
  return out;
}

/**
 * The hub's metrics endpoint, when it serves one (`<runtime dir>/metrics.json`): that it answers a
 * scrape. Undefined when the hub serves no metrics.
 */
async function checkMetrics(dir: string, timeoutMs: number): Promise<CheckResult | undefined> {
  let m: MetricsFile;
  try {
    m = JSON.parse(await readFile(metricsFile(dir), "utf8")) as MetricsFile;
  } catch {
    return undefined;
  }
  if (!processRunning(m.pid)) {
    return {
      check: "metrics",
      status: "WARN",
      detail: `${m.url} was served by hub pid ${m.pid}, which is gone`,
      fix: "start the hub again with --metrics ADDR:PORT (or MYELIN_METRICS); Prometheus sees the target down meanwhile",
    };
  }
  try {
    const res = await fetch(m.url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    const series = body.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length;
    return {
      check: "metrics",
      status: "OK",
      detail: `Prometheus endpoint ${m.url} answers (${series} series); see docs/metrics.md`,
    };
  } catch (err) {
    return {
      check: "metrics",
      status: "WARN",
      detail: `the Prometheus endpoint ${m.url} of hub pid ${m.pid} does not answer: ${errText(err)}`,
      fix: "look at the hub's output; a firewall between this tool and the address, or a hub that is stuck",
    };
  }
}

/**
 * Shared memory for large frames: the addon loaded (or why not), and pools left in /dev/shm by
 * processes that were killed.
 */
async function checkSharedMemory(): Promise<CheckResult> {
  const st = shmStatus();
  if (!st.available) {
    if (st.detail.startsWith("disabled")) {
      return {
        check: "shared memory",
        status: "OK",
        detail: `off (${st.detail}): large frames are copied over the socket`,
      };
    }
    return {
      check: "shared memory",
      status: "WARN",
      detail: `off: ${st.detail}; large frames are copied over the socket (slower for camera frames and point clouds)`,
      fix: "install g++, make and python3, then `npm rebuild myelin` (or `node scripts/build-native.mjs` in a checkout)",
    };
  }
  let orphans = 0;
  try {
    for (const n of await readdir("/dev/shm"))
      if (n.startsWith(POOL_NAME_PREFIX) && poolOwnerGone(n)) orphans++;
  } catch {
    return {
      check: "shared memory",
      status: "WARN",
      detail: "the addon loaded but /dev/shm cannot be read",
      fix: "mount a tmpfs on /dev/shm (containers: give them a shared-memory size)",
    };
  }
  if (orphans > 0) {
    return {
      check: "shared memory",
      status: "WARN",
      detail: `on; ${orphans} pool(s) in /dev/shm belong to processes that are gone`,
      fix: "they are removed by the next Myelin process here that publishes large frames, or `rm /dev/shm/myelin-shm-*` of dead pids",
    };
  }
  return {
    check: "shared memory",
    status: "OK",
    detail: `on: frames of 64 KiB and more go to subscribers on this host through /dev/shm (${st.detail})`,
  };
}

/**
 * Runs every check and returns the results in report order. Never throws for what it finds; only
 * Ctrl-C (Interrupted) ends it early.
 */
export async function runChecks(ctx: Context, inv: Invocation, timeoutMs: number): Promise<CheckResult[]> {
  const opts = connectOpts(inv);
  const dir = runtimeDir(opts.runtimeDir);
  // Before the tool node exists: creating it would create the runtime directory and fix its mode.
  const runtime = await checkRuntimeDir(dir);
  let node: Node | undefined;
  let hubCheck: CheckResult | undefined;
  let view: HubView | undefined;
  let extra: CheckResult[] = [];
  try {
    node = await createNode({ name: `_myelin_doctor_${process.pid}`, ...opts });
  } catch (err) {
    hubCheck = {
      check: "hub",
      status: "FAIL",
      detail: `cannot join as a node: ${errText(err)}`,
      fix: "fix the runtime directory (see its check), or the address in --hub / MYELIN_HUB",
    };
  }
  try {
    if (node !== undefined) {
      const r = await askHub(ctx, node, hubEndpoint(opts), timeoutMs);
      hubCheck = r.result;
      view = r.view;
      extra = r.extra;
    }
    const results: CheckResult[] = [...(hubCheck !== undefined ? [hubCheck] : []), ...extra, runtime];
    results.push(await checkSockets(dir, timeoutMs, node?.endpoint));
    results.push(checkClock(view));
    results.push(await checkSharedMemory());
    const where = dataDirOf(inv, view);
    if ("check" in where) results.push(where);
    else {
      results.push(await checkDataDir(where.dir, where.hubUses, view));
      results.push(await checkLocks(where.dir, where.hubUses, view));
    }
    if (node !== undefined) results.push(...(await checkGatewayAndBridges(ctx, node, view, inv, timeoutMs)));
    const metrics = await checkMetrics(dir, timeoutMs);
    if (metrics !== undefined) results.push(metrics);
    return results;
  } finally {
    await node?.close();
  }
}

/** `myelin doctor`: checks of this host's setup, printed as OK/WARN/FAIL with what to do. */
export const doctorCommand: CommandSpec = {
  path: ["doctor"],
  summary:
    "check this host's Myelin setup: hub, runtime dir, sockets, clock, data dir, MQTT, bridges and metrics",
  args: [],
  options: {
    "data-dir": {
      type: "string",
      arg: "DIR",
      help: "the data directory to check (default: the hub's, else $MYELIN_DATA_DIR or ~/.local/share/myelin)",
    },
    "timeout-ms": {
      type: "string",
      arg: "N",
      help: "how long to wait for the hub and each probe, in ms (default 2000)",
    },
    json: {
      type: "boolean",
      help: 'print {"ok", "checks": [{"check","status","detail","fix"}]} instead of the table',
    },
  },
  details: [
    "Each check is OK, WARN (works, but look at it), FAIL (broken) or SKIP (not applicable here); the",
    "WARN and FAIL lines say what to do. The exit code is 1 when a check failed, else 0. Checks: the hub",
    "answers (version, pid, runtime dir), the runtime directory (exists, owner, mode 0700), stale sockets",
    "in it (files nobody listens on), the clock against the hub's, the data directory (writable, free space,",
    "its LOCK files and whether their holders still run), the MQTT gateway's listeners and the bridges.",
  ],
  examples: ["myelin doctor", "myelin doctor --json | jq '.checks[] | select(.status != \"OK\")'"],
  connects: true,
  async run(ctx, inv) {
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "doctor" }) ?? 2000;
    const results = await runChecks(ctx, inv, timeoutMs);
    const count = (s: CheckStatus): number => results.filter((r) => r.status === s).length;
    const failed = count("FAIL");
    if (boolOpt(inv, "json")) {
      ctx.out(JSON.stringify({ ok: failed === 0, checks: results }, null, 2));
    } else {
      for (const l of table(
        ["STATUS", "CHECK", "DETAIL"],
        results.map((r) => [r.status, r.check, r.detail]),
      ))
        ctx.out(l);
      const todo = results.filter((r) => r.fix !== undefined && (r.status === "WARN" || r.status === "FAIL"));
      if (todo.length > 0) {
        ctx.out("");
        ctx.out("What to do:");
        for (const r of todo) ctx.out(`  ${r.status} ${r.check}: ${r.fix}`);
      }
      ctx.out("");
      ctx.out(
        `${results.length} checks: ${count("OK")} OK, ${count("WARN")} WARN, ${failed} FAIL, ${count("SKIP")} skipped`,
      );
    }
    return failed > 0 ? 1 : 0;
  },
};
