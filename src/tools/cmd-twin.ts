/**
 * `myelin twin list|get|set|delete|watch`: the device twins the hub's MQTT gateway keeps, through
 * its `/_twins/*` services (see docs/device-twins.md).
 */
import { yaml } from "../codec/yaml.js";
import { MyelinError, ServiceError } from "../errors.js";
import { TwinClient, TWIN_PROTOCOL, type DeviceTwin, type JsonObject } from "../gateway/index.js";
import { graphServes, type GraphSnapshot } from "../node/index.js";
import {
  aborted,
  boolOpt,
  numOpt,
  strOpt,
  unlessInterrupted,
  withNode,
  type CommandSpec,
  type Context,
  type Invocation,
  type OptionSpec,
} from "./common.js";
import { ago, clock, table } from "./format.js";

const TIMEOUT_OPTION: Record<string, OptionSpec> = {
  "timeout-ms": {
    type: "string",
    arg: "N",
    help: "give up when the gateway did not answer within N ms (default 3000)",
  },
};

function timeoutOf(inv: Invocation, command: string): number {
  return numOpt(inv, "timeout-ms", { min: 1, integer: true, command }) ?? 3000;
}

/** @throws ServiceError ERR_NO_SERVER saying how to start a gateway when none serves twins */
function requireTwins(graph: GraphSnapshot): void {
  if (!graphServes(graph, TWIN_PROTOCOL.get)) {
    throw new ServiceError(
      "ERR_NO_SERVER",
      "no MQTT gateway with device twins runs: start the hub with `myelin hub --mqtt-port 1883` (or `--gateway-config FILE` without `twins: { enabled: false }`)",
    );
  }
}

/** Runs `fn` with a twin client on a tool node. */
function withTwins(
  ctx: Context,
  inv: Invocation,
  command: string,
  fn: (twins: TwinClient) => Promise<number>,
): Promise<number> {
  const timeoutMs = timeoutOf(inv, `twin ${command}`);
  return withNode(ctx, inv, `twin_${command}`, async (node, graph) => {
    requireTwins(graph);
    const twins = new TwinClient(node, { timeoutMs });
    try {
      return await fn(twins);
    } finally {
      twins.close();
    }
  });
}

function when(ms: number): string {
  return ms === 0 ? "never" : `${new Date(ms).toISOString()} (${ago(ms)} ago)`;
}

function json(v: unknown): string {
  return JSON.stringify(v, null, 2);
}

/** The lines `myelin twin get` prints for a twin. */
function describeTwin(t: DeviceTwin): string[] {
  const lines = [
    `${t.device}: ${t.connected ? "connected" : "offline"}${t.clientId !== "" ? ` (client ${t.clientId})` : ""}, last seen ${when(t.lastSeen)}`,
    `version ${t.version} (desired ${t.desiredVersion}, reported ${t.reportedVersion})`,
    `desired (updated ${when(t.desiredUpdatedAt)}):`,
    ...json(t.desired)
      .split("\n")
      .map((l) => `  ${l}`),
    `reported (updated ${when(t.reportedUpdatedAt)}):`,
    ...json(t.reported)
      .split("\n")
      .map((l) => `  ${l}`),
  ];
  if (Object.keys(t.delta).length === 0) lines.push("delta: none (the device is in the desired state)");
  else
    lines.push(
      "delta (desired, not yet reported):",
      ...json(t.delta)
        .split("\n")
        .map((l) => `  ${l}`),
    );
  return lines;
}

/**
 * A desired-state patch from the command line: a JSON or YAML object.
 * @throws MyelinError ERR_INVALID_ARGUMENT when it is not one
 */
function parsePatch(text: string): JsonObject {
  let v: unknown;
  try {
    v = yaml().parse(text);
  } catch (err) {
    const first = ((err as Error).message ?? String(err)).split("\n")[0]!;
    throw new MyelinError("ERR_INVALID_ARGUMENT", `twin set: STATE is not valid JSON or YAML: ${first}`, {
      cause: err,
    });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `twin set: STATE must be an object of desired values, e.g. '{"fan": "on", "speed": 1200}', got ${JSON.stringify(text)}`,
    );
  }
  return v as JsonObject;
}

