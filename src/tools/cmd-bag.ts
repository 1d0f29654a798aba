/** `myelin bag info|repair`: inspect MCAP files and make unclosed ones valid again. */
import { basename, dirname, extname, join } from "node:path";
import { rename } from "node:fs/promises";
import { bagInfo, type BagInfo } from "../record/bag-info.js";
import { repairBag } from "../record/bag-repair.js";
import { boolOpt, strOpt, UsageError, type CommandSpec } from "./common.js";
import { formatElapsed, formatSize, plural } from "./cmd-record.js";
import { table } from "./format.js";

function isoOf(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

/** The human form of `bag info`, like `ros2 bag info`. */
export function bagInfoLines(info: BagInfo): string[] {
  const compression = Object.entries(info.compression)
    .map(([c, n]) => `${c} (${n} chunks)`)
    .join(", ");
  const lines = [
    `Files:          ${info.path}`,
    `Bag size:       ${formatSize(info.size)}`,
    `State:          ${
      info.problem === undefined
        ? "closed, indexed"
        : `${info.indexed ? "DAMAGED" : "NOT CLOSED"}: ${info.problem}; run \`myelin bag repair ${info.path}\``
    }`,
    `Written by:     ${info.library || "unknown"}${info.profile !== "" ? ` (profile ${info.profile})` : ""}`,
    `Duration:       ${formatElapsed(info.durationMs)}`,
    `Start:          ${info.messages > 0 ? isoOf(info.startNs) : "-"}`,
    `End:            ${info.messages > 0 ? isoOf(info.endNs) : "-"}`,
    `Messages:       ${info.messages}`,
    `Chunks:         ${info.chunks}`,
    `Compression:    ${compression || "-"}`,
  ];
  const hasDrops = info.topics.some((t) => t.dropped !== undefined);
  const totalDrops = info.topics.reduce((a, t) => a + (t.dropped ?? 0) + (t.lost ?? 0), 0);
  if (hasDrops)
    lines.push(`Drops:          ${totalDrops}${totalDrops > 0 ? " (see the DROPPED and LOST columns)" : ""}`);
  lines.push(`Topics:         ${info.topics.length}`);
  const head = ["TOPIC", "TYPE", "ENCODING", "MESSAGES", "SIZE", "RATE"];
  if (hasDrops) head.push("DROPPED", "LOST");
  const rows = info.topics.map((t) => {
    const r = [
      t.topic,
      t.schema,
      t.encoding,
      String(t.messages),
      formatSize(t.bytes),
      `${t.rateHz.toFixed(1)} Hz`,
    ];
    if (hasDrops) r.push(String(t.dropped ?? 0), String(t.lost ?? 0));
    return r;
  });
  for (const l of table(head, rows)) lines.push(`  ${l}`);
  return lines;
}

export const bagInfoCommand: CommandSpec = {
  path: ["bag", "info"],
  summary: "show an MCAP file's duration, topics, types, counts, sizes, compression and drops",
  args: [{ name: "FILE", help: "an MCAP file" }],
  options: {
    json: { type: "boolean", help: "print one JSON object (times in ns since the epoch, as strings)" },
  },
  details: [
    "Reads the file's index and its messages (for the sizes per topic). A file that was not closed",
    "(recorder killed) is scanned up to its last complete chunk and shown as NOT CLOSED.",
  ],
  examples: ["myelin bag info run.mcap", "myelin bag info run.mcap --json | jq '.topics[].messages'"],
  connects: false,
  async run(ctx, inv) {
    const info = await bagInfo(inv.positionals[0]!);
    if (boolOpt(inv, "json")) {
      ctx.out(JSON.stringify(info, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2));
    } else {
      for (const l of bagInfoLines(info)) ctx.out(l);
    }
    return 0;
  },
};

export const bagRepairCommand: CommandSpec = {
  path: ["bag", "repair"],
  summary: "make an MCAP file that was not closed (kill -9, full disk) valid and indexed again",
  args: [{ name: "FILE", help: "the damaged or unclosed MCAP file" }],
  options: {
    output: {
      type: "string",
      short: "o",
      arg: "FILE",
      help: "where to write the repaired file (default <name>-repaired.mcap next to the input)",
    },
    "in-place": {
      type: "boolean",
      help: "replace FILE by the repaired file (the original is kept as FILE.orig)",
    },
    compression: {
      type: "string",
      arg: "C",
      help: "chunk compression of the output: zstd (default) or none",
    },
    json: { type: "boolean", help: "print what was recovered as JSON" },
  },
  details: [
    "Reads the file's records in order up to the first incomplete or damaged one (every chunk written",
    "before a crash is complete: the recorder closes chunks at least every second) and writes them into a",
    "new, indexed file with a myelin.repair metadata record. Prints how much was recovered and lost.",
  ],
  examples: [
    "myelin bag repair run.mcap",
    "myelin bag repair run.mcap -o fixed.mcap",
    "myelin bag repair run.mcap --in-place",
  ],
  connects: false,
  async run(ctx, inv) {
    const input = inv.positionals[0]!;
    const inPlace = boolOpt(inv, "in-place");
    const given = strOpt(inv, "output");
    if (inPlace && given !== undefined)
      throw new UsageError("give --output or --in-place, not both", "bag repair");
    const compression = strOpt(inv, "compression") ?? "zstd";
    if (compression !== "zstd" && compression !== "none") {
      throw new UsageError(`--compression must be zstd or none, got '${compression}'`, "bag repair");
    }
    const ext = extname(input);
    const output =
      given ??
      (inPlace
        ? `${input}.repairing`
        : join(dirname(input), `${basename(input, ext)}-repaired${ext || ".mcap"}`));
    const r = await repairBag(input, output, compression);
    let final = output;
    if (inPlace) {
      await rename(input, `${input}.orig`);
      await rename(output, input);
      final = input;
    }
    if (boolOpt(inv, "json")) {
      ctx.out(JSON.stringify({ ...r, output: final }, null, 2));
      return 0;
    }
    if (r.wasComplete) ctx.err(`${input} was already complete; rewrote it into ${final}`);
    else {
      ctx.err(
        `recovered ${plural(r.messages, "message")} (${formatSize(r.recoveredBytes)}) from ${input} into ${final}; ` +
          (r.lostBytes > 0
            ? `lost the last ${formatSize(r.lostBytes)}: ${r.problem ?? "no summary"}`
            : `${r.problem ?? "the file had no summary"}`),
      );
    }
    if (inPlace) ctx.err(`the original is kept as ${input}.orig`);
    return 0;
  },
};
