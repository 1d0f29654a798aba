/**
 * Who may connect to the MQTT gateway and what each client may do: password hashes (scrypt from
 * node:crypto, in the config as `scrypt$N$r$p$salt$hash`), client certificates mapped to users by
 * their common name (CN), and per-user ACLs of topic patterns for publish and subscribe.
 * ACL patterns use MQTT wildcards; `%c` stands for the client id and `%u` for the user name.
 */
import type { ScryptOptions } from "node:crypto";
import { MyelinError } from "../errors.js";
// node:crypto (OpenSSL) on first use: the public API imports this module for `hashPassword`, and a
// program that only makes nodes must not pay for OpenSSL (docs/performance.md).
import { nodeCrypto } from "../transport/node-crypto.js";

function scrypt(
  password: string | Buffer,
  salt: Buffer,
  keylen: number,
  opts: ScryptOptions,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    nodeCrypto().scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** scrypt cost parameters of new hashes: N (CPU/memory cost, a power of 2), r, p. */
export const SCRYPT_DEFAULTS = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

/**
 * Hashes a password for the gateway config: `scrypt$N$r$p$<salt base64>$<hash base64>`.
 * `myelin gateway hash-password` prints one.
 */
export async function hashPassword(password: string): Promise<string> {
  const salt = nodeCrypto().randomBytes(16);
  const { N, r, p, keylen } = SCRYPT_DEFAULTS;
  const key = await scrypt(password, salt, keylen, { N, r, p, maxmem: 256 * N * r });
  return `scrypt$${N}$${r}$${p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/** Parses a hash made by {@link hashPassword}; undefined if it is not one. */
export function parsePasswordHash(hash: string): ParsedHash | undefined {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(hash);
  if (m === null) return undefined;
  const N = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (N < 2 || (N & (N - 1)) !== 0 || N > 1 << 20 || r < 1 || r > 64 || p < 1 || p > 16) return undefined;
  const key = Buffer.from(m[5]!, "base64");
  if (key.length < 16) return undefined;
  return { N, r, p, salt: Buffer.from(m[4]!, "base64"), key };
}

/** Checks a password against a hash made by {@link hashPassword}, in constant time. */
export async function verifyPassword(password: string | Buffer, hash: string): Promise<boolean> {
  const h = parsePasswordHash(hash);
  if (h === undefined) return false;
  const key = await scrypt(password, h.salt, h.key.length, {
    N: h.N,
    r: h.r,
    p: h.p,
    maxmem: 256 * h.N * h.r + 1024 * 1024,
  });
  return nodeCrypto().timingSafeEqual(key, h.key);
}

/** Topic patterns a user may publish to and subscribe to. */
export interface AclSpec {
  /** Topics the user may publish to (MQTT wildcards; `%c` client id, `%u` user name). */
  publish?: string[];
  /** Topic filters the user may subscribe to: a requested filter must lie within one of them. */
  subscribe?: string[];
  /**
   * Exceptions that win over the allow lists: `publish` topics refused; `subscribe` patterns
   * never delivered (a filter within one is refused with SUBACK 0x80; a wider filter that
   * overlaps one is accepted, and messages on the denied topics are not delivered to it).
   */
  deny?: { publish?: string[]; subscribe?: string[] };
}

/** A user of the gateway. */
export interface UserSpec {
  username: string;
  /** Hash from `myelin gateway hash-password`; a user without one can only log in by certificate. */
  password?: string;
  /** What the user may do (default: nothing). */
  acl?: AclSpec;
}

/** A client certificate common name (CN) that logs in as a user. */
export interface CertificateSpec {
  cn: string;
  user: string;
}

/** Authentication and authorization of the gateway. Without it, anyone may do anything (development). */
export interface AuthSpec {
  /** Let clients in without credentials (default: false when users are configured, else true). */
  allowAnonymous?: boolean;
  /** What anonymous clients may do (default: everything when no users are configured, else nothing). */
  anonymousAcl?: AclSpec;
  users?: UserSpec[];
  certificates?: CertificateSpec[];
}

/** Who a connected client is and what it may do. */
export interface Principal {
  /** User name; "" for anonymous. */
  user: string;
  /** How it logged in. */
  via: "password" | "certificate" | "anonymous";
  acl: CompiledAcl;
}

/** A refusal to connect with its MQTT 3.1.1 CONNACK return code. */
export interface AuthRefusal {
  /** 4: bad user name or password; 5: not authorized. */
  code: 4 | 5;
  reason: string;
}

/**
 * True if MQTT topic `topic` matches filter `filter` (`+`, `#`; `$` topics not matched by a leading
 * wildcard). Levels are compared in place, without splitting either string: it runs for every
 * delivery of the gateway.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const fLen = filter.length;
  const tLen = topic.length;
  const dollar = topic.charCodeAt(0) === 36; // '$'
  let fi = 0; // start of the filter's current level
  let ti = 0; // start of the topic's current level; past tLen when the topic has no more levels
  for (;;) {
    let fe = filter.indexOf("/", fi);
    if (fe < 0) fe = fLen;
    const wildcard = fe - fi === 1 ? filter.charCodeAt(fi) : -1;
    if (wildcard === 35) return !(fi === 0 && dollar); // '#': the rest, the parent level included
    if (ti > tLen) return false;
    let te = topic.indexOf("/", ti);
    if (te < 0) te = tLen;
    if (wildcard === 43) {
      if (fi === 0 && dollar) return false; // '+'
    } else {
      if (fe - fi !== te - ti) return false;
      for (let k = 0; k < fe - fi; k++)
        if (filter.charCodeAt(fi + k) !== topic.charCodeAt(ti + k)) return false;
    }
    if (fe === fLen) return te === tLen;
    fi = fe + 1;
    ti = te + 1;
  }
}