export const twinListCommand: CommandSpec = {
  path: ["twin", "list"],
  summary: "list the device twins of the MQTT gateway",
  args: [{ name: "PATTERN", optional: true, help: "only devices matching this glob, e.g. 'pump-*'" }],
  options: {
    json: { type: "boolean", help: "print the list as JSON" },
    max: { type: "string", arg: "N", help: "show at most N twins (default 1000)" },
    after: { type: "string", arg: "DEVICE", help: "start after DEVICE (the last one of the previous page)" },
    ...TIMEOUT_OPTION,
  },
  details: [
    "One line per twin: whether the device is connected, when it was last seen, its versions, and how many desired values it has not reported yet (DELTA).",
  ],
  examples: [
    "myelin twin list",
    "myelin twin list 'pump-*' --json",
    "myelin twin list --after pump-99 --max 100",
  ],
  connects: true,
  async run(ctx, inv) {
    const max = numOpt(inv, "max", { min: 1, max: 1000, integer: true, command: "twin list" });
    return withTwins(ctx, inv, "list", async (twins) => {
      const opts: { pattern?: string; after?: string; max?: number } = {};
      if (inv.positionals[0] !== undefined) opts.pattern = inv.positionals[0];
      const after = strOpt(inv, "after");
      if (after !== undefined) opts.after = after;
      if (max !== undefined) opts.max = max;
      const page = await unlessInterrupted(twins.list(opts), ctx.signal);
      if (boolOpt(inv, "json")) {
        ctx.out(json(page));
        return 0;
      }
      if (page.twins.length === 0) {
        ctx.err(page.total === 0 ? "no twins (a device gets one with its first report)" : "no more twins");
        return 0;
      }
      const rows = page.twins.map((t) => [
        t.device,
        t.connected ? "connected" : "offline",
        t.lastSeen === 0 ? "never" : `${ago(t.lastSeen)} ago`,
        String(t.version),
        String(t.desiredVersion),
        String(t.reportedVersion),
        String(t.deltaKeys),
      ]);
      for (const l of table(
        ["DEVICE", "STATE", "LAST SEEN", "VERSION", "DESIRED", "REPORTED", "DELTA"],
        rows,
      ))
        ctx.out(l);
      if (page.more) {
        const last = page.twins[page.twins.length - 1]!.device;
        ctx.err(`${page.total} twins match; more after ${last}: myelin twin list --after ${last}`);
      }
      return 0;
    });
  },
};

export const twinGetCommand: CommandSpec = {
  path: ["twin", "get"],
  summary: "show a device's twin: desired, reported, the delta between them, versions",
  args: [{ name: "DEVICE", help: "the device's name" }],
  options: { json: { type: "boolean", help: "print the twin as JSON" }, ...TIMEOUT_OPTION },
  details: [
    "The delta is what the device still has to apply: the desired values it has not reported.",
    "Fails with ERR_UNKNOWN_DEVICE when the device has no twin.",
  ],
  examples: ["myelin twin get pump-7", "myelin twin get pump-7 --json"],
  connects: true,
  async run(ctx, inv) {
    const device = inv.positionals[0]!;
    return withTwins(ctx, inv, "get", async (twins) => {
      const t = await unlessInterrupted(twins.get(device), ctx.signal);
      if (boolOpt(inv, "json")) ctx.out(json(t));
      else for (const l of describeTwin(t)) ctx.out(l);
      return 0;
    });
  },
};

export const twinSetCommand: CommandSpec = {
  path: ["twin", "set"],
  summary: "change a device's desired state (the device gets the delta now, or when it reconnects)",
  args: [
    { name: "DEVICE", help: "the device's name" },
    {
      name: "STATE",
      help: 'desired values as a JSON or YAML object, merged into desired (null removes a key), e.g. \'{"fan": "on"}\'',
    },
  ],
  options: {
    "expect-version": {
      type: "string",
      arg: "N",
      help: "change desired only if it is still at version N (as `twin get` showed it); ERR_VERSION_CONFLICT otherwise",
    },
    create: { type: "boolean", help: "make the twin if the device has none yet" },
    replace: { type: "boolean", help: "replace the whole desired state instead of merging STATE into it" },
    json: { type: "boolean", help: "print the twin after the change as JSON" },
    ...TIMEOUT_OPTION,
  },
  details: [
    "STATE is a JSON merge patch (RFC 7386): its keys replace those of desired, nested objects merge, null removes a key.",
    "The change is on disk when the command returns; the device gets what differs from its reported state on twins/DEVICE/desired/delta, at once if connected, else when it reconnects.",
    "With --expect-version, two operators cannot overwrite each other's change unseen: the second one fails with ERR_VERSION_CONFLICT naming both versions.",
  ],
  examples: [
    `myelin twin set pump-7 '{"speed": 1200}'`,
    `myelin twin set pump-7 '{speed: 1200, mode: eco}' --expect-version 4`,
    `myelin twin set pump-7 '{"mode": null}'   # remove a desired key`,
    `myelin twin set lamp-3 '{"on": true}' --create`,
  ],
  connects: true,
  async run(ctx, inv) {
    const device = inv.positionals[0]!;
    const patch = parsePatch(inv.positionals[1]!);
    const expectedVersion = numOpt(inv, "expect-version", { min: 0, integer: true, command: "twin set" });
    return withTwins(ctx, inv, "set", async (twins) => {
      const opts: { expectedVersion?: number; create: boolean; replace: boolean } = {
        create: boolOpt(inv, "create"),
        replace: boolOpt(inv, "replace"),
      };
      if (expectedVersion !== undefined) opts.expectedVersion = expectedVersion;
      const t = await unlessInterrupted(twins.setDesired(device, patch, opts), ctx.signal);
      if (boolOpt(inv, "json")) {
        ctx.out(json(t));
        return 0;
      }
      const pending = Object.keys(t.delta).length;
      ctx.out(
        `${t.device}: desired is at version ${t.desiredVersion}; ${pending === 0 ? "the device is in the desired state" : `delta of ${pending} key${pending === 1 ? "" : "s"} ${t.connected ? "sent to the device" : "waiting for the device to reconnect"}`}`,
      );
      return 0;
    });
  },
};

