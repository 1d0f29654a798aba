/**
 * What `myelin render k8s|compose` renders, independent of the target: a launch spec resolved into
 * the hub and one workload per supervised process (unit), with every host path turned into a path
 * inside the container image, commands and module launches as argv, probes, limits and the
 * configuration files the hub needs. `render-k8s.ts` and `render-compose.ts` turn this plan into
 * manifests; everything a target cannot express is refused here, with the field and the fix.
 *
 * The image is assumed to hold a directory of the machine (`root`, default the spec's directory)
 * at `appDir` (default `/app`), and Myelin itself at `myelinDir`. Reference: docs/render.md.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, posix, relative, resolve, sep } from "node:path";
import { yaml } from "../codec/yaml.js";
import { MyelinError } from "../errors.js";
import { validateBridgeConfig, type BridgeConfig } from "../gateway/bridge-config.js";
import type { LaunchSpec, ProbeSpec, UnitSpec } from "../orchestrator/spec.js";

/** How the hub runs: one per cluster node (`daemonset`) or one per site with a volume (`statefulset`). */
export type HubMode = "daemonset" | "statefulset";

/** Options of a rendering. Paths are of this machine unless said otherwise. */
export interface RenderOptions {
  /** The container image every workload runs (default `myelin:latest`). */
  image?: string;
  /** The directory of this machine the image holds at `appDir` (default: the spec's directory). */
  root?: string;
  /** Where `root` is inside the image (default `/app`). */
  appDir?: string;
  /** Where Myelin is installed inside the image (default `/usr/local/lib/node_modules/myelin`). */
  myelinDir?: string;
  /** Kubernetes namespace (default `myelin`). */
  namespace?: string;
  /** How the hub runs (default `daemonset`). */
  hub?: HubMode;
  /** Size of the store's volume claim in statefulset mode (default `10Gi`). */
  storageSize?: string;
  /** Storage class of that claim (default: the cluster's default). */
  storageClass?: string;
  /** A bridge configuration file (docs/bridges.md) the hub runs; its `*Env` settings become Secret references. */
  bridgeConfig?: string;
  /** A gateway configuration file; the hub serves MQTT on `mqttPort` with it. */
  gatewayConfig?: string;
  /** MQTT port of the hub's gateway (default: none, or 1883 with a gateway config). */
  mqttPort?: number;
  /** The Secret that holds the values of the bridges' `*Env` settings (default `myelin-secrets`). */
  secretName?: string;
  /** A Secret with key files (CURVE keys, NATS creds) mounted read-only at `/etc/myelin/keys` in the hub. */
  keysSecret?: string;
  /** User id every container runs as (default 1000), so the shared runtime directory is theirs. */
  uid?: number;
}

/** Defaults of {@link RenderOptions}. */
export const RENDER_DEFAULTS = {
  image: "myelin:latest",
  appDir: "/app",
  myelinDir: "/usr/local/lib/node_modules/myelin",
  namespace: "myelin",
  hub: "daemonset" as HubMode,
  storageSize: "10Gi",
  secretName: "myelin-secrets",
  uid: 1000,
  controlPort: 7447,
  runtimeDir: "/run/myelin",
  dataDir: "/var/lib/myelin",
  configDir: "/etc/myelin",
  keysDir: "/etc/myelin/keys",
} as const;

/** The shell script that gives the runtime and data directories to `uid` (0700, as the hub wants them). */
export function prepareDirsScript(uid: number): string {
  return `chown ${uid}:${uid} ${RENDER_DEFAULTS.runtimeDir} ${RENDER_DEFAULTS.dataDir} && chmod 0700 ${RENDER_DEFAULTS.runtimeDir} ${RENDER_DEFAULTS.dataDir}`;
}

/** A health probe in target-neutral form. Times in whole seconds (Kubernetes' unit), at least 1. */
export type PlannedProbe = (
  | { kind: "exec"; command: string[] }
  | { kind: "http"; scheme: "HTTP" | "HTTPS"; host?: string; port: number; path: string; url: string }
) & {
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
  initialDelaySeconds: number;
  /** The probe also gates readiness (`readiness: probe` in the spec). */
  readiness: boolean;
};

