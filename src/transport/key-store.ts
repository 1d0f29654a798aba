/**
 * A host's CURVE keys and the keys it trusts, on disk.
 *
 * The key directory is `$MYELIN_KEYS_DIR`, else `$MYELIN_CONFIG_DIR/keys`, else
 * `$XDG_CONFIG_HOME/myelin/keys`, else `~/.config/myelin/keys`; it is created 0700 and its files
 * 0600:
 * - `host.key`: this host's key pair (`public: …` and `secret: …`, Z85);
 * - `trusted.yaml`: the allow-list, a YAML list of `{ name, key }` (`myelin keys trust/revoke`);
 * - `site.yaml` (optional, same format): a site-wide list one hands to every host; also read
 *   from `$MYELIN_SITE_KEYS` when set.
 * A key in either list is trusted. The lists are read again whenever a file changes, so a key
 * trusted or revoked while a hub runs counts from its next handshake; trust-watch.ts tells the
 * running listeners and the hub, which cut a revoked key's connections already up.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { yaml } from "../codec/yaml.js";
import { MyelinError } from "../errors.js";
import { checkCurveKeyPair, generateCurveKeyPair, parseCurveKey, type CurveKeyPair } from "./curve-key.js";

/** One trusted key with the name a person gave it. */
export interface TrustedKey {
  readonly name: string;
  readonly key: string;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** The key directory from the environment (see the module's doc). */
export function keysDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env["MYELIN_KEYS_DIR"];
  if (explicit !== undefined && explicit !== "") return explicit;
  const config = env["MYELIN_CONFIG_DIR"];
  if (config !== undefined && config !== "") return join(config, "keys");
  const xdg = env["XDG_CONFIG_HOME"];
  if (xdg !== undefined && xdg !== "") return join(xdg, "myelin", "keys");
  return join(homedir(), ".config", "myelin", "keys");
}

function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Parses a list of `{ name, key }` (trusted.yaml, a site file), checking every entry. */
function parseTrustList(text: string, file: string): TrustedKey[] {
  let doc: unknown;
  try {
    doc = yaml().parse(text);
  } catch (err) {
    throw new MyelinError("ERR_BAD_CONFIG", `${file}: not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (doc === null || doc === undefined) return [];
  if (!Array.isArray(doc)) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${file}: must be a YAML list of entries '- name: NAME' 'key: KEY'`,
    );
  }
  return doc.map((e: unknown, i) => {
    const where = `${file}: entry ${i + 1}`;
    if (typeof e !== "object" || e === null || Array.isArray(e)) {
      throw new MyelinError("ERR_BAD_CONFIG", `${where}: must be a map with name and key`);
    }
    const { name, key, ...rest } = e as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}: unknown field ${extra[0]}; the fields are name and key`,
      );
    }
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}: name must be 1-64 letters, digits, '_', '.', '-' (got ${JSON.stringify(name)})`,
      );
    }
    try {
      parseCurveKey(key as string, `${where} (${name}) key`);
    } catch (err) {
      // Z85 uses characters YAML reads as syntax (!, &, *, [, {, #, :): an unquoted key may not
      // even reach us as the text written.
      const hint =
        typeof key === "string" && key.length === 40 ? "" : `; write the key in double quotes: key: "KEY"`;
      throw new MyelinError("ERR_BAD_CONFIG", `${(err as Error).message}${hint}`, { cause: err });
    }
    return { name, key: key as string };
  });
}

/** A host's key directory. Methods read the files each time (they are small); see `isTrusted`. */
export class KeyStore {
  /** The directory. */
  readonly dir: string;
  readonly #siteFile: string | undefined;
  #cache: { stamp: string; keys: Map<string, string> } | undefined;

  /** @param dir the key directory (default {@link keysDir}); `siteFile` defaults to `$MYELIN_SITE_KEYS` */
  constructor(
    dir: string = keysDir(),
    siteFile: string | undefined = process.env["MYELIN_SITE_KEYS"] || undefined,
  ) {
    this.dir = dir;
    this.#siteFile = siteFile;
  }