export const twinDeleteCommand: CommandSpec = {
  path: ["twin", "delete"],
  summary: "delete a device's twin",
  args: [{ name: "DEVICE", help: "the device's name" }],
  options: {
    "expect-version": {
      type: "string",
      arg: "N",
      help: "delete only if the twin is still at version N; ERR_VERSION_CONFLICT otherwise",
    },
    ...TIMEOUT_OPTION,
  },
  details: ["The twin's file goes too. A device that reports again gets a new twin, from version 1."],
  examples: ["myelin twin delete old-sensor-3", "myelin twin delete pump-7 --expect-version 12"],
  connects: true,
  async run(ctx, inv) {
    const device = inv.positionals[0]!;
    const expectedVersion = numOpt(inv, "expect-version", { min: 0, integer: true, command: "twin delete" });
    return withTwins(ctx, inv, "delete", async (twins) => {
      await unlessInterrupted(
        twins.delete(device, expectedVersion === undefined ? {} : { expectedVersion }),
        ctx.signal,
      );
      ctx.out(`${device}: twin deleted`);
      return 0;
    });
  },
};

export const twinWatchCommand: CommandSpec = {
  path: ["twin", "watch"],
  summary: "print the changes of device twins as they happen",
  args: [{ name: "DEVICE", optional: true, help: "only this device's changes" }],
  options: {
    json: { type: "boolean", help: "print each change as one line of JSON" },
    count: { type: "string", arg: "N", help: "stop after N changes" },
  },
  details: [
    "One line per change: created, desired, reported, connection (connected or not), deleted. Runs until Ctrl-C or --count.",
  ],
  examples: ["myelin twin watch", "myelin twin watch pump-7 --count 1 --json"],
  connects: true,
  async run(ctx, inv) {
    const device = inv.positionals[0];
    const count = numOpt(inv, "count", { min: 1, integer: true, command: "twin watch" });
    return withTwins(ctx, inv, "watch", async (twins) => {
      let seen = 0;
      const done = new AbortController();
      await twins.onUpdate((e) => {
        if (device !== undefined && e.twin.device !== device) return;
        if (done.signal.aborted) return;
        if (boolOpt(inv, "json")) ctx.out(JSON.stringify(e));
        else {
          const t = e.twin;
          const what =
            e.kind === "desired"
              ? `desired v${t.desiredVersion} ${JSON.stringify(t.desired)}`
              : e.kind === "reported"
                ? `reported v${t.reportedVersion} ${JSON.stringify(t.reported)}`
                : e.kind === "connection"
                  ? t.connected
                    ? `connected (client ${t.clientId})`
                    : "disconnected"
                  : e.kind;
          const delta = Object.keys(t.delta).length;
          ctx.out(
            `${clock(new Date(e.stamp))} ${t.device} ${what}${delta > 0 && e.kind !== "deleted" ? ` | delta ${JSON.stringify(t.delta)}` : ""}`,
          );
        }
        seen++;
        if (count !== undefined && seen >= count) done.abort();
      });
      await Promise.race([aborted(done.signal), aborted(ctx.signal)]);
      return 0;
    });
  },
};
