/**
 * A Docker Compose file from a {@link RenderPlan}: the hub as a service with named volumes for its
 * runtime directory (shared with every node's container, so they reach it over ipc as on one
 * host) and its store, its configuration files as Compose `configs` (files written next to the
 * Compose file), and one service per supervised process with its replicas, restart policy,
 * health check, memory and open-file limits and dependencies. Reference: docs/render.md.
 */
import { yaml } from "../codec/yaml.js";
import {
  prepareDirsScript,
  RENDER_DEFAULTS,
  type PlannedProbe,
  type PlannedWorkload,
  type RenderPlan,
} from "./render-plan.js";

/** A rendered Compose project: the file and the configuration files it refers to. */
export interface ComposeRendering {
  /** The Compose document (plain JSON). */
  compose: Record<string, unknown>;
  /** Files to write next to the Compose file: path relative to it → text. */
  files: Record<string, string>;
}

const D = RENDER_DEFAULTS;

function durationOf(seconds: number): string {
  return `${seconds}s`;
}

/** A probe as a Compose health check (a command run in the container). */
function healthcheckOf(p: PlannedProbe): Record<string, unknown> {
  let test: string[];
  if (p.kind === "exec") test = ["CMD", ...p.command];
  else {
    const url = `${p.scheme.toLowerCase()}://${p.host ?? "127.0.0.1"}:${p.port}${p.path}`;
    // Node has fetch; a 2xx answer is healthy, as for the supervisor's http probe.
    test = [
      "CMD",
      "node",
      "-e",
      `fetch(${JSON.stringify(url)}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))`,
    ];
  }
  return {
    test,
    interval: durationOf(p.periodSeconds),
    timeout: durationOf(p.timeoutSeconds),
    retries: p.failureThreshold,
    start_period: durationOf(p.initialDelaySeconds),
  };
}

function serviceOf(
  plan: RenderPlan,
  w: PlannedWorkload,
  byUnit: Map<string, PlannedWorkload>,
): Record<string, unknown> {
  const s: Record<string, unknown> = {
    image: plan.image,
    command: w.command,
    working_dir: w.workingDir,
    user: `${plan.uid}:${plan.uid}`,
    environment: { ...w.env, MYELIN_RUNTIME_DIR: D.runtimeDir },
    volumes: [`myelin-run:${D.runtimeDir}`],
    restart: w.restart === "always" ? "always" : w.restart === "on-failure" ? "on-failure" : "no",
    stop_grace_period: durationOf(w.stopGraceSeconds),
    labels: { "myelin.io/unit": w.unit, "myelin.io/nodes": w.nodes.join(",") },
  };
  if (w.replicas !== 1) s["deploy"] = { replicas: w.replicas };
  if (w.memoryMb !== undefined) s["mem_limit"] = `${w.memoryMb}m`;
  if (w.openFiles !== undefined) s["ulimits"] = { nofile: { soft: w.openFiles, hard: w.openFiles } };
  if (w.probe !== undefined) s["healthcheck"] = healthcheckOf(w.probe);
  const deps: Record<string, { condition: string }> = { hub: { condition: "service_healthy" } };
  for (const d of w.dependsOn) {
    const dep = byUnit.get(d.unit);
    if (dep === undefined) continue;
    // `ready` waits for the dependency's health check when it has one; else it was started.
    deps[dep.name] = {
      condition: d.condition === "ready" && dep.probe !== undefined ? "service_healthy" : "service_started",
    };
  }
  s["depends_on"] = deps;
  return s;
}

/** Renders the plan as a Compose project (one host: placement labels are not used). */
export function renderCompose(plan: RenderPlan): ComposeRendering {
  const files: Record<string, string> = {};
  const configs: Record<string, { file: string }> = {};
  const hubConfigs: { source: string; target: string }[] = [];
  for (const [name, text] of Object.entries(plan.hub.files)) {
    files[`config/${name}`] = text;
    const id = `myelin-${name.replace(/\.[a-z]+$/, "")}`;
    configs[id] = { file: `./config/${name}` };
    hubConfigs.push({ source: id, target: `${D.configDir}/${name}` });
  }
  const hub: Record<string, unknown> = {
    image: plan.image,
    command: plan.hub.command,
    user: `${plan.uid}:${plan.uid}`,
    volumes: [`myelin-run:${D.runtimeDir}`, `myelin-data:${D.dataDir}`],
    restart: "always",
    healthcheck: {
      // The hub is healthy once its control socket is there.
      test: ["CMD", "node", "-e", `require("fs").statSync(${JSON.stringify(`${D.runtimeDir}/hub.sock`)})`],
      interval: "5s",
      timeout: "2s",
      retries: 12,
    },
    labels: { "myelin.io/component": "hub" },
  };
  if (hubConfigs.length > 0) hub["configs"] = hubConfigs;
  const env = Object.keys(plan.hub.secretEnv);
  if (env.length > 0)
    hub["environment"] = Object.fromEntries(
      env.map((e) => [e, `\${${e}:?set ${e} in the environment or .env}`]),
    );
  if (plan.hub.mqttPort !== undefined) hub["ports"] = [`${plan.hub.mqttPort}:${plan.hub.mqttPort}`];
  if (plan.keysSecret !== undefined)
    (hub["volumes"] as string[]).push(`./${plan.keysSecret}:${D.keysDir}:ro`);
  // Named volumes start out owned by root: give them to the containers' user before the hub starts.
  const prepare = {
    image: plan.image,
    command: ["sh", "-c", prepareDirsScript(plan.uid)],
    user: "0:0",
    volumes: [`myelin-run:${D.runtimeDir}`, `myelin-data:${D.dataDir}`],
    restart: "no",
  };
  hub["depends_on"] = { "prepare-dirs": { condition: "service_completed_successfully" } };
  const byUnit = new Map(plan.workloads.map((w) => [w.unit, w]));
  const services: Record<string, unknown> = { "prepare-dirs": prepare, hub };
  for (const w of plan.workloads) services[w.name] = serviceOf(plan, w, byUnit);
  const compose: Record<string, unknown> = {
    // The project name is Compose's `-p` (default: the directory), not a key, so older tools read the file too.
    services,
    volumes: { "myelin-run": {}, "myelin-data": {} },
  };
  if (Object.keys(configs).length > 0) compose["configs"] = configs;
  return { compose, files };
}

/** The Compose document as YAML. */
export function composeYaml(r: ComposeRendering): string {
  return yaml().stringify(r.compose, { lineWidth: 0 });
}
