/**
 * `myelin bridge status`: the bridges to external MQTT, NATS and AMQP brokers run inside the hub
 * process (docs/bridges.md). The hub's option, `myelin hub --bridge-config FILE`, is in hub-extras.ts.
 */
import { BRIDGE_PROTOCOL, fetchBridgeStatus } from "../gateway/index.js";
import { graphServes } from "../node/index.js";
import { boolOpt, numOpt, unlessInterrupted, withNode, type CommandSpec } from "./common.js";
import { ago, table } from "./format.js";

export const bridgeStatusCommand: CommandSpec = {
  path: ["bridge", "status"],
  summary: "show each bridge to an external broker: connection, messages, offline queue, rejects",
  args: [{ name: "NAME", optional: true, help: "only this bridge" }],
  options: {
    json: { type: "boolean", help: "print a JSON array of bridge statuses" },
    "timeout-ms": {
      type: "string",
      arg: "N",
      help: "give up when the bridges did not answer within N ms (default 3000)",
    },
  },
  details: [
    `Asks the hub's bridges (the hidden service ${BRIDGE_PROTOCOL.status.service}). IN: external messages published into Myelin;`,
    "OUT: Myelin messages forwarded; SENT: acknowledged by the broker; QUEUED: waiting in the offline queue;",
    "DROP: QoS 0 messages dropped while the broker was unreachable; REJ: refused inbound messages.",
  ],
  examples: ["myelin bridge status", "myelin bridge status plant-mqtt --json"],
  connects: true,
  async run(ctx, inv) {
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "bridge status" }) ?? 3000;
    const only = inv.positionals[0];
    return withNode(ctx, inv, "bridge_status", async (node, graph) => {
      if (!graphServes(graph, BRIDGE_PROTOCOL.status)) {
        ctx.err("no bridges run: start the hub with `myelin hub --bridge-config FILE` (see docs/bridges.md)");
        return 1;
      }
      const all = await unlessInterrupted(fetchBridgeStatus(node, { timeoutMs }), ctx.signal);
      let list = all;
      if (only !== undefined) {
        list = all.filter((b) => b.name === only);
        if (list.length === 0) {
          ctx.err(`no bridge named ${only}; bridges: ${all.map((b) => b.name).join(", ")}`);
          return 1;
        }
      }
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(list, null, 2));
        return 0;
      }
      const rows = list.map((b) => [
        b.name,
        b.kind,
        `${b.state} ${ago(b.since)}`,
        String(b.in),
        String(b.out),
        String(b.sent),
        b.queue === undefined ? "-" : String(b.queue.messages),
        String(b.dropped),
        String(b.rejected),
        b.url,
      ]);
      for (const l of table(
        ["BRIDGE", "KIND", "STATE", "IN", "OUT", "SENT", "QUEUED", "DROP", "REJ", "BROKER"],
        rows,
      )) {
        ctx.out(l);
      }
      for (const b of list) {
        if (b.lastError !== undefined && b.state !== "connected")
          ctx.out(`${b.name}: last error: ${b.lastError}`);
        if (b.queue !== undefined && b.queue.refused > 0) {
          ctx.out(`${b.name}: ${b.queue.refused} messages refused because the offline queue was full`);
        }
        if (b.lastReject !== undefined) ctx.out(`${b.name}: last reject: ${b.lastReject}`);
      }
      return 0;
    });
  },
};
