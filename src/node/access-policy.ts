/**
 * The permission policy: which identities may publish, subscribe, serve and call which names, and
 * which are admins. Pure data and matching, no I/O: the hub loads a policy file
 * (src/hub/policy-file.ts), enforces it at registration and hands it to every node in its
 * `registered` answer; a node's data server enforces it when a subscriber connects or a request
 * arrives (see docs/security.md).
 *
 * Identities are the strings the transports authenticate (`local`, `anonymous`, `curve:<Z85 key>`)
 * plus {@link HUB_IDENTITY} for the nodes the hub process runs itself (store, supervisor, gateway…).
 *
 * Patterns are names with wildcards: `*` matches one segment (`/camera/*\/image`), `**` any number of
 * segments, none included (`/robot/**` matches `/robot` and `/robot/arm/cmd`; `**` alone matches
 * every name).
 */
import { MyelinError } from "../errors.js";
import { processShared } from "../process-shared.js";

/** The identity of the nodes of the hub's own process (its plugins); always an admin. */
export const HUB_IDENTITY = "hub";
/** The identity of a caller in the serving node's own process (a function call, no link). */
export const SAME_PROCESS_IDENTITY = "process";

/** What an identity may do with a name. */
export type Permission = "publish" | "subscribe" | "serve" | "call";

/** The permissions, in the order the policy file lists them. */
export const PERMISSIONS: readonly Permission[] = ["publish", "subscribe", "serve", "call"];

/** One grant: identities (by policy name or raw identity) and the patterns each permission allows. */
export interface PolicyGrant {
  /** Names from `identities`, or raw identities (`local`, `anonymous`, `curve:<key>`). */
  identities: string[];
  publish: string[];
  subscribe: string[];
  serve: string[];
  call: string[];
}

/**
 * A policy as the hub sends it to nodes: already resolved (identity names replaced by the
 * identities they stand for), so a node needs nothing but this.
 */
export interface PolicyDoc {
  /** Where the policy came from (a file path, or `default`), for error messages. */
  source: string;
  /** Identities that may do everything, internal services included. */
  admins: string[];
  /** What the other identities may do. */
  grants: PolicyGrant[];
}

/**
 * The policy when none is given: `local` (this host's user) and every `curve:` key the transport
 * admitted (trusted hosts of the site) are admins; `anonymous` (plain tcp) may publish, subscribe,
 * serve and call every name except the internal ones (`/_…`, parameters of nodes).
 */
export const DEFAULT_POLICY_DOC: PolicyDoc = Object.freeze({
  source: "the default policy (no policy file)",
  admins: ["local", "curve:*"],
  grants: [
    {
      identities: ["anonymous"],
      publish: ["**"],
      subscribe: ["**"],
      serve: ["**"],
      call: ["**"],
    },
  ],
});

/**
 * Internal services whose handler checks the caller itself, per request, against the name the
 * request is about (the store's append needs `publish` on the request's topic; fetch and ack
 * `subscribe`): anyone may call them, the handler decides. Filled by the protocol modules; one
 * set per process (src/process-shared.ts), whichever copy of Myelin filled it or checks it.
 */
const DELEGATED_SERVICES = processShared("node.delegated-services", () => new Set<string>());

/**
 * Marks an internal service as checked by its own handler (see `node.requireGrant`): the data
 * server lets any identity through to it. For services whose permission depends on the request.
 */
export function delegateServiceCheck(service: string): void {
  DELEGATED_SERVICES.add(service);
}

/** Services every node serves for its parameters: internal, answered to admins only. */
const PARAMETER_SERVICE_RE = /\/(list_parameters|set_parameter)$/;

/** True for a name only admins may use: `/_…` (the hub's services and topics) and parameter services. */
export function isInternalName(name: string, kind: "topic" | "service"): boolean {
  if (name.startsWith("/_")) return true;
  return kind === "service" && PARAMETER_SERVICE_RE.test(name);
}

/** True for a service name only the hub's own nodes may serve (`/_store/append`, `/_supervisor/apply`, …). */
export function isReservedService(name: string): boolean {
  return name.startsWith("/_");
}

const PATTERN_RE = /^(\*\*|(\/([A-Za-z0-9_.~-]+|\*|\*\*))+)$/;

