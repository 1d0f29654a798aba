/**
 * Kubernetes manifests from a {@link RenderPlan}: a Namespace, a ConfigMap with the spec and the
 * hub's configuration files, the hub (a DaemonSet with host paths, or a StatefulSet with a volume
 * claim for the store) and its Service, and one Deployment per supervised process (a Job for
 * `restart: never`). Every object is built with `kubernetes-models` and validated against the
 * Kubernetes OpenAPI schema before it is returned, so a manifest that would not apply is an error
 * here, not in the cluster. Reference: docs/render.md.
 */
import { yaml } from "../codec/yaml.js";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEnvVar } from "kubernetes-models/v1/EnvVar";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IProbe } from "kubernetes-models/v1/Probe";
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { IVolumeMount } from "kubernetes-models/v1/VolumeMount";
import type { IAffinity } from "kubernetes-models/v1/Affinity";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { Job } from "kubernetes-models/batch/v1/Job";
import { MyelinError } from "../errors.js";
import {
  prepareDirsScript,
  RENDER_DEFAULTS,
  type PlannedProbe,
  type PlannedWorkload,
  type RenderPlan,
} from "./render-plan.js";

/** One rendered object, as plain JSON (apiVersion, kind, metadata, spec, …). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}

/** The name of the hub's objects (DaemonSet or StatefulSet, Service). */
export const HUB_NAME = "myelin-hub";
/** The name of the ConfigMap with the spec and the hub's files. */
export const CONFIG_NAME = "myelin-config";
/** The label key prefix of placement labels on cluster nodes: `myelin.io/<label>=true`. */
export const PLACEMENT_LABEL_PREFIX = "myelin.io/";

const D = RENDER_DEFAULTS;

/** Anything with the validation and JSON form of a kubernetes-models object. */
interface Model {
  validate(): void;
  toJSON(): unknown;
}

/**
 * Validates a model and returns its JSON.
 * @throws MyelinError ERR_BAD_CONFIG naming the object and the schema's complaint
 */
function checked(what: string, m: Model): K8sObject {
  try {
    m.validate();
  } catch (err) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `the rendered ${what} is not a valid Kubernetes object: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return JSON.parse(JSON.stringify(m.toJSON())) as K8sObject;
}

function labels(component: string, unit?: string): Record<string, string> {
  const l: Record<string, string> = {
    "app.kubernetes.io/name": "myelin",
    "app.kubernetes.io/component": component,
  };
  if (unit !== undefined) l["myelin.io/unit"] = unit;
  return l;
}

function probeOf(p: PlannedProbe): IProbe {
  const timing = {
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
    initialDelaySeconds: p.initialDelaySeconds,
  };
  if (p.kind === "exec") return { exec: { command: p.command }, ...timing };
  const httpGet: NonNullable<IProbe["httpGet"]> = { path: p.path, port: p.port, scheme: p.scheme };
  if (p.host !== undefined) httpGet.host = p.host;
  return { httpGet, ...timing };
}

/** How a pod reaches the hub: the shared runtime directory (daemonset) or the hub's address (statefulset). */
function hubAccess(plan: RenderPlan): { env: IEnvVar[]; volumes: IVolume[]; mounts: IVolumeMount[] } {
  if (plan.hub.mode === "statefulset") {
    return {
      env: [
        {
          name: "MYELIN_HUB",
          value: `tcp://${HUB_NAME}-0.${HUB_NAME}.${plan.namespace}.svc.cluster.local:${D.controlPort}`,
        },
      ],
      volumes: [],
      mounts: [],
    };
  }
  return {
    env: [{ name: "MYELIN_RUNTIME_DIR", value: D.runtimeDir }],
    volumes: [{ name: "runtime", hostPath: { path: D.runtimeDir, type: "DirectoryOrCreate" } }],
    mounts: [{ name: "runtime", mountPath: D.runtimeDir }],
  };
}

function affinityOf(placement: string[]): { nodeSelector?: Record<string, string>; affinity?: IAffinity } {
  if (placement.length === 0) return {};
  if (placement.length === 1)
    return { nodeSelector: { [`${PLACEMENT_LABEL_PREFIX}${placement[0]}`]: "true" } };
  // Any one of the labels: one node selector term per label (terms are ORed).
  return {
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: placement.map((l) => ({
            matchExpressions: [{ key: `${PLACEMENT_LABEL_PREFIX}${l}`, operator: "In", values: ["true"] }],
          })),
        },
      },
    },
  };
}

