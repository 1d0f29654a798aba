/**
 * The dashboard in the CLI: the hub's options (`myelin hub --http-port 8080`, `--http-host`,
 * `--http-tls-cert`/`--http-tls-key`, token from `$MYELIN_DASHBOARD_TOKEN` or `--http-token-file`)
 * and `myelin dashboard`, which prints the running dashboard's address with its token.
 */
import { existsSync, readFileSync } from "node:fs";
import { myelinError } from "../errors.js";
import type { HubPlugin } from "../hub/index.js";
import { processRunning } from "../orchestrator/index.js";
import { dashboardFile, dashboardPlugin, type DashboardFile, type DashboardOptions } from "../web/index.js";
import {
  boolOpt,
  numOpt,
  strOpt,
  UsageError,
  type CommandSpec,
  type Invocation,
  type OptionSpec,
} from "./common.js";

/** Options `myelin hub` takes for the dashboard. */
export const HUB_DASHBOARD_OPTIONS: Record<string, OptionSpec> = {
  "http-port": {
    type: "string",
    arg: "N",
    help: "serve the web dashboard on port N (0: any free port; default: no dashboard); see docs/dashboard.md",
  },
  "http-host": {
    type: "string",
    arg: "ADDR",
    help: "address the dashboard listens on (default 127.0.0.1; another one wants --http-tls-cert/--http-tls-key)",
  },
  "http-token-file": {
    type: "string",
    arg: "FILE",
    help: "read the dashboard's token from FILE (default: $MYELIN_DASHBOARD_TOKEN, else a new random one each start)",
  },
  "http-tls-cert": {
    type: "string",
    arg: "FILE",
    help: "serve the dashboard over HTTPS with this PEM certificate",
  },
  "http-tls-key": { type: "string", arg: "FILE", help: "the PEM key of --http-tls-cert" },
};

/**
 * The dashboard plugin `inv` asks for, or undefined without `--http-port`.
 * @throws UsageError for a bad port, half a TLS pair or an unreadable token file
 */
export function hubDashboardPlugin(inv: Invocation): HubPlugin | undefined {
  const port = numOpt(inv, "http-port", { min: 0, max: 65535, integer: true, command: "hub" });
  if (port === undefined) {
    for (const o of ["http-host", "http-token-file", "http-tls-cert", "http-tls-key"]) {
      if (strOpt(inv, o) !== undefined) throw new UsageError(`hub: --${o} needs --http-port`, "hub");
    }
    return undefined;
  }
  const opts: DashboardOptions = { port };
  const host = strOpt(inv, "http-host");
  if (host !== undefined) opts.host = host;
  const cert = strOpt(inv, "http-tls-cert");
  const key = strOpt(inv, "http-tls-key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("hub: give both --http-tls-cert and --http-tls-key, or neither", "hub");
  }
  if (cert !== undefined && key !== undefined) opts.tls = { certFile: cert, keyFile: key };
  const tokenFile = strOpt(inv, "http-token-file");
  if (tokenFile !== undefined) {
    try {
      opts.token = readFileSync(tokenFile, "utf8").trim();
    } catch (err) {
      throw new UsageError(
        `hub: cannot read --http-token-file ${tokenFile}: ${(err as Error).message}`,
        "hub",
      );
    }
  } else {
    const env = process.env["MYELIN_DASHBOARD_TOKEN"];
    if (env !== undefined && env !== "") opts.token = env;
  }
  return dashboardPlugin(opts);
}

export const dashboardCommand: CommandSpec = {
  path: ["dashboard"],
  summary: "print the address (with its token) of the web dashboard the hub of this host serves",
  args: [],
  options: {
    json: { type: "boolean", help: "print {url, token, pid} as JSON" },
    "runtime-dir": {
      type: "string",
      arg: "DIR",
      help: "runtime directory of the hub (default: $MYELIN_RUNTIME_DIR, else $XDG_RUNTIME_DIR/myelin, else /tmp/myelin-<uid>)",
    },
  },
  details: [
    "The hub serves the dashboard when started with --http-port; it writes the address and token to <runtime dir>/dashboard.json (readable by its user only).",
    "Exit code 1 when no dashboard runs here.",
  ],
  examples: [
    "myelin dashboard",
    "myelin hub --http-port 8080 &  myelin dashboard",
    'xdg-open "$(myelin dashboard)"',
  ],
  connects: false,
  async run(ctx, inv) {
    const file = dashboardFile(strOpt(inv, "runtime-dir"));
    let d: DashboardFile | undefined;
    if (existsSync(file)) d = JSON.parse(readFileSync(file, "utf8")) as DashboardFile;
    if (d === undefined || !processRunning(d.pid)) {
      throw myelinError(
        "ERR_HUB_UNREACHABLE",
        `no dashboard runs here (${d === undefined ? `no ${file}` : `its hub, pid ${d.pid}, is gone`}); start one with \`myelin hub --http-port 8080\` or \`npm run demo\``,
      );
    }
    ctx.out(boolOpt(inv, "json") ? JSON.stringify(d) : d.url);
    return 0;
  },
};