/**
 * Compiles a name pattern to a RegExp.
 * @throws MyelinError ERR_BAD_CONFIG naming the pattern when it is not a name with `*` / `**` segments
 */
export function compilePattern(pattern: string, where = "pattern"): RegExp {
  if (!PATTERN_RE.test(pattern)) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${where}: '${pattern}' is not a name pattern: use absolute names with '*' for one segment and '**' for any number, e.g. /camera/*/image or /robot/**`,
    );
  }
  if (pattern === "**") return /^\/.*$|^$/;
  let re = "^";
  for (const seg of pattern.slice(1).split("/")) {
    if (seg === "**") re += "(?:/[^/]+)*";
    else if (seg === "*") re += "/[^/]+";
    else re += "/" + seg.replace(/[.~-]/g, (c) => `\\${c}`);
  }
  return new RegExp(re + "$");
}

/** True if `identity` is named by `entry` (`curve:*` names every CURVE key). */
function identityMatches(entry: string, identity: string): boolean {
  if (entry === identity) return true;
  return entry === "curve:*" && identity.startsWith("curve:");
}

interface CompiledGrant {
  identities: string[];
  patterns: Record<Permission, { pattern: string; re: RegExp }[]>;
}

/** A decision with its reason, for refusals that say what was missing. */
export interface AccessDecision {
  allowed: boolean;
  /** Why not: names the identity, the permission and the name, and how to fix it. */
  reason: string;
}

/** A compiled policy: answers "may identity X do P on name N". */
export class AccessPolicy {
  readonly doc: PolicyDoc;
  readonly #grants: CompiledGrant[];

  /** @throws MyelinError ERR_BAD_CONFIG naming a bad pattern */
  constructor(doc: PolicyDoc) {
    this.doc = doc;
    this.#grants = doc.grants.map((g, i) => ({
      identities: g.identities,
      patterns: Object.fromEntries(
        PERMISSIONS.map((p) => [
          p,
          g[p].map((pattern) => ({
            pattern,
            re: compilePattern(pattern, `${doc.source}: grants[${i}].${p}`),
          })),
        ]),
      ) as CompiledGrant["patterns"],
    }));
  }

  /** The built-in default (see {@link DEFAULT_POLICY_DOC}). */
  static readonly DEFAULT = new AccessPolicy(DEFAULT_POLICY_DOC);

  /** True if `identity` is an admin (the hub's own nodes and same-process callers always are). */
  isAdmin(identity: string): boolean {
    if (identity === HUB_IDENTITY || identity === SAME_PROCESS_IDENTITY) return true;
    return this.doc.admins.some((a) => identityMatches(a, identity));
  }

  /**
   * May `identity` do `permission` on `name`? Admins may do everything; internal names
   * ({@link isInternalName}) are for admins only, except subscribing to an internal topic, which a
   * grant may allow explicitly. Serving a reserved service (`/_…`) is checked by the hub on top.
   */
  check(identity: string, permission: Permission, name: string): AccessDecision {
    if (this.isAdmin(identity)) return { allowed: true, reason: "" };
    const kind = permission === "publish" || permission === "subscribe" ? "topic" : "service";
    if (permission === "call" && DELEGATED_SERVICES.has(name)) return { allowed: true, reason: "" };
    if (isInternalName(name, kind) && permission !== "subscribe") {
      return {
        allowed: false,
        reason: `identity '${identity}' may not ${permission} ${name}: ${kind === "service" ? "internal services" : "internal topics"} are for admins only (${this.doc.source}); add the identity to 'admins' if it must`,
      };
    }
    // An internal topic is granted only by a pattern that names it (starts with /_), never by `**`.
    const internal = isInternalName(name, kind);
    for (const g of this.#grants) {
      if (!g.identities.some((e) => identityMatches(e, identity))) continue;
      const hit = g.patterns[permission].some(
        (p) => p.re.test(name) && (!internal || p.pattern.startsWith("/_")),
      );
      if (hit) return { allowed: true, reason: "" };
    }
    const have = this.#grants
      .filter((g) => g.identities.some((e) => identityMatches(e, identity)))
      .flatMap((g) => g.patterns[permission].map((p) => p.pattern));
    return {
      allowed: false,
      reason:
        `identity '${identity}' has no '${permission}' grant matching ${name} (${this.doc.source}; ` +
        `its ${permission} patterns: ${have.length > 0 ? have.join(", ") : "none"}); add a pattern that matches it to a grant of that identity` +
        (internal && permission === "subscribe" ? " (internal topics need a pattern starting with /_)" : ""),
    };
  }
}

