/**
 * `myelin gateway status|hash-password`. The hub's MQTT gateway options (`myelin hub --mqtt-port N
 * --gateway-config FILE`) are in hub-extras.ts.
 */
import { createInterface } from "node:readline";
import { GATEWAY_PROTOCOL, gatewayClient, hashPassword } from "../gateway/index.js";
import { graphServes } from "../node/index.js";
import { boolOpt, numOpt, unlessInterrupted, withNode, type CommandSpec } from "./common.js";
import { ago, table } from "./format.js";

export const gatewayStatusCommand: CommandSpec = {
  path: ["gateway", "status"],
  summary: "show the MQTT gateway's clients, subscriptions, rates and rejects",
  args: [],
  options: {
    json: { type: "boolean", help: "print the status as JSON" },
    "timeout-ms": {
      type: "string",
      arg: "N",
      help: "give up when the gateway did not answer within N ms (default 3000)",
    },
  },
  details: [
    `Asks the hub's gateway (the hidden service ${GATEWAY_PROTOCOL.status.service}). Rates are messages per second over the last few seconds.`,
  ],
  examples: ["myelin gateway status", "myelin gateway status --json"],
  connects: true,
  async run(ctx, inv) {
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "gateway status" }) ?? 3000;
    return withNode(ctx, inv, "gateway_status", async (node, graph) => {
      if (!graphServes(graph, GATEWAY_PROTOCOL.status)) {
        ctx.err(
          "no MQTT gateway runs: start the hub with `myelin hub --mqtt-port 1883` or `--gateway-config FILE`",
        );
        return 1;
      }
      const client = gatewayClient(node, { timeoutMs });
      try {
        const s = await unlessInterrupted(client.status({}), ctx.signal);
        if (boolOpt(inv, "json")) {
          ctx.out(JSON.stringify(s, null, 2));
          return 0;
        }
        ctx.out(`listening: ${s.listeners.join(", ")}`);
        ctx.out(
          `messages: ${s.msgs_in} in (${s.rate_in.toFixed(1)}/s), ${s.msgs_out} out (${s.rate_out.toFixed(1)}/s); to Myelin ${s.to_myelin}, from Myelin ${s.from_myelin}`,
        );
        ctx.out(
          `rejected: ${s.rejected} messages, ${s.refused_connections} connections; retained: ${s.retained}; persistent sessions online: ${s.persistent_sessions}`,
        );
        if (s.reject_reasons.length > 0) {
          ctx.out("rejects by reason:");
          s.reject_reasons.forEach((r, i) =>
            ctx.out(`  ${String(s.reject_counts[i] ?? 0).padStart(6)}  ${r}`),
          );
        }
        if (s.last_reject !== "") ctx.out(`last reject: ${s.last_reject}`);
        if (s.clients.length === 0) {
          ctx.out("clients: none");
          return 0;
        }
        const rows = s.clients.map((c) => [
          c.id,
          c.user || "(anonymous)",
          `${c.transport} ${c.address}`,
          c.clean ? "clean" : "persistent",
          ago(c.connected_at),
          String(c.msgs_in),
          String(c.msgs_out),
          String(c.rejected),
          c.subscriptions.join(" "),
        ]);
        for (const l of table(
          ["CLIENT", "USER", "FROM", "SESSION", "UP", "IN", "OUT", "REJ", "SUBSCRIPTIONS"],
          rows,
        ))
          ctx.out(l);
        return 0;
      } finally {
        client.close();
      }
    });
  },
};

export const gatewayHashPasswordCommand: CommandSpec = {
  path: ["gateway", "hash-password"],
  summary: "hash a password for the MQTT gateway config (auth.users[].password)",
  args: [
    {
      name: "PASSWORD",
      optional: true,
      help: "the password (default: read one line from stdin, so it stays out of the shell history)",
    },
  ],
  options: {},
  details: [
    "Prints scrypt$N$r$p$salt$hash (scrypt from node:crypto, random salt). Put that in the config, never the password.",
  ],
  examples: ["myelin gateway hash-password", "echo -n 's3cret' | myelin gateway hash-password"],
  connects: false,
  async run(ctx, inv) {
    let password = inv.positionals[0];
    if (password === undefined) {
      const rl = createInterface({ input: process.stdin });
      password = await new Promise<string>((resolve) => {
        let got = "";
        rl.once("line", (l) => {
          got = l;
          rl.close();
        });
        rl.once("close", () => resolve(got));
      });
    }
    if (password === "") {
      ctx.err("gateway hash-password: the password is empty");
      return 2;
    }
    ctx.out(await hashPassword(password));
    return 0;
  },
};
