/**
 * The gateway configuration file (YAML): listeners, topic mapping, site prefix, users and ACLs,
 * limits. Checked as it is read; a mistake is an ERR_BAD_CONFIG naming the file, the field and
 * what is accepted. See docs/mqtt-gateway.md for the reference.
 *
 * ```yaml
 * listeners:
 *   tcp: { port: 1883 }
 *   tls: { port: 8883, cert: server.crt, key: server.key, ca: ca.crt, requestCert: true }
 *   ws:  { port: 8083, path: /mqtt }
 * sitePrefix: site-a
 * mapping:
 *   - { myelin: /sensors/+/temperature, external: sensors/+/temperature, type: sensor_msgs/Temperature, direction: in }
 * auth:
 *   users:
 *     - { username: dev1, password: "scrypt$…", acl: { publish: ["sensors/%c/#"], subscribe: ["cmd/%c/#"] } }
 * limits: { maxMessageBytes: 65536 }
 * twins: { identity: username, maxStateBytes: 8192 }
 * ```
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { yaml } from "../codec/yaml.js";
import { MyelinError, showValue } from "../errors.js";
import { GATEWAY_ERRORS_TOPIC } from "./gateway-protocol.js";
import { TopicMap, type MappingSpec } from "./mapping.js";
import { Authenticator } from "./mqtt-auth.js";
import { resolveLimits, type MqttLimits } from "./mqtt-limits.js";
import type { MqttGatewayOptions, MqttListeners } from "./mqtt-gateway.js";
import { resolveTwinOptions, type TwinOptions } from "./twin-document.js";

/** What a configuration file gives (the hub adds where to store sessions and which hub to join). */
export type GatewayConfig = Pick<
  MqttGatewayOptions,
  "listeners" | "mapping" | "sitePrefix" | "errorTopic" | "auth" | "limits" | "fsync" | "twins"
>;

type Obj = Record<string, unknown>;

const TOP_KEYS = ["listeners", "mapping", "sitePrefix", "errorTopic", "auth", "limits", "fsync", "twins"];

function bad(where: string, msg: string): MyelinError {
  return new MyelinError("ERR_BAD_CONFIG", `${where}: ${msg}`);
}

function obj(v: unknown, where: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad(where, "must be a map");
  return v as Obj;
}

function at(where: string, k: string): string {
  return where === "" ? k : `${where}.${k}`;
}

function onlyKeys(o: Obj, keys: string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw bad(at(where, k), `not a known field; known: ${keys.join(", ")}`);
  }
}

function port(o: Obj, where: string): number {
  const p = o["port"];
  if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p > 65535) {
    throw bad(`${where}.port`, `must be a port number 0..65535 (0 picks a free one), got ${showValue(p)}`);
  }
  return p;
}

function list(v: unknown, where: string, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(where, `must be a list of ${what}, got ${showValue(v)}`);
  return v;
}

/** Checks the shape of `auth` that the Authenticator takes on trust: lists, maps, strings, booleans. */
function checkAuthShape(a: Obj): void {
  onlyKeys(a, ["allowAnonymous", "anonymousAcl", "users", "certificates"], "auth");
  if (a["allowAnonymous"] !== undefined && typeof a["allowAnonymous"] !== "boolean")
    throw bad("auth.allowAnonymous", `must be true or false, got ${showValue(a["allowAnonymous"])}`);
  for (const [i, x] of list(a["users"], "auth.users", "users").entries()) {
    const u = obj(x, `auth.users[${i}]`);
    onlyKeys(u, ["username", "password", "acl"], `auth.users[${i}]`);
    for (const k of ["username", "password"]) {
      if (u[k] !== undefined && typeof u[k] !== "string")
        throw bad(`auth.users[${i}].${k}`, `must be a string, got ${showValue(u[k])}`);
    }
  }
  for (const [i, x] of list(a["certificates"], "auth.certificates", "{ cn, user } entries").entries()) {
    const c = obj(x, `auth.certificates[${i}]`);
    onlyKeys(c, ["cn", "user"], `auth.certificates[${i}]`);
    if (typeof c["user"] !== "string")
      throw bad(
        `auth.certificates[${i}].user`,
        `must be the name of a user in auth.users, got ${showValue(c["user"])}`,
      );
  }
}

function optString(o: Obj, k: string, where: string): string | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") throw bad(at(where, k), "must be a non-empty string");
  return v;
}

