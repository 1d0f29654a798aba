/**
 * `myelin foxglove status`: the Foxglove WebSocket server run inside the hub process
 * (docs/foxglove.md). The hub's options (`myelin hub --foxglove-port N`) are in hub-extras.ts.
 */
import { fetchFoxgloveStatus, FOXGLOVE_PROTOCOL } from "../foxglove/index.js";
import { graphServes } from "../node/index.js";
import { boolOpt, numOpt, unlessInterrupted, withNode, type CommandSpec } from "./common.js";
import { ago, table } from "./format.js";

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
