/**
 * `myelin foxglove status`, and the hub's Foxglove options (`myelin hub --foxglove-port N`): the
 * Foxglove WebSocket server run inside the hub process (docs/foxglove.md).
 */
import {
  checkToken,
  fetchFoxgloveStatus,
  FOXGLOVE_PROTOCOL,
  foxglovePlugin,
  loadFoxgloveConfig,
  type FoxgloveSettings,
} from "../foxglove/index.js";
import type { HubPlugin } from "../hub/index.js";
import { graphServes } from "../node/index.js";
import {
  boolOpt,
  numOpt,
  strOpt,
  unlessInterrupted,
  UsageError,
  withNode,
  type CommandSpec,
  type Invocation,
  type OptionSpec,
} from "./common.js";
import { ago, table } from "./format.js";

/** Options `myelin hub` takes for the Foxglove server. */
export const HUB_FOXGLOVE_OPTIONS: Record<string, OptionSpec> = {
  "foxglove-port": {
    type: "string",
    arg: "N",
    help: "serve Foxglove and Lichtblick on port N (e.g. 8765; 0 picks a free one; overrides port of --foxglove-config)",
  },
  "foxglove-host": {
    type: "string",
    arg: "ADDR",
    help: "the address the Foxglove server listens on (default 127.0.0.1, this host only; 0.0.0.0 for every interface)",
  },
  "foxglove-token": {
    type: "string",
    arg: "TOKEN",
    help: "the token Foxglove clients must give (default: $MYELIN_FOXGLOVE_TOKEN, else one made at start and printed); other users see command lines with ps: prefer the variable or tokenFile in --foxglove-config",
  },
  "foxglove-config": {
    type: "string",
    arg: "FILE",
    help: "run the Foxglove server as FILE (YAML) says: address, token, TLS, topic allow-lists, send budget, rate caps (see docs/foxglove.md)",
  },
};

/**
 * The Foxglove plugin as `--foxglove-port`, `--foxglove-host`, `--foxglove-token` and
 * `--foxglove-config` say (the options win over the file), or undefined when none is given.
 * @throws MyelinError ERR_BAD_CONFIG for a bad file or token
 */
export function hubFoxglovePlugin(inv: Invocation): HubPlugin | undefined {
  const file = strOpt(inv, "foxglove-config");
  const port = numOpt(inv, "foxglove-port", { min: 0, max: 65535, integer: true, command: "hub" });
  if (file === undefined && port === undefined) {
    for (const o of ["foxglove-host", "foxglove-token"]) {
      if (strOpt(inv, o) !== undefined)
        throw new UsageError(
          `hub: --${o} needs --foxglove-port or --foxglove-config (the server is off without them)`,
        );
    }
    return undefined;
  }
  const settings: Partial<FoxgloveSettings> = file !== undefined ? loadFoxgloveConfig(file) : {};
  if (port !== undefined) settings.port = port;
  const host = strOpt(inv, "foxglove-host");
  if (host !== undefined) settings.host = host;
  const envToken = process.env["MYELIN_FOXGLOVE_TOKEN"];
  const token =
    strOpt(inv, "foxglove-token") ?? (envToken !== undefined && envToken !== "" ? envToken : undefined);
  if (token !== undefined) {
    settings.token = checkToken(
      token,
      strOpt(inv, "foxglove-token") !== undefined ? "--foxglove-token" : "MYELIN_FOXGLOVE_TOKEN",
    );
  }
  return foxglovePlugin(settings);
}

function mb(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MiB`
    : `${(bytes / 1024).toFixed(1)} KiB`;
}

export const foxgloveStatusCommand: CommandSpec = {
  path: ["foxglove", "status"],
  summary:
    "show the Foxglove server's clients and, per client and topic, what was sent, dropped and throttled",
  args: [],
  options: {
    json: { type: "boolean", help: "print the status as JSON" },
    "timeout-ms": {
      type: "string",
      arg: "N",
      help: "give up when the server did not answer within N ms (default 3000)",
    },
  },
  details: [
    `Asks the hub's Foxglove server (the hidden service ${FOXGLOVE_PROTOCOL.status.service}).`,
    "Per client: its address and subprotocol, the bytes waiting for it (QUEUED, within its send budget) and the messages dropped.",
    "Per client and topic: SENT, DROPPED (oldest first, when the client reads slower than the topic comes: the budget is full),",
    "THROTTLED (held back by a rate cap, MAX HZ, from the server's config or the client's ?maxHz=), QUEUED.",
    "Refused connections are counted by reason: no token, wrong token, bad request, too many clients.",
  ],
  examples: ["myelin foxglove status", "myelin foxglove status --json"],
  connects: true,
  async run(ctx, inv) {
    const timeoutMs =
      numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "foxglove status" }) ?? 3000;
    return withNode(ctx, inv, "foxglove_status", async (node, graph) => {
      if (!graphServes(graph, FOXGLOVE_PROTOCOL.status)) {
        ctx.err(
          "no Foxglove server runs: start the hub with `myelin hub --foxglove-port 8765` (see docs/foxglove.md)",
        );
        return 1;
      }
      {
        const st = await unlessInterrupted(fetchFoxgloveStatus(node, { timeoutMs }), ctx.signal);
        if (boolOpt(inv, "json")) {
          ctx.out(JSON.stringify(st, null, 2));
          return 0;
        }
        const refused = Object.entries(st.refused)
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${n} ${k}`);
        ctx.out(
          `Foxglove server ${st.url}${st.tls ? " (TLS)" : ""}, up ${ago(st.startedAt)}: ${st.channels} channels, ${st.services} services, ` +
            `${st.clients.length} client(s); send budget ${mb(st.sendBudgetBytes)} per client` +
            (st.maxHz.length > 0 ? `; caps ${st.maxHz.map((c) => `${c.pattern}:${c.hz}`).join(", ")}` : "") +
            (refused.length > 0 ? `; refused: ${refused.join(", ")}` : ""),
        );
        if (st.clients.length > 0) {
          ctx.out("");
          for (const l of table(
            ["CLIENT", "ADDRESS", "PROTOCOL", "CONNECTED", "QUEUED", "DROPPED", "PUBLISHED", "CALLS"],
            st.clients.map((c) => [
              String(c.id),
              c.address,
              c.subprotocol,
              ago(c.connectedAt),
              `${mb(c.queuedBytes + c.inFlightBytes)} / ${mb(c.budgetBytes)}`,
              String(c.dropped),
              String(c.publishing.reduce((n, p) => n + p.published, 0)),
              String(c.serviceCalls),
            ]),
          )) {
            ctx.out(l);
          }
          const rows = st.clients.flatMap((c) =>
            c.subscriptions.map((s) => [
              String(c.id),
              s.topic,
              String(s.sent),
              String(s.dropped),
              String(s.throttled),
              String(s.queued),
              s.maxHz === null ? "-" : String(s.maxHz),
            ]),
          );
          if (rows.length > 0) {
            ctx.out("");
            for (const l of table(
              ["CLIENT", "TOPIC", "SENT", "DROPPED", "THROTTLED", "QUEUED", "MAX HZ"],
              rows,
            ))
              ctx.out(l);
          }
        }
        for (const n of st.notAdvertised) ctx.out(`not offered: ${n.name}: ${n.reason}`);
        return 0;
      }
    });
  },
};