/** One supervised process of the spec, as a workload. */
export interface PlannedWorkload {
  /** The unit name (a node, or a `process` of composed modules). */
  unit: string;
  /** A DNS-1123 name for the objects of this workload, e.g. `node-vision`. */
  name: string;
  /** The spec nodes it runs. */
  nodes: string[];
  /** argv inside the container. */
  command: string[];
  /** Working directory inside the container. */
  workingDir: string;
  /** Environment, sorted by name. */
  env: Record<string, string>;
  replicas: number;
  /** Placement labels of the spec (any one of them). */
  placement: string[];
  /** `always`/`on-failure`: a long-running workload; `never`: run once (a Job in Kubernetes). */
  restart: "always" | "on-failure" | "never";
  /** Units this one depends on, with the spec's condition. */
  dependsOn: { unit: string; condition: "ready" | "started" }[];
  probe?: PlannedProbe;
  /** Memory limit in MiB. */
  memoryMb?: number;
  openFiles?: number;
  /** Grace period of a stop, in whole seconds. */
  stopGraceSeconds: number;
}

/** The hub and its configuration files. */
export interface PlannedHub {
  mode: HubMode;
  /** argv inside the container. */
  command: string[];
  /** Files for the hub's ConfigMap: name → text; mounted at `/etc/myelin`. */
  files: Record<string, string>;
  /** Environment variables the hub reads from the Secret: variable → key in the Secret. */
  secretEnv: Record<string, string>;
  mqttPort?: number;
}

/** A whole rendering plan. */
export interface RenderPlan {
  /** The spec's file name (no directory), for labels and comments. */
  specName: string;
  /** The spec's text, for the ConfigMap. */
  specText: string;
  image: string;
  namespace: string;
  uid: number;
  secretName: string;
  keysSecret?: string;
  storageSize: string;
  storageClass?: string;
  hub: PlannedHub;
  workloads: PlannedWorkload[];
  /** Things the target cannot do exactly as the spec says; printed by the CLI, listed in docs/render.md. */
  notes: string[];
}

/** @throws MyelinError ERR_BAD_CONFIG `${where}: ${msg}` */
function fail(where: string, msg: string): never {
  throw new MyelinError("ERR_BAD_CONFIG", `${where}: ${msg}`);
}