  get #keyFile(): string {
    return join(this.dir, "host.key");
  }

  get #trustFile(): string {
    return join(this.dir, "trusted.yaml");
  }

  #ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if ((statSync(this.dir).mode & 0o077) !== 0) chmodSync(this.dir, 0o700);
  }

  /** True when this host has a key pair. */
  hasHostKeys(): boolean {
    return existsSync(this.#keyFile);
  }

  /**
   * Creates this host's key pair.
   * @throws MyelinError ERR_INVALID_ARGUMENT when one exists and `force` is not set (replacing it
   *   means every peer must trust the new public key)
   */
  init(force = false): CurveKeyPair {
    this.#ensureDir();
    if (this.hasHostKeys() && !force) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${this.#keyFile} already holds this host's keys; 'myelin keys show' prints the public key (--force replaces the pair, and every peer must then trust the new key)`,
      );
    }
    const pair = generateCurveKeyPair();
    writePrivate(this.#keyFile, `public: ${pair.publicKey}\nsecret: ${pair.secretKey}\n`);
    return pair;
  }

  /**
   * This host's key pair.
   * @throws MyelinError ERR_INVALID_ARGUMENT naming the fix when there is none, ERR_BAD_CONFIG
   *   when the file is readable by others or malformed
   */
  hostKeys(): CurveKeyPair {
    const file = this.#keyFile;
    if (!this.hasHostKeys()) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `this host has no CURVE keys (${file} does not exist): create them with 'myelin keys init' (MYELIN_KEYS_DIR chooses the directory)`,
      );
    }
    if ((statSync(file).mode & 0o077) !== 0) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${file} can be read by other users, so its secret key may be known: run 'chmod 600 ${file}', or replace the pair with 'myelin keys init --force'`,
      );
    }
    const text = readFileSync(file, "utf8");
    const pub = /^public:\s*(\S+)\s*$/m.exec(text)?.[1];
    const sec = /^secret:\s*(\S+)\s*$/m.exec(text)?.[1];
    if (pub === undefined || sec === undefined) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${file}: expected the lines 'public: KEY' and 'secret: KEY'; replace it with 'myelin keys init --force'`,
      );
    }
    const pair = { publicKey: pub, secretKey: sec };
    try {
      checkCurveKeyPair(pair, file);
    } catch (err) {
      throw new MyelinError("ERR_BAD_CONFIG", (err as Error).message, { cause: err });
    }
    return pair;
  }

  /** The allow-list kept by `trust`/`revoke` (not the site file). @throws MyelinError ERR_BAD_CONFIG */
  trustedList(): TrustedKey[] {
    const f = this.#trustFile;
    return existsSync(f) ? parseTrustList(readFileSync(f, "utf8"), f) : [];
  }

  /** The site files read, existing or not: `<dir>/site.yaml` and `$MYELIN_SITE_KEYS`. */
  get siteFiles(): string[] {
    return [join(this.dir, "site.yaml"), ...(this.#siteFile !== undefined ? [this.#siteFile] : [])];
  }

  /** Every trusted key: the allow-list and the site files, with where each comes from. */
  allTrusted(): (TrustedKey & { source: string })[] {
    const out: (TrustedKey & { source: string })[] = this.trustedList().map((t) => ({
      ...t,
      source: this.#trustFile,
    }));
    for (const f of this.siteFiles) {
      if (existsSync(f))
        for (const t of parseTrustList(readFileSync(f, "utf8"), f)) out.push({ ...t, source: f });
    }
    return out;
  }

  /**
   * Adds (or renames) a trusted key.
   * @throws MyelinError ERR_INVALID_ARGUMENT for a bad name or key, or a name that holds another key
   */
  trust(name: string, key: string): void {
    if (!NAME.test(name)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `name ${JSON.stringify(name)} is not valid: use 1-64 letters, digits, '_', '.', '-'`,
      );
    }
    parseCurveKey(key, `the key of ${name}`);
    const list = this.trustedList();
    const same = list.find((t) => t.name === name);
    if (same !== undefined && same.key !== key) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${name} already names key ${same.key}; revoke it first ('myelin keys revoke ${name}') or choose another name`,
      );
    }
    const next = [...list.filter((t) => t.key !== key), { name, key }];
    this.#ensureDir();
    writePrivate(this.#trustFile, yaml().stringify(next.map((t) => ({ name: t.name, key: t.key }))));
    this.#cache = undefined;
  }

  /**
   * Removes a trusted key by name.
   * @throws MyelinError ERR_INVALID_ARGUMENT when no key has that name in the allow-list
   */
  revoke(name: string): TrustedKey {
    const list = this.trustedList();
    const found = list.find((t) => t.name === name);
    if (found === undefined) {
      const names = list.map((t) => t.name).join(", ");
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `no trusted key is named ${JSON.stringify(name)}${names === "" ? " (the allow-list is empty)" : `; trusted: ${names}`}${this.siteFiles.some((f) => existsSync(f)) ? " (keys of a site file are revoked by editing that file)" : ""}`,
      );
    }
    writePrivate(this.#trustFile, yaml().stringify(list.filter((t) => t.name !== name)));
    this.#cache = undefined;
    return found;
  }

  /**
   * The key a name stands for in the trust lists, or the text itself when it is a key.
   * @throws MyelinError ERR_INVALID_ARGUMENT when it is neither
   */
  resolve(nameOrKey: string, what: string): string {
    const t = this.allTrusted().find((k) => k.name === nameOrKey);
    if (t !== undefined) return t.key;
    try {
      parseCurveKey(nameOrKey, what);
      return nameOrKey;
    } catch {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${what}: ${JSON.stringify(nameOrKey)} is neither a trusted key's name ('myelin keys list') nor a 40-character CURVE key`,
      );
    }
  }

  /**
   * True when `key` is in the allow-list or a site file. Re-reads the files when one changed; a
   * list that cannot be read trusts no one (and the error is thrown to the caller).
   */
  isTrusted(key: string): boolean {
    return this.#trusted().has(key);
  }

  /**
   * Every trusted key (allow-list and site files), re-read when a file changed.
   * @throws MyelinError ERR_BAD_CONFIG when a list cannot be read
   */
  trustedKeys(): ReadonlySet<string> {
    return new Set(this.#trusted().keys());
  }

  /** The trust files' sizes, times and inodes: changes when one of them does. */
  trustStamp(): string {
    return [this.#trustFile, ...this.siteFiles]
      .map((f) => {
        try {
          const s = statSync(f);
          return `${s.mtimeMs}:${s.size}:${s.ino}`;
        } catch {
          return "-";
        }
      })
      .join("|");
  }

  #trusted(): Map<string, string> {
    const stamp = this.trustStamp();
    if (this.#cache?.stamp !== stamp) {
      this.#cache = undefined;
      this.#cache = { stamp, keys: new Map(this.allTrusted().map((t) => [t.key, t.name])) };
    }
    return this.#cache.keys;
  }

  /** The name a trusted key has, if any (for logs). */
  nameOf(key: string): string | undefined {
    return this.isTrusted(key) ? this.#cache?.keys.get(key) : undefined;
  }
}