type Obj = Record<string, unknown>;

function strings(v: unknown, where: string): string[] {
  if (v === undefined) return [];
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw new MyelinError("ERR_BAD_CONFIG", `${where} must be a string or a list of strings`);
  }
  return v as string[];
}

const Z85_KEY_RE = /^curve:[0-9A-Za-z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

function checkIdentity(id: string, where: string): void {
  if (id === "local" || id === "anonymous" || id === "curve:*" || Z85_KEY_RE.test(id)) return;
  throw new MyelinError(
    "ERR_BAD_CONFIG",
    `${where}: '${id}' is not an identity: use local, anonymous, curve:* or curve:<40-character Z85 public key> (myelin keys show prints one)`,
  );
}

/**
 * Builds a policy from a parsed policy file (see docs/security.md for the format): resolves
 * identity names, checks every identity and pattern.
 * @param source the file's path, for messages
 * @throws MyelinError ERR_BAD_CONFIG naming the file, the entry and what is accepted
 */
export function policyFromObject(value: unknown, source: string): PolicyDoc {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${source}: a policy file is a map with 'identities', 'admins' and 'grants'`,
    );
  }
  const o = value as Obj;
  for (const k of Object.keys(o)) {
    if (k !== "identities" && k !== "admins" && k !== "grants" && k !== "version") {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${source}: unknown key '${k}'; a policy file has 'identities', 'admins' and 'grants'`,
      );
    }
  }
  const names = new Map<string, string[]>();
  const ids = o["identities"] ?? {};
  if (typeof ids !== "object" || ids === null || Array.isArray(ids)) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${source}: identities must be a map of name: identity (or a list of identities)`,
    );
  }
  for (const [name, v] of Object.entries(ids as Obj)) {
    const list = strings(v, `${source}: identities.${name}`);
    for (const id of list) checkIdentity(id, `${source}: identities.${name}`);
    names.set(name, list);
  }
  const resolve = (refs: string[], where: string): string[] =>
    refs.flatMap((r) => {
      const named = names.get(r);
      if (named !== undefined) return named;
      if (r === "local" || r === "anonymous" || r.startsWith("curve:")) {
        checkIdentity(r, where);
        return [r];
      }
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}: '${r}' is neither a name under 'identities' (${[...names.keys()].join(", ") || "none"}) nor an identity (local, anonymous, curve:<key>)`,
      );
    });
  const admins = resolve(strings(o["admins"], `${source}: admins`), `${source}: admins`);
  const rawGrants = o["grants"] ?? [];
  if (!Array.isArray(rawGrants)) throw new MyelinError("ERR_BAD_CONFIG", `${source}: grants must be a list`);
  const grants = rawGrants.map((g: unknown, i): PolicyGrant => {
    const where = `${source}: grants[${i}]`;
    if (typeof g !== "object" || g === null || Array.isArray(g)) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where} must be a map with 'identity' and some of publish, subscribe, serve, call`,
      );
    }
    const go = g as Obj;
    for (const k of Object.keys(go)) {
      if (k !== "identity" && k !== "identities" && !(PERMISSIONS as string[]).includes(k)) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `${where}: unknown key '${k}'; use identity, publish, subscribe, serve, call`,
        );
      }
    }
    const who = [
      ...strings(go["identity"], `${where}.identity`),
      ...strings(go["identities"], `${where}.identities`),
    ];
    if (who.length === 0)
      throw new MyelinError("ERR_BAD_CONFIG", `${where}: name the identity it grants to ('identity: NAME')`);
    const grant: PolicyGrant = {
      identities: resolve(who, `${where}.identity`),
      publish: strings(go["publish"], `${where}.publish`),
      subscribe: strings(go["subscribe"], `${where}.subscribe`),
      serve: strings(go["serve"], `${where}.serve`),
      call: strings(go["call"], `${where}.call`),
    };
    for (const p of PERMISSIONS) for (const pat of grant[p]) compilePattern(pat, `${where}.${p}`);
    return grant;
  });
  return { source, admins, grants };
}