/** True if every topic matched by `filter` is matched by `pattern` (both MQTT filters). */
export function filterWithin(pattern: string, filter: string): boolean {
  const p = pattern.split("/");
  const f = filter.split("/");
  const dollar = filter.startsWith("$");
  for (let i = 0; i < p.length; i++) {
    const pl = p[i]!;
    if (pl === "#") return !(i === 0 && dollar);
    const fl = f[i];
    if (fl === undefined) return false;
    if (pl === "+") {
      if (fl === "#" || (i === 0 && dollar)) return false;
      continue;
    }
    if (fl !== pl) return false;
  }
  return p.length === f.length;
}

/** The filter a subscription stands for: `$share/group/filter` → `filter`. */
export function unshare(filter: string): { group: string | undefined; filter: string } {
  if (!filter.startsWith("$share/")) return { group: undefined, filter };
  const rest = filter.slice("$share/".length);
  const i = rest.indexOf("/");
  if (i <= 0) return { group: undefined, filter };
  return { group: rest.slice(0, i), filter: rest.slice(i + 1) };
}

/** An ACL ready to check topics. */
export class CompiledAcl {
  readonly #publish: string[];
  readonly #subscribe: string[];
  readonly #denyPublish: string[];
  readonly #denySubscribe: string[];
  readonly #hasVars: boolean;
  readonly #cache = new Map<string, boolean>();