function securityOf(plan: RenderPlan): NonNullable<IPodSpec["securityContext"]> {
  return { runAsUser: plan.uid, runAsGroup: plan.uid, fsGroup: plan.uid, runAsNonRoot: true };
}

function workloadPod(plan: RenderPlan, w: PlannedWorkload, restartPolicy: "Always" | "Never"): IPodSpec {
  const access = hubAccess(plan);
  const env: IEnvVar[] = [
    ...Object.entries(w.env).map(([name, value]) => ({ name, value })),
    ...access.env,
    // Matches the processes of this pod on the graph, as the supervisor's instance id does.
    { name: "MYELIN_INSTANCE", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
  ];
  const container: IContainer = {
    name: "node",
    image: plan.image,
    command: w.command,
    workingDir: w.workingDir,
    env,
  };
  if (access.mounts.length > 0) container.volumeMounts = access.mounts;
  if (w.memoryMb !== undefined) container.resources = { limits: { memory: `${w.memoryMb}Mi` } };
  if (w.probe !== undefined) {
    container.livenessProbe = probeOf(w.probe);
    if (w.probe.readiness) container.readinessProbe = probeOf(w.probe);
  }
  const pod: IPodSpec = {
    containers: [container],
    restartPolicy,
    terminationGracePeriodSeconds: w.stopGraceSeconds,
    securityContext: securityOf(plan),
    ...affinityOf(w.placement),
  };
  if (access.volumes.length > 0) pod.volumes = access.volumes;
  return pod;
}

function workloadObject(plan: RenderPlan, w: PlannedWorkload): K8sObject {
  const metadata = {
    name: w.name,
    namespace: plan.namespace,
    labels: labels("node", w.unit),
    annotations: {
      "myelin.io/nodes": w.nodes.join(","),
      ...(w.dependsOn.length > 0
        ? { "myelin.io/depends-on": w.dependsOn.map((d) => `${d.unit}:${d.condition}`).join(",") }
        : {}),
    },
  };
  const selector = { matchLabels: { "myelin.io/unit": w.unit, "app.kubernetes.io/component": "node" } };
  const template = { metadata: { labels: labels("node", w.unit) } };
  if (w.restart === "never") {
    return checked(
      `Job ${w.name}`,
      new Job({
        metadata,
        spec: {
          parallelism: w.replicas,
          completions: w.replicas,
          backoffLimit: 0,
          template: { ...template, spec: workloadPod(plan, w, "Never") },
        },
      }),
    );
  }
  return checked(
    `Deployment ${w.name}`,
    new Deployment({
      metadata,
      spec: {
        replicas: w.replicas,
        selector,
        template: { ...template, spec: workloadPod(plan, w, "Always") },
      },
    }),
  );
}

function hubObjects(plan: RenderPlan): K8sObject[] {
  const h = plan.hub;
  const hubLabels = labels("hub");
  const selector = {
    matchLabels: { "app.kubernetes.io/name": "myelin", "app.kubernetes.io/component": "hub" },
  };
  const ports: { name: string; containerPort: number; protocol: "TCP" }[] = [
    { name: "control", containerPort: D.controlPort, protocol: "TCP" },
  ];
  if (h.mqttPort !== undefined) ports.push({ name: "mqtt", containerPort: h.mqttPort, protocol: "TCP" });
  const env: IEnvVar[] = Object.entries(h.secretEnv).map(([name, key]) => ({
    name,
    valueFrom: { secretKeyRef: { name: plan.secretName, key } },
  }));
  const mounts: IVolumeMount[] = [
    { name: "runtime", mountPath: D.runtimeDir },
    { name: "data", mountPath: D.dataDir },
    { name: "config", mountPath: D.configDir, readOnly: true },
  ];
  const volumes: IVolume[] = [{ name: "config", configMap: { name: CONFIG_NAME } }];
  if (plan.keysSecret !== undefined) {
    mounts.push({ name: "keys", mountPath: D.keysDir, readOnly: true });
    volumes.push({ name: "keys", secret: { secretName: plan.keysSecret, defaultMode: 0o400 } });
  }
  const probe: IProbe = {
    tcpSocket: { port: D.controlPort },
    periodSeconds: 10,
    timeoutSeconds: 2,
    failureThreshold: 3,
  };
  const container: IContainer = {
    name: "hub",
    image: plan.image,
    command: h.command,
    ports,
    volumeMounts: mounts,
    livenessProbe: probe,
    readinessProbe: { ...probe, periodSeconds: 5 },
  };
  if (env.length > 0) container.env = env;
  const pod: IPodSpec = {
    containers: [container],
    securityContext: securityOf(plan),
    terminationGracePeriodSeconds: 30,
    volumes,
  };
  const metadata = { name: HUB_NAME, namespace: plan.namespace, labels: hubLabels };
  const servicePorts = ports.map((p) => ({
    name: p.name,
    port: p.containerPort,
    targetPort: p.containerPort,
  }));
  if (h.mode === "daemonset") {
    // Host directories are created by the kubelet as root: hand them to the containers' user first.
    pod.initContainers = [
      {
        name: "prepare-dirs",
        image: plan.image,
        command: ["sh", "-c", prepareDirsScript(plan.uid)],
        securityContext: { runAsUser: 0, runAsNonRoot: false },
        volumeMounts: mounts.filter((m) => m.name === "runtime" || m.name === "data"),
      },
    ];
    volumes.push(
      { name: "runtime", hostPath: { path: D.runtimeDir, type: "DirectoryOrCreate" } },
      { name: "data", hostPath: { path: D.dataDir, type: "DirectoryOrCreate" } },
    );
    return [
      checked(
        `DaemonSet ${HUB_NAME}`,
        new DaemonSet({
          metadata,
          spec: { selector, template: { metadata: { labels: hubLabels }, spec: pod } },
        }),
      ),
      checked(
        `Service ${HUB_NAME}`,
        new Service({
          metadata,
          // Each pod reaches the hub of its own cluster node.
          spec: { selector: selector.matchLabels, ports: servicePorts, internalTrafficPolicy: "Local" },
        }),
      ),
    ];
  }
  volumes.push({ name: "runtime", emptyDir: {} });
  const claim: NonNullable<ConstructorParameters<typeof StatefulSet>[0]>["spec"] = {
    serviceName: HUB_NAME,
    replicas: 1,
    selector,
    template: { metadata: { labels: hubLabels }, spec: pod },
    volumeClaimTemplates: [
      {
        metadata: { name: "data" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: plan.storageSize } },
          ...(plan.storageClass !== undefined ? { storageClassName: plan.storageClass } : {}),
        },
      },
    ],
  };
  return [
    checked(
      `Service ${HUB_NAME}`,
      new Service({
        metadata,
        spec: { clusterIP: "None", selector: selector.matchLabels, ports: servicePorts },
      }),
    ),
    checked(`StatefulSet ${HUB_NAME}`, new StatefulSet({ metadata, spec: claim })),
  ];
}

