/**
 * `myelin render k8s|compose SPEC`: renders a launch spec to Kubernetes manifests or a Docker
 * Compose file (render-plan.ts, render-k8s.ts, render-compose.ts; docs/render.md).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadSpec } from "../orchestrator/spec.js";
import {
  numOpt,
  strOpt,
  UsageError,
  type CommandSpec,
  type Context,
  type Invocation,
  type OptionSpec,
} from "./common.js";
import { planRender, RENDER_DEFAULTS, type RenderOptions, type RenderPlan } from "./render-plan.js";

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  output: {
    type: "string",
    short: "o",
    arg: "DIR",
    help: "write the files into DIR (default: print to stdout)",
  },
  env: {
    type: "string",
    arg: "NAME",
    help: "apply the spec's environment NAME first (as `myelin up --env`)",
  },
  image: {
    type: "string",
    arg: "IMAGE",
    help: `the container image every process runs (default ${RENDER_DEFAULTS.image})`,
  },
  root: {
    type: "string",
    arg: "DIR",
    help: "the directory of this machine the image holds at --app-dir (default: the spec's directory); modules and working directories must be inside it",
  },
  "app-dir": {
    type: "string",
    arg: "PATH",
    help: `where --root is in the image (default ${RENDER_DEFAULTS.appDir})`,
  },
  "myelin-dir": {
    type: "string",
    arg: "PATH",
    help: `where Myelin is installed in the image (default ${RENDER_DEFAULTS.myelinDir})`,
  },
  namespace: {
    type: "string",
    arg: "NS",
    help: `Kubernetes namespace (default ${RENDER_DEFAULTS.namespace}); for Compose, use docker compose -p NAME`,
  },
  "bridge-config": {
    type: "string",
    arg: "FILE",
    help: "a bridge configuration (docs/bridges.md) the hub runs; its passwordEnv/passEnv/tokenEnv/sasl.passwordEnv become Secret references",
  },
  "gateway-config": {
    type: "string",
    arg: "FILE",
    help: "a gateway configuration the hub runs (MQTT port 1883 unless --mqtt-port)",
  },
  "mqtt-port": {
    type: "string",
    arg: "N",
    help: "the hub's MQTT gateway listens on port N on every address",
  },
  "secret-name": {
    type: "string",
    arg: "NAME",
    help: `the Secret holding the bridges' passwords and tokens (default ${RENDER_DEFAULTS.secretName})`,
  },
  "keys-secret": {
    type: "string",
    arg: "NAME",
    help: `a Secret of key files (CURVE keys, NATS creds) mounted read-only at ${RENDER_DEFAULTS.keysDir} in the hub (Compose: the directory ./NAME)`,
  },
  uid: { type: "string", arg: "N", help: `user id of every container (default ${RENDER_DEFAULTS.uid})` },
};

function optionsOf(inv: Invocation, command: string): RenderOptions {
  const o: RenderOptions = {};
  const set = <K extends keyof RenderOptions>(k: K, v: RenderOptions[K] | undefined): void => {
    if (v !== undefined) o[k] = v;
  };
  set("image", strOpt(inv, "image"));
  set("root", strOpt(inv, "root"));
  set("appDir", strOpt(inv, "app-dir"));
  set("myelinDir", strOpt(inv, "myelin-dir"));
  set("namespace", strOpt(inv, "namespace"));
  set("bridgeConfig", strOpt(inv, "bridge-config"));
  set("gatewayConfig", strOpt(inv, "gateway-config"));
  set("mqttPort", numOpt(inv, "mqtt-port", { min: 1, max: 65535, integer: true, command }));
  set("secretName", strOpt(inv, "secret-name"));
  set("keysSecret", strOpt(inv, "keys-secret"));
  set("uid", numOpt(inv, "uid", { min: 1, integer: true, command }));
  const hub = strOpt(inv, "hub");
  if (hub !== undefined) {
    if (hub !== "daemonset" && hub !== "statefulset")
      throw new UsageError(`--hub must be daemonset or statefulset, got '${hub}'`, command);
    o.hub = hub;
  }
  set("storageSize", strOpt(inv, "storage-size"));
  set("storageClass", strOpt(inv, "storage-class"));
  return o;
}

function plan(inv: Invocation, command: string): RenderPlan {
  const file = inv.positionals[0];
  if (file === undefined) throw new UsageError("give the launch spec to render, e.g. myelin.yaml", command);
  const spec = loadSpec(file, { environment: strOpt(inv, "env"), checkFiles: false });
  return planRender(spec, optionsOf(inv, command));
}

function write(ctx: Context, dir: string, files: [string, string][]): void {
  for (const [name, text] of files) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
  ctx.err(`wrote ${files.length} file${files.length === 1 ? "" : "s"} to ${dir}`);
}

function notes(ctx: Context, p: RenderPlan): void {
  for (const n of p.notes) ctx.err(`note: ${n}`);
}

/** `myelin render k8s`. */
export const renderK8sCommand: CommandSpec = {
  path: ["render", "k8s"],
  summary:
    "render a launch spec to Kubernetes manifests (hub DaemonSet or StatefulSet, Deployments, ConfigMap, Services)",
  args: [{ name: "SPEC", help: "the launch spec, e.g. myelin.yaml" }],
  options: {
    ...COMMON_OPTIONS,
    hub: {
      type: "string",
      arg: "MODE",
      help: "daemonset (default: a hub on every cluster node, pods reach it through a host directory) or statefulset (one hub per site, with a volume claim for its store)",
    },
    "storage-size": {
      type: "string",
      arg: "SIZE",
      help: `size of the store's volume claim with --hub statefulset (default ${RENDER_DEFAULTS.storageSize})`,
    },
    "storage-class": {
      type: "string",
      arg: "NAME",
      help: "storage class of that claim (default: the cluster's)",
    },
  },
  details: [
    "Every object is validated offline against the Kubernetes schema before it is written. Without -o the",
    "objects are printed as one YAML stream for `kubectl apply -f -`; with -o DIR, one file per object.",
    "Placement labels select cluster nodes labelled myelin.io/<label>=true (any one of them).",
    "What the cluster cannot do as the spec says is printed as notes on stderr (see docs/render.md).",
  ],
  examples: [
    "myelin render k8s myelin.yaml | kubectl apply -f -",
    "myelin render k8s myelin.yaml --hub statefulset --namespace site-a --image registry.local/robot:1.4 -o deploy/",
    "myelin render k8s examples/system/myelin.yaml --root . --myelin-dir /app   # an image of this project at /app",
    "myelin render k8s myelin.yaml --bridge-config bridges.yaml --secret-name site-a-creds",
  ],
  connects: false,
  async run(ctx, inv) {
    // kubernetes-models is large: loaded only when rendering.
    const { kubernetesFileName, kubernetesYaml, renderKubernetes } = await import("./render-k8s.js");
    const p = plan(inv, "render k8s");
    const objects = renderKubernetes(p);
    notes(ctx, p);
    const dir = strOpt(inv, "output");
    if (dir === undefined) ctx.out(kubernetesYaml(objects).replace(/\n$/, ""));
    else
      write(
        ctx,
        dir,
        objects.map((o, i) => [kubernetesFileName(o, i), kubernetesYaml([o])]),
      );
    return Promise.resolve(0);
  },
};

