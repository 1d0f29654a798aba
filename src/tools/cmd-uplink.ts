/**
 * `myelin uplink status`: a site linked to the cloud over NATS and JetStream with store-and-forward
 * (docs/edge-to-cloud.md). The hub's option, `myelin hub --uplink-config FILE`, is in hub-extras.ts.
 */
import { fetchUplinkStatus, UPLINK_PROTOCOL } from "../gateway/index.js";
import { graphServes } from "../node/index.js";
import { boolOpt, numOpt, unlessInterrupted, withNode, type CommandSpec } from "./common.js";
import { ago, table } from "./format.js";

function human(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export const uplinkStatusCommand: CommandSpec = {
  path: ["uplink", "status"],
  summary: "show the hub's uplink to the cloud: connection, lag of each forwarded topic, ingested streams",
  args: [],
  options: {
    json: { type: "boolean", help: "print the status as JSON" },
    "timeout-ms": {
      type: "string",
      arg: "N",
      help: "give up when the uplink did not answer within N ms (default 3000)",
    },
  },
  details: [
    `Asks the hub's uplink (the hidden service ${UPLINK_PROTOCOL.status.service}). For each forwarded durable topic:`,
    "FORWARDED: every message up to this seq is in the cloud stream; LAG: messages, bytes and age not yet there;",
    "LOST: messages retention removed before they were forwarded; PRESSURE: the backlog against the topic's retention (ALARM from 80 %).",
    "For each consumed stream: STORED, DUP (sent twice, stored once), REORDERED (waited for an earlier one), REFUSED.",
    "An exported work-queue topic is NOT FORWARDED (its acks remove messages the cloud may not have yet); exit code 2 then, as for an ALARM.",
  ],
  examples: ["myelin uplink status", "myelin uplink status --json"],
  connects: true,
  async run(ctx, inv) {
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "uplink status" }) ?? 3000;
    return withNode(ctx, inv, "uplink_status", async (node, graph) => {
      if (!graphServes(graph, UPLINK_PROTOCOL.status)) {
        ctx.err(
          "no uplink runs: start the hub with `myelin hub --uplink-config FILE` (see docs/edge-to-cloud.md)",
        );
        return 1;
      }
      const s = await unlessInterrupted(fetchUplinkStatus(node, { timeoutMs }), ctx.signal);
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(s, null, 2));
        return 0;
      }
      ctx.out(
        `${s.role} ${s.site}: ${s.state} ${ago(s.since)} to ${s.servers.join(", ")} (connects ${s.connects}, cuts ${s.disconnects})`,
      );
      if (s.volatileSent + s.volatileDropped > 0) {
        ctx.out(`volatile: ${s.volatileSent} sent, ${s.volatileDropped} dropped while the link was down`);
      }
      if (s.forwarders.length > 0) {
        const rows = s.forwarders.map((f) => [
          f.topic,
          String(f.forwarded),
          String(f.lagMessages),
          human(f.lagBytes),
          `${Math.round(f.lagAgeMs / 1000)} s`,
          String(f.lostToRetention),
          `${Math.round(f.retentionPressure * 100)} %${f.alarm ? " ALARM" : ""}`,
          f.subject,
        ]);
        for (const l of table(
          ["TOPIC", "FORWARDED", "LAG", "LAG BYTES", "LAG AGE", "LOST", "PRESSURE", "SUBJECT"],
          rows,
        )) {
          ctx.out(l);
        }
      }
      if (s.ingests.length > 0) {
        const rows = s.ingests.map((i) => [
          i.stream,
          i.running ? "consuming" : "stopped",
          String(i.stored),
          String(i.duplicates),
          String(i.outOfOrder),
          String(i.refused),
        ]);
        for (const l of table(["STREAM", "STATE", "STORED", "DUP", "REORDERED", "REFUSED"], rows)) ctx.out(l);
      }
      for (const r of s.refused ?? []) ctx.out(`NOT FORWARDED: ${r.reason}`);
      if (s.lastError !== undefined && s.state !== "connected") ctx.out(`last error: ${s.lastError}`);
      for (const f of s.forwarders)
        if (f.lastError !== undefined && f.lagMessages > 0) ctx.out(`${f.topic}: last error: ${f.lastError}`);
      return s.alarm ? 2 : 0;
    });
  },
};