const MODELS: Record<string, new (data: never) => Model> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/DaemonSet": DaemonSet,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "batch/v1/Job": Job,
};

/**
 * Validates a plain object (e.g. read back from a rendered file) against the Kubernetes schema of
 * its `apiVersion` and `kind`.
 * @throws MyelinError ERR_BAD_CONFIG naming the object and what is wrong, or a kind this renderer does not make
 */
export function validateK8sObject(o: unknown): void {
  const obj = o as Partial<K8sObject> | null;
  const key = `${String(obj?.apiVersion)}/${String(obj?.kind)}`;
  const M = MODELS[key];
  if (M === undefined)
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${key} is not a kind this renderer makes (${Object.keys(MODELS).join(", ")})`,
    );
  checked(`${String(obj?.kind)} ${String(obj?.metadata?.name)}`, new M(o as never));
}

/**
 * Every object of the plan, validated, in apply order (namespace, config, hub, workloads).
 * @throws MyelinError ERR_BAD_CONFIG if an object does not validate (naming it)
 */
export function renderKubernetes(plan: RenderPlan): K8sObject[] {
  const objects: K8sObject[] = [
    checked(
      `Namespace ${plan.namespace}`,
      new Namespace({ metadata: { name: plan.namespace, labels: labels("namespace") } }),
    ),
    checked(
      `ConfigMap ${CONFIG_NAME}`,
      new ConfigMap({
        metadata: { name: CONFIG_NAME, namespace: plan.namespace, labels: labels("config") },
        data: { [plan.specName]: plan.specText, ...plan.hub.files },
      }),
    ),
    ...hubObjects(plan),
    ...plan.workloads.map((w) => workloadObject(plan, w)),
  ];
  return objects;
}

/** The objects as one multi-document YAML stream (`kubectl apply -f -`). */
export function kubernetesYaml(objects: K8sObject[]): string {
  return objects.map((o) => yaml().stringify(o, { lineWidth: 0 })).join("---\n");
}

/** A file name for each object when writing to a directory: `NN-kind-name.yaml`, in apply order. */
export function kubernetesFileName(o: K8sObject, index: number): string {
  return `${String(index).padStart(2, "0")}-${o.kind.toLowerCase()}-${o.metadata.name}.yaml`;
}
