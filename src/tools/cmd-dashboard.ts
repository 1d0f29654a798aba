/**
 * `myelin dashboard`, which prints the running dashboard's address with its token. The hub's options
 * (`myelin hub --http-port 8080`, `--http-host`, `--http-tls-cert`/`--http-tls-key`, token from
 * `$MYELIN_DASHBOARD_TOKEN` or `--http-token-file`) are in hub-extras.ts.
 */
import { existsSync, readFileSync } from "node:fs";
import { myelinError } from "../errors.js";
import { processRunning } from "../orchestrator/index.js";
import { dashboardFile, type DashboardFile } from "../web/index.js";
import { boolOpt, strOpt, type CommandSpec } from "./common.js";

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
