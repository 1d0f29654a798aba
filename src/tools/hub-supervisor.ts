/**
 * The orchestration side of `myelin hub`: its options (`--spec`, `--env`, `--label`,
 * `--no-supervisor`, `--stop-on-down`, `--leave-running`, `--systemd-unit`), starting the
 * supervisor next to the store, and printing a systemd unit for the hub.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSpec, supervisorPlugin, systemdUnit, type LaunchSpec } from "../orchestrator/index.js";
import type { HubPlugin } from "../hub/index.js";
import { hostName } from "../node/config.js";
import { boolOpt, listOpt, strOpt, UsageError, type Invocation, type OptionSpec } from "./common.js";

const BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "bin", "myelin");

/** Options `myelin hub` takes for orchestration. */
export const HUB_SUPERVISOR_OPTIONS: Record<string, OptionSpec> = {
  spec: {
    type: "string",
    arg: "FILE",
    help: "run this launch spec (like `myelin up FILE` once the hub runs); validated before the hub starts",
  },
  env: {
    type: "string",
    arg: "NAME",
    help: "environment overrides of the --spec to apply (default: $MYELIN_ENV)",
  },
  label: {
    type: "string",
    multiple: true,
    arg: "LABEL",
    help: "placement label of this host, e.g. edge, server, cloud (repeatable; the host name and $MYELIN_LABELS always count)",
  },
  "no-supervisor": {
    type: "boolean",
    help: "do not launch or supervise processes (`myelin up` then refuses)",
  },
  "stop-on-down": {
    type: "boolean",
    help: "exit after `myelin down` stopped the system (set by `myelin up` when it starts the hub)",
  },
  "leave-running": {
    type: "boolean",
    help: "on exit, leave supervised processes running for the next hub to adopt (default: stop them in reverse order)",
  },
  "systemd-unit": {
    type: "boolean",
    help: "print a systemd unit that runs this hub (with these options) under Restart=always and a watchdog, then exit",
  },
};

/** The systemd unit for `myelin hub` with the options of `inv` (minus --systemd-unit). */
export function hubSystemdUnit(inv: Invocation): string {
  // A unit file is readable by every user of the host (and so is `systemctl show`): a secret
  // given on the command line must not be copied into it.
  for (const secret of SECRET_OPTIONS) {
    if (inv.values[secret] !== undefined) {
      throw new UsageError(
        `hub: --systemd-unit would copy --${secret} into the unit file, which every user can read: ` +
          "put the token in a file readable only by the hub's user and name it with tokenFile in " +
          "--foxglove-config (docs/foxglove.md), or set MYELIN_FOXGLOVE_TOKEN in an " +
          "EnvironmentFile= of mode 0600",
        "hub",
      );
    }
  }
  const args = [process.execPath, BIN, "hub"];
  for (const [k, v] of Object.entries(inv.values)) {
    if (k === "systemd-unit" || k === "stop-on-down" || k === "help" || v === undefined || v === false)
      continue;
    for (const x of [v].flat()) {
      if (x === true) args.push(`--${k}`);
      else if (typeof x === "string") args.push(`--${k}`, isPathOption(k) ? resolve(x) : x);
    }
  }
  const env: Record<string, string> = {};
  for (const k of [
    "MYELIN_RUNTIME_DIR",
    "MYELIN_DATA_DIR",
    "MYELIN_LABELS",
    "MYELIN_ENV",
    "MYELIN_METRICS",
  ]) {
    const v = process.env[k];
    if (v !== undefined && v !== "") env[k] = v;
  }
  return systemdUnit({ execStart: args, environment: env, workingDirectory: process.cwd() });
}

/** Options whose value is a file or directory: made absolute in a unit (it runs elsewhere). */
function isPathOption(k: string): boolean {
  return k === "spec" || k === "policy" || /-(dir|config|file|cert|key)$/.test(k);
}

/** Options of `myelin hub` that carry a secret, never written into a unit file. */
const SECRET_OPTIONS = ["foxglove-token"];

/** Reads and validates `--spec` (before anything starts). @throws SpecError */
export function hubSpec(inv: Invocation): LaunchSpec | undefined {
  const file = strOpt(inv, "spec");
  if (file === undefined) return undefined;
  return loadSpec(file, { environment: strOpt(inv, "env") ?? process.env["MYELIN_ENV"] });
}

/**
 * The orchestration plugins of the hub: the supervisor (unless --no-supervisor), with this host's
 * labels and the --spec to apply.
 */
export function hubSupervisorPlugin(inv: Invocation, spec: LaunchSpec | undefined): HubPlugin | undefined {
  if (boolOpt(inv, "no-supervisor")) return undefined;
  const env = process.env["MYELIN_LABELS"];
  // The host's name in the site (--host / $MYELIN_HOST, else the system's) is always a label.
  const labels = [...new Set([hostName(), ...(env ?? "").split(","), ...listOpt(inv, "label")])]
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return supervisorPlugin({
    labels,
    ...(spec !== undefined ? { spec } : {}),
    stopOnDown: boolOpt(inv, "stop-on-down"),
    leaveRunning: boolOpt(inv, "leave-running"),
  });
}