  constructor(spec: AclSpec) {
    this.#publish = [...(spec.publish ?? [])];
    this.#subscribe = [...(spec.subscribe ?? [])];
    this.#denyPublish = [...(spec.deny?.publish ?? [])];
    this.#denySubscribe = [...(spec.deny?.subscribe ?? [])];
    this.#hasVars = [...this.#publish, ...this.#subscribe, ...this.#denyPublish, ...this.#denySubscribe].some(
      (p) => p.includes("%"),
    );
  }

  /** May `user` (client `clientId`) publish to `topic`? */
  canPublish(topic: string, clientId: string, user: string): boolean {
    const check = (sub: (p: string) => string): boolean =>
      this.#publish.some((p) => topicMatches(sub(p), topic)) &&
      !this.#denyPublish.some((p) => topicMatches(sub(p), topic));
    if (!this.#hasVars) {
      let r = this.#cache.get(topic);
      if (r === undefined) {
        r = check((p) => p);
        if (this.#cache.size > 10000) this.#cache.clear();
        this.#cache.set(topic, r);
      }
      return r;
    }
    return check((p) => subst(p, clientId, user));
  }

  /**
   * May `user` (client `clientId`) subscribe to `filter` (a `$share/group/` prefix is looked
   * through)? It must lie within an allowed pattern and not within a denied one.
   */
  canSubscribe(filter: string, clientId: string, user: string): boolean {
    const f = unshare(filter).filter;
    return (
      this.#subscribe.some((p) => filterWithin(subst(p, clientId, user), f)) &&
      !this.#denySubscribe.some((p) => filterWithin(subst(p, clientId, user), f))
    );
  }

  /** True if this ACL has subscribe exceptions (then each delivery is checked with {@link canReceive}). */
  get hasSubscribeDenials(): boolean {
    return this.#denySubscribe.length > 0;
  }

  /** May a message on `topic` be delivered to this user's subscriptions (not on a denied topic)? */
  canReceive(topic: string, clientId: string, user: string): boolean {
    return !this.#denySubscribe.some((p) => topicMatches(subst(p, clientId, user), topic));
  }
}