/** `myelin render compose`. */
export const renderComposeCommand: CommandSpec = {
  path: ["render", "compose"],
  summary: "render a launch spec to a Docker Compose file (hub, one service per process, volumes, configs)",
  args: [{ name: "SPEC", help: "the launch spec, e.g. myelin.yaml" }],
  options: COMMON_OPTIONS,
  details: [
    "The hub's runtime directory is a named volume every service mounts, so nodes reach the hub over ipc",
    "as on one host. The hub's configuration files (topics, bridges, gateway) are Compose configs written",
    "under DIR/config/, so a spec that needs them must be rendered with -o DIR.",
  ],
  examples: [
    "myelin render compose myelin.yaml -o deploy/ && docker compose -f deploy/compose.yaml up -d",
    "myelin render compose examples/system/myelin.yaml --root . --myelin-dir /app -o /tmp/demo",
  ],
  connects: false,
  async run(ctx, inv) {
    const { composeYaml, renderCompose } = await import("./render-compose.js");
    const p = plan(inv, "render compose");
    const r = renderCompose(p);
    notes(ctx, p);
    const dir = strOpt(inv, "output");
    if (dir === undefined) {
      const needs = Object.keys(r.files);
      if (needs.length > 0) {
        throw new UsageError(
          `the hub needs configuration files (${needs.join(", ")}) next to the Compose file; pass -o DIR to write them`,
          "render compose",
        );
      }
      ctx.out(composeYaml(r).replace(/\n$/, ""));
    } else write(ctx, dir, [["compose.yaml", composeYaml(r)], ...Object.entries(r.files)]);
    return 0;
  },
};