function readPem(base: string, file: unknown, where: string): Buffer {
  if (typeof file !== "string" || file === "") throw bad(where, "must name a PEM file");
  const path = resolve(base, file);
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(where, `cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * Checks a parsed configuration (e.g. from YAML) and turns it into gateway options. Relative
 * certificate paths are read from `baseDir`.
 * @throws MyelinError ERR_BAD_CONFIG naming the field (prefixed with `source`)
 */
export function parseGatewayConfig(
  value: unknown,
  baseDir: string,
  source = "gateway config",
): GatewayConfig {
  try {
    const root = obj(value ?? {}, "(top level)");
    onlyKeys(root, TOP_KEYS, "");
    const cfg: GatewayConfig = { listeners: {} };
    const l = obj(root["listeners"] ?? {}, "listeners");
    onlyKeys(l, ["tcp", "tls", "ws"], "listeners");
    const listeners: MqttListeners = {};
    if (l["tcp"] !== undefined) {
      const t = obj(l["tcp"], "listeners.tcp");
      onlyKeys(t, ["port", "host"], "listeners.tcp");
      listeners.tcp = { port: port(t, "listeners.tcp") };
      const host = optString(t, "host", "listeners.tcp");
      if (host !== undefined) listeners.tcp.host = host;
    }
    if (l["tls"] !== undefined) {
      const t = obj(l["tls"], "listeners.tls");
      onlyKeys(t, ["port", "host", "cert", "key", "ca", "requestCert", "requireCert"], "listeners.tls");
      listeners.tls = {
        port: port(t, "listeners.tls"),
        cert: readPem(baseDir, t["cert"], "listeners.tls.cert"),
        key: readPem(baseDir, t["key"], "listeners.tls.key"),
      };
      const host = optString(t, "host", "listeners.tls");
      if (host !== undefined) listeners.tls.host = host;
      if (t["ca"] !== undefined) listeners.tls.ca = readPem(baseDir, t["ca"], "listeners.tls.ca");
      for (const k of ["requestCert", "requireCert"] as const) {
        if (t[k] === undefined) continue;
        if (typeof t[k] !== "boolean") throw bad(`listeners.tls.${k}`, "must be true or false");
        listeners.tls[k] = t[k];
      }
      if (listeners.tls.requestCert === true && listeners.tls.ca === undefined) {
        throw bad("listeners.tls.ca", "requestCert needs the CA that signs client certificates");
      }
    }
    if (l["ws"] !== undefined) {
      const t = obj(l["ws"], "listeners.ws");
      onlyKeys(t, ["port", "host", "path"], "listeners.ws");
      listeners.ws = { port: port(t, "listeners.ws") };
      const host = optString(t, "host", "listeners.ws");
      if (host !== undefined) listeners.ws.host = host;
      const path = optString(t, "path", "listeners.ws");
      if (path !== undefined) {
        if (!path.startsWith("/")) throw bad("listeners.ws.path", "must start with '/'");
        listeners.ws.path = path;
      }
    }
    cfg.listeners = listeners;
    const sitePrefix = optString(root, "sitePrefix", "");
    if (sitePrefix !== undefined) cfg.sitePrefix = sitePrefix;
    const errorTopic = optString(root, "errorTopic", "");
    if (errorTopic !== undefined) {
      if (!/^(\/[A-Za-z0-9_.~-]+)+$/.test(errorTopic))
        throw bad("errorTopic", `must be a Myelin topic name, e.g. ${GATEWAY_ERRORS_TOPIC}`);
      cfg.errorTopic = errorTopic;
    }
    if (root["mapping"] !== undefined) {
      if (!Array.isArray(root["mapping"])) throw bad("mapping", "must be a list of rules");
      const mapping = root["mapping"] as MappingSpec[];
      for (const [i, r] of mapping.entries()) {
        onlyKeys(
          obj(r, `mapping[${i}]`),
          ["myelin", "external", "type", "format", "direction", "qos"],
          `mapping[${i}]`,
        );
      }
      const mapOpts: { syntax: "mqtt"; sitePrefix?: string } = { syntax: "mqtt" };
      if (sitePrefix !== undefined) mapOpts.sitePrefix = sitePrefix;
      new TopicMap(mapping, mapOpts); // checks every rule
      cfg.mapping = mapping;
    }
    if (root["auth"] !== undefined) {
      const a = obj(root["auth"], "auth");
      checkAuthShape(a);
      new Authenticator(a); // checks users, hashes, ACLs
      cfg.auth = a;
    }
    if (root["limits"] !== undefined) {
      resolveLimits(root["limits"] as MqttLimits);
      cfg.limits = root["limits"] as MqttLimits;
    }
    if (root["fsync"] !== undefined) {
      if (typeof root["fsync"] !== "boolean") throw bad("fsync", "must be true or false");
      cfg.fsync = root["fsync"];
    }
    if (root["twins"] !== undefined) {
      resolveTwinOptions(obj(root["twins"], "twins"), "twins");
      cfg.twins = root["twins"] as TwinOptions;
    }
    return cfg;
  } catch (err) {
    if (err instanceof MyelinError && err.code === "ERR_BAD_CONFIG") {
      throw new MyelinError("ERR_BAD_CONFIG", `${source}: ${err.message.replace(/^: /, "")}`, { cause: err });
    }
    throw err;
  }
}

/**
 * Reads and checks a gateway configuration file (YAML or JSON).
 * @throws MyelinError ERR_BAD_CONFIG naming the file and the field
 */
export function loadGatewayConfig(file: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `cannot read the gateway config ${file}: ${(err as Error).message}`,
    );
  }
  return parseGatewayConfigText(text, dirname(resolve(file)), file);
}

/**
 * Checks a configuration file's text (YAML or JSON); relative certificate paths are read from
 * `baseDir`.
 * @throws MyelinError ERR_BAD_CONFIG for a YAML syntax error or an invalid field, naming `file`
 */
export function parseGatewayConfigText(
  text: string,
  baseDir: string,
  file = "gateway config",
): GatewayConfig {
  let value: unknown;
  try {
    value = yaml().parse(text);
  } catch (err) {
    throw new MyelinError("ERR_BAD_CONFIG", `${file}: not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseGatewayConfig(value, baseDir, file);
}