function subst(p: string, clientId: string, user: string): string {
  if (!p.includes("%")) return p;
  // A client id or user name holding wildcards or separators cannot widen a pattern.
  const safe = (s: string): string => s.replace(/[+#/]/g, "_");
  return p.replaceAll("%c", safe(clientId)).replaceAll("%u", safe(user));
}

const ALL: AclSpec = { publish: ["#"], subscribe: ["#"] };

/** Checks credentials against the configured users and certificates. */
export class Authenticator {
  readonly #users = new Map<string, { spec: UserSpec; acl: CompiledAcl }>();
  readonly #certs = new Map<string, string>();
  readonly #anonymous: CompiledAcl | undefined;
  /** Successful checks, so a reconnecting device does not pay scrypt each time: key → hash. */
  readonly #verified = new Map<string, string>();

  /** @throws MyelinError ERR_BAD_CONFIG naming the bad entry */
  constructor(spec: AuthSpec | undefined) {
    const s = spec ?? {};
    for (const [i, u] of (s.users ?? []).entries()) {
      if (typeof u?.username !== "string" || u.username === "") {
        throw new MyelinError("ERR_BAD_CONFIG", `auth.users[${i}].username: a non-empty string is needed`);
      }
      if (this.#users.has(u.username)) {
        throw new MyelinError("ERR_BAD_CONFIG", `auth.users[${i}].username: ${u.username} is listed twice`);
      }
      if (u.password !== undefined && parsePasswordHash(u.password) === undefined) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `auth.users[${i}].password: not a password hash; make one with \`myelin gateway hash-password\` (never put the password itself in the config)`,
        );
      }
      checkAcl(u.acl, `auth.users[${i}].acl`);
      this.#users.set(u.username, { spec: u, acl: new CompiledAcl(u.acl ?? {}) });
    }
    for (const [i, c] of (s.certificates ?? []).entries()) {
      if (typeof c?.cn !== "string" || c.cn === "") {
        throw new MyelinError("ERR_BAD_CONFIG", `auth.certificates[${i}].cn: a non-empty string is needed`);
      }
      if (!this.#users.has(c.user)) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `auth.certificates[${i}].user: ${JSON.stringify(c.user)} is not in auth.users`,
        );
      }
      this.#certs.set(c.cn, c.user);
    }
    const noUsers = this.#users.size === 0;
    const allowAnonymous = s.allowAnonymous ?? noUsers;
    checkAcl(s.anonymousAcl, "auth.anonymousAcl");
    this.#anonymous = allowAnonymous ? new CompiledAcl(s.anonymousAcl ?? (noUsers ? ALL : {})) : undefined;
  }

  /** Number of configured users. */
  get userCount(): number {
    return this.#users.size;
  }

  /**
   * Decides who a connecting client is: by certificate CN (when the TLS peer certificate was
   * verified and its CN is mapped), else by user name and password, else anonymous if allowed.
   */
  async authenticate(c: {
    username: string | undefined;
    password: Buffer | undefined;
    certCN: string | undefined;
  }): Promise<Principal | AuthRefusal> {
    if (c.certCN !== undefined) {
      const user = this.#certs.get(c.certCN);
      if (user !== undefined) {
        if (c.username !== undefined && c.username !== "" && c.username !== user) {
          return { code: 5, reason: `certificate CN ${c.certCN} is user ${user}, not ${c.username}` };
        }
        return { user, via: "certificate", acl: this.#users.get(user)!.acl };
      }
    }
    if (c.username !== undefined && c.username !== "") {
      const u = this.#users.get(c.username);
      if (u === undefined || u.spec.password === undefined || c.password === undefined) {
        return { code: 4, reason: `bad user name or password for ${JSON.stringify(c.username)}` };
      }
      const hash = u.spec.password;
      const key = `${c.username}\u0000${c.password.toString("base64")}`;
      let ok = this.#verified.get(key) === hash;
      if (!ok) {
        ok = await verifyPassword(c.password, hash);
        if (ok) {
          if (this.#verified.size > 1000) this.#verified.clear();
          this.#verified.set(key, hash);
        }
      }
      if (!ok) return { code: 4, reason: `bad user name or password for ${JSON.stringify(c.username)}` };
      return { user: c.username, via: "password", acl: u.acl };
    }
    if (this.#anonymous !== undefined) return { user: "", via: "anonymous", acl: this.#anonymous };
    return {
      code: 5,
      reason:
        "anonymous clients are not allowed: log in with a user name and password or a client certificate",
    };
  }
}

function checkAcl(acl: AclSpec | undefined, where: string): void {
  if (acl === undefined) return;
  if (typeof acl !== "object" || acl === null)
    throw new MyelinError("ERR_BAD_CONFIG", `${where}: must be a map with publish and subscribe lists`);
  for (const k of Object.keys(acl)) {
    if (k !== "publish" && k !== "subscribe" && k !== "deny") {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}.${k}: unknown field; an ACL has publish, subscribe and deny`,
      );
    }
  }
  if (acl.deny !== undefined) {
    if (typeof acl.deny !== "object" || acl.deny === null || Array.isArray(acl.deny)) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}.deny: must be a map with publish and subscribe lists`,
      );
    }
    for (const k of Object.keys(acl.deny)) {
      if (k !== "publish" && k !== "subscribe") {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `${where}.deny.${k}: unknown field; deny has publish and subscribe`,
        );
      }
    }
    checkPatterns(acl.deny, `${where}.deny`);
  }
  checkPatterns(acl, where);
}

function checkPatterns(acl: { publish?: string[]; subscribe?: string[] }, where: string): void {
  for (const k of ["publish", "subscribe"] as const) {
    const list = acl[k];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.some((p) => typeof p !== "string" || p === "")) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}.${k}: must be a list of MQTT topic patterns, e.g. ["sensors/%c/#"]`,
      );
    }
    for (const p of list) {
      const levels = p.split("/");
      if (
        levels.some(
          (l, i) =>
            (l.includes("#") && (l !== "#" || i !== levels.length - 1)) || (l.includes("+") && l !== "+"),
        )
      ) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `${where}.${k}: pattern ${JSON.stringify(p)} is not a valid MQTT filter ('+' a whole level, '#' the last)`,
        );
      }
    }
  }
}