/** A DNS-1123 label (lowercase letters, digits, '-', at most 63) from a spec name, or undefined. */
export function dnsName(prefix: string, name: string): string | undefined {
  const s = `${prefix}${name}`
    .toLowerCase()
    .replace(/[_.]/g, "-")
    .replace(/[^a-z0-9-]/g, "");
  if (s.length > 63 || !/^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(s)) return undefined;
  return s;
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * Builds the plan of a loaded spec (load it with `checkFiles: false`: paths are checked here
 * against `root`, not against this machine's executables).
 * @throws MyelinError ERR_BAD_CONFIG naming the spec field (or option) and the fix, for what cannot
 * be rendered: a path outside `root`, a name that is no DNS label, a bad option, a secret in a
 * bridge config.
 */
export function planRender(spec: LaunchSpec, opts: RenderOptions = {}): RenderPlan {
  const specDir = dirname(spec.file);
  const specName = spec.file.split(sep).pop() ?? "myelin.yaml";
  const root = resolve(opts.root ?? specDir);
  const appDir = opts.appDir ?? RENDER_DEFAULTS.appDir;
  const myelinDir = opts.myelinDir ?? RENDER_DEFAULTS.myelinDir;
  if (!appDir.startsWith("/")) fail("--app-dir", `${appDir} is not an absolute path in the image, e.g. /app`);
  if (!myelinDir.startsWith("/"))
    fail(
      "--myelin-dir",
      `${myelinDir} is not an absolute path in the image, e.g. /usr/local/lib/node_modules/myelin`,
    );
  const namespace = opts.namespace ?? RENDER_DEFAULTS.namespace;
  if (dnsName("", namespace) !== namespace)
    fail(
      "--namespace",
      `'${namespace}' is not a DNS-1123 label (lowercase letters, digits, '-'), e.g. robots`,
    );
  const image = opts.image ?? RENDER_DEFAULTS.image;
  if (!/^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/.test(image))
    fail("--image", `'${image}' is not an image reference, e.g. registry.example.com/robot:1.4`);
  const mode = opts.hub ?? RENDER_DEFAULTS.hub;
  if (mode !== "daemonset" && mode !== "statefulset")
    fail(
      "--hub",
      `must be daemonset (a hub per cluster node) or statefulset (a hub per site), got '${String(mode)}'`,
    );
  const storageSize = opts.storageSize ?? RENDER_DEFAULTS.storageSize;
  if (!/^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.test(storageSize))
    fail("--storage-size", `'${storageSize}' is not a Kubernetes quantity, e.g. 20Gi`);
  const uid = opts.uid ?? RENDER_DEFAULTS.uid;
  if (!Number.isInteger(uid) || uid < 1)
    fail("--uid", `must be a user id >= 1 (containers do not run as root), got ${uid}`);
  const notes: string[] = [];

  /** The path in the image of a path of this machine. */
  const inImage = (hostPath: string, field: string): string => {
    const rel = relative(root, hostPath);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      fail(
        `${specName}: ${field}`,
        `${hostPath} is outside ${root}, the directory the image holds at ${appDir}; ` +
          `pass --root with a directory that contains it (e.g. the project's root), or move it there`,
      );
    }
    return rel === "" ? appDir : posix.join(appDir, ...rel.split(sep));
  };

  const byUnit = new Map(spec.units.map((u) => [u.name, u]));
  const names = new Map<string, string>();
  const workloads: PlannedWorkload[] = [];
  for (const u of spec.units) {
    const field = `nodes.${u.nodes[0]}`;
    const name = dnsName("node-", u.name);
    if (name === undefined) {
      fail(
        `${specName}: ${u.nodes.length > 1 ? `${field}.process` : field}`,
        `'${u.name}' cannot be a Kubernetes name (at most 58 letters, digits, '-', '_' or '.'); rename it`,
      );
    }
    const clash = names.get(name);
    if (clash !== undefined)
      fail(
        `${specName}: ${field}`,
        `'${u.name}' and '${clash}' both become the object name ${name}; rename one`,
      );
    names.set(name, u.name);
    workloads.push(planUnit(u, name, field));
  }

  function planUnit(u: UnitSpec, name: string, field: string): PlannedWorkload {
    const workingDir = inImage(u.cwd, `${field}.cwd`);
    const env: Record<string, string> = { ...u.env, MYELIN_NODE_NAME: u.nodes.join(",") };
    const heap = u.limits.memoryMb !== undefined ? [`--max-old-space-size=${u.limits.memoryMb}`] : [];
    let command: string[];
    if (u.kind === "module") {
      const modules = u.modules.map((m) => ({
        ...m,
        path: inImage(resolve(u.cwd, m.path), `nodes.${m.node}.module`),
      }));
      env["MYELIN_LAUNCH"] = JSON.stringify({ modules, replica: 0 });
      command = ["node", ...heap, posix.join(myelinDir, "dist/src/orchestrator/runner.js")];
    } else {
      const [prog, ...rest] = u.command;
      if (prog === undefined)
        fail(`${specName}: ${field}.command`, "is empty; give the program and its arguments");
      if (isAbsolute(prog) && !prog.startsWith(root + sep)) {
        // An absolute program of the machine (e.g. /usr/bin/python3) is expected at the same place in the image.
        command = [...u.command];
      } else if (isAbsolute(prog)) {
        command = [inImage(prog, `${field}.command`), ...rest];
      } else {
        command = prog === "node" ? ["node", ...heap, ...rest] : [...u.command];
      }
    }
    const w: PlannedWorkload = {
      unit: u.name,
      name,
      nodes: [...u.nodes],
      command,
      workingDir,
      env: Object.fromEntries(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      replicas: u.replicas,
      placement: [...u.placement],
      restart: u.restart.policy,
      dependsOn: u.dependsOn.map((d) => ({ unit: d.unit, condition: d.condition })),
      stopGraceSeconds: seconds(u.stopGraceMs),
    };
    for (const d of w.dependsOn) {
      if (!byUnit.has(d.unit))
        fail(`${specName}: ${field}.dependsOn`, `'${d.unit}' is no process of this spec`);
    }
    for (const l of w.placement) {
      if (!/^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/.test(l)) {
        fail(
          `${specName}: ${field}.placement`,
          `'${l}' cannot be a Kubernetes node label name (letters, digits, '-', '_', '.', at most 63, starting and ending with a letter or digit); rename it`,
        );
      }
    }
    if (u.health.probe !== undefined) w.probe = planProbe(u.health.probe, u, field);
    else if (u.readiness === "probe")
      fail(
        `${specName}: ${field}.readiness`,
        "is probe but the node has no health.probe; add one or use readiness: node",
      );
    if (u.limits.memoryMb !== undefined) w.memoryMb = u.limits.memoryMb;
    if (u.limits.openFiles !== undefined) w.openFiles = u.limits.openFiles;
    if (u.limits.nice !== undefined)
      notes.push(
        `${u.name}: limits.nice is not rendered (containers share the node's scheduler; use resources.requests.cpu)`,
      );
    if (u.replicas > 1)
      notes.push(
        `${u.name}: its ${u.replicas} replicas run as one Deployment, so each registers under the spec's node name (no .1, .2 suffix); services and queue groups balance across them`,
      );
    if (u.restart.policy === "on-failure")
      notes.push(
        `${u.name}: restart on-failure becomes a Deployment, which also restarts a process that exited cleanly`,
      );
    return w;
  }

  function planProbe(p: ProbeSpec, u: UnitSpec, field: string): PlannedProbe {
    const timing = {
      periodSeconds: seconds(p.intervalMs),
      timeoutSeconds: seconds(p.timeoutMs),
      failureThreshold: Math.max(1, p.failureThreshold),
      initialDelaySeconds: Math.ceil(p.initialDelayMs / 1000),
      readiness: u.readiness === "probe",
    };
    switch (p.kind) {
      case "command":
        return { kind: "exec", command: [...p.target], ...timing };
      case "service": {
        const svc = (p.target[0] ?? "").replaceAll("{node}", u.nodes[0] ?? u.name);
        // Healthy when the Trigger service answers success: true (as the supervisor's probe).
        const call = `node ${posix.join(myelinDir, "bin/myelin")} service call '${svc}' std_srvs/Trigger '{}' --json`;
        return { kind: "exec", command: ["sh", "-c", `${call} | grep -q '"success":true'`], ...timing };
      }
      case "http": {
        const raw = p.target[0] ?? "";
        let url: URL;
        try {
          url = new URL(raw);
        } catch {
          fail(
            `${specName}: ${field}.health.probe.http`,
            `'${raw}' is not a URL, e.g. http://127.0.0.1:8080/healthz`,
          );
        }
        if (url.protocol !== "http:" && url.protocol !== "https:")
          fail(`${specName}: ${field}.health.probe.http`, `'${raw}' must be http:// or https://`);
        const local = ["127.0.0.1", "localhost", "[::1]", "0.0.0.0"].includes(url.hostname);
        const probe: PlannedProbe = {
          kind: "http",
          scheme: url.protocol === "https:" ? "HTTPS" : "HTTP",
          port: url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80,
          path: `${url.pathname}${url.search}`,
          url: raw,
          ...timing,
        };
        if (!local) probe.host = url.hostname;
        return probe;
      }
    }
  }

  const hub = planHub(spec, opts, mode, specName, notes);
  const plan: RenderPlan = {
    specName,
    specText: readFileSync(spec.file, "utf8"),
    image,
    namespace,
    uid,
    secretName: opts.secretName ?? RENDER_DEFAULTS.secretName,
    storageSize,
    hub,
    workloads,
    notes,
  };
  if (opts.keysSecret !== undefined) {
    if (dnsName("", opts.keysSecret) !== opts.keysSecret)
      fail("--keys-secret", `'${opts.keysSecret}' is not a Secret name (lowercase letters, digits, '-')`);
    plan.keysSecret = opts.keysSecret;
  }
  if (dnsName("", plan.secretName) !== plan.secretName)
    fail("--secret-name", `'${plan.secretName}' is not a Secret name (lowercase letters, digits, '-')`);
  if (opts.storageClass !== undefined) plan.storageClass = opts.storageClass;
  return plan;
}

/** The env settings of a bridge that hold secrets, with the setting that names each. */
function secretEnvOf(b: BridgeConfig): { field: string; env: string }[] {
  const out: { field: string; env: string }[] = [];
  const add = (field: string, env: string | undefined): void => {
    if (env !== undefined) out.push({ field, env });
  };
  switch (b.kind) {
    case "mqtt":
      add("passwordEnv", b.passwordEnv);
      break;
    case "nats":
      add("passEnv", b.passEnv);
      add("tokenEnv", b.tokenEnv);
      break;
    case "amqp":
      break;
    case "kafka":
      add("sasl.passwordEnv", b.sasl?.passwordEnv);
      break;
  }
  return out;
}

function planHub(
  spec: LaunchSpec,
  opts: RenderOptions,
  mode: HubMode,
  specName: string,
  notes: string[],
): PlannedHub {
  const myelinDir = opts.myelinDir ?? RENDER_DEFAULTS.myelinDir;
  const D = RENDER_DEFAULTS;
  const command = [
    "node",
    posix.join(myelinDir, "bin/myelin"),
    "hub",
    "--runtime-dir",
    D.runtimeDir,
    "--data-dir",
    D.dataDir,
    "--listen",
    `tcp://0.0.0.0:${D.controlPort}`,
  ];
  const files: Record<string, string> = {};
  const secretEnv: Record<string, string> = {};
  if (spec.topics.length > 0) {
    const topics: Record<string, unknown> = {};
    for (const r of spec.topics) topics[r.pattern] = r.config;
    files["store.yaml"] = yaml().stringify({ topics });
    command.push("--store-config", `${D.configDir}/store.yaml`);
  }
  if (opts.bridgeConfig !== undefined) {
    const file = opts.bridgeConfig;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      fail("--bridge-config", `cannot read ${file}: ${(err as Error).message}`);
    }
    let raw: unknown;
    try {
      raw = yaml().parse(text);
    } catch (err) {
      fail(file, `not valid YAML: ${(err as Error).message}`);
    }
    const list = (raw as { bridges?: unknown } | null)?.bridges;
    if (!Array.isArray(list)) fail(file, "bridges: must be a list of bridges (docs/bridges.md)");
    list.forEach((entry, i) => {
      const where = `${file}: bridges[${i}].`;
      const b = validateBridgeConfig(entry, where);
      const e = entry as Record<string, unknown>;
      const sasl = e["sasl"] as Record<string, unknown> | undefined;
      const inline =
        ["password", "pass", "token"].find((k) => e[k] !== undefined) ??
        (sasl?.["password"] !== undefined ? "sasl.password" : undefined);
      if (inline !== undefined) {
        fail(
          `${where}${inline}`,
          `a secret written in the file would land in a ConfigMap; use ${inline}Env: NAME instead and put NAME in the Secret ${opts.secretName ?? D.secretName}`,
        );
      }
      for (const s of secretEnvOf(b)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s.env))
          fail(`${where}${s.field}`, `'${s.env}' is not an environment variable name`);
        secretEnv[s.env] = s.env;
      }
    });
    files["bridges.yaml"] = text;
    command.push("--bridge-config", `${D.configDir}/bridges.yaml`);
  }
  let mqttPort = opts.mqttPort;
  if (mqttPort !== undefined && (!Number.isInteger(mqttPort) || mqttPort < 1 || mqttPort > 65535))
    fail("--mqtt-port", `must be a port from 1 to 65535, got ${mqttPort}`);
  if (opts.gatewayConfig !== undefined) {
    try {
      files["gateway.yaml"] = readFileSync(opts.gatewayConfig, "utf8");
    } catch (err) {
      fail("--gateway-config", `cannot read ${opts.gatewayConfig}: ${(err as Error).message}`);
    }
    command.push("--gateway-config", `${D.configDir}/gateway.yaml`);
    if (mqttPort !== undefined) command.push("--mqtt-port", String(mqttPort));
    mqttPort ??= 1883;
    notes.push(
      "hub: the gateway config's listeners must bind host 0.0.0.0 to be reachable through the Service",
    );
  } else if (mqttPort !== undefined) {
    // The hub's own --mqtt-port listens on loopback; in a container it must listen on every address.
    files["gateway.yaml"] = yaml().stringify({ listeners: { tcp: { host: "0.0.0.0", port: mqttPort } } });
    command.push("--gateway-config", `${D.configDir}/gateway.yaml`);
  }
  if (mode === "daemonset")
    notes.push(
      "hub: one per cluster node; pods share its runtime directory through the hostPath /run/myelin, and its store lives in the hostPath /var/lib/myelin",
    );
  void specName;
  const hub: PlannedHub = { mode, command, files, secretEnv };
  if (mqttPort !== undefined) hub.mqttPort = mqttPort;
  return hub;
}
