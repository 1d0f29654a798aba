/**
 * How a node (and the hub) secure their links to other hosts. Every `tcp://` link uses CURVE with
 * the host's key pair (see key-store.ts for where it lives): a listener admits only the host's own
 * key and the trusted ones, a connection needs the listener host's public key. Plain text on tcp
 * only when asked for explicitly (`insecure`: the hub's `--insecure`, `MYELIN_INSECURE=1` for
 * nodes). `ipc://` and `inproc://` stay on the host and need no keys.
 *
 * Trust is live: the trust lists are watched (trust-watch.ts) while a CURVE listener is open, so a
 * key revoked with `myelin keys revoke` (or removed from a site file) is cut from the connections
 * already up, within about a second, without restarting anything.
 */
import { MyelinError } from "../errors.js";
import type { CurveKeyPair } from "../transport/curve-key.js";
import { KeyStore } from "../transport/key-store.js";
import { TrustWatch, type TrustChange } from "../transport/trust-watch.js";
import { schemeOf, type CurveRefusal, type TransportSecurity } from "../transport/transport.js";

/** Options of a LinkSecurity. */
export interface LinkSecurityOptions {
  /** Plain text on tcp (no keys needed, peers are anonymous). */
  insecure: boolean;
  /** The key directory (default: see key-store.ts). */
  keysDir?: string | undefined;
  /** Told of each handshake a CURVE listener refused. */
  onRefused?: (r: CurveRefusal) => void;
}

/** True when `MYELIN_INSECURE` asks for plain text on tcp (`1`, `true`, `yes`). */
export function insecureFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env["MYELIN_INSECURE"] ?? "");
}

/** The security of one host's tcp links; keys are read when first needed. */
export class LinkSecurity {
  readonly insecure: boolean;
  readonly store: KeyStore;
  readonly #onRefused: ((r: CurveRefusal) => void) | undefined;
  #keys: CurveKeyPair | undefined;
  #watch: TrustWatch | undefined;

  constructor(opts: LinkSecurityOptions) {
    this.insecure = opts.insecure;
    this.store = new KeyStore(opts.keysDir);
    this.#onRefused = opts.onRefused;
  }

  /**
   * Calls `fn` when keys are revoked or trusted while this process runs (see trust-watch.ts).
   * @returns the unsubscribe function
   */
  onTrustChange(fn: (c: TrustChange) => void): () => void {
    this.#watch ??= new TrustWatch(this.store);
    return this.#watch.subscribe(fn);
  }

  /** Reads the trust lists again now (e.g. on SIGHUP), telling subscribers of a change. */
  checkTrust(): void {
    this.#watch?.check();
  }

  /** True when links to or from `endpoint` use CURVE. */
  usesCurve(endpoint: string): boolean {
    return !this.insecure && schemeOf(endpoint) === "tcp";
  }

  /**
   * This host's key pair.
   * @throws MyelinError naming `endpoint` and the fix (`myelin keys init`, or insecure) when there is none
   */
  hostKeys(endpoint: string): CurveKeyPair {
    if (this.#keys === undefined) {
      try {
        this.#keys = this.store.hostKeys();
      } catch (err) {
        const e = err as MyelinError;
        throw new MyelinError(
          e.code === "ERR_BAD_CONFIG" ? "ERR_BAD_CONFIG" : "ERR_INVALID_ARGUMENT",
          `${endpoint} is a tcp link, which needs CURVE keys: ${e.message}; plain text only with --insecure (hub) or MYELIN_INSECURE=1 (nodes)`,
          { cause: err },
        );
      }
    }
    return this.#keys;
  }

  /** The public key to advertise for a listener on `endpoint`, if it uses CURVE. */
  advertisedKey(endpoint: string): string | undefined {
    return this.usesCurve(endpoint) ? this.hostKeys(endpoint).publicKey : undefined;
  }

  /**
   * The security of a listener on `endpoint`: CURVE admitting this host's key and the trusted ones
   * on tcp, nothing otherwise.
   * @throws MyelinError when CURVE is needed and the host has no keys
   */
  listen(endpoint: string): TransportSecurity | undefined {
    if (!this.usesCurve(endpoint)) return undefined;
    const keys = this.hostKeys(endpoint);
    const store = this.store;
    return {
      mode: "curve",
      ...keys,
      trusted: (k) => k === keys.publicKey || store.isTrusted(k),
      watchTrust: (onChange) => this.onTrustChange(onChange),
      ...(this.#onRefused !== undefined ? { onRefused: this.#onRefused } : {}),
    };
  }

  /**
   * The security of a connection to `endpoint` whose listener has public key `serverKey`.
   * @param what names where the key was expected, for the error (e.g. `MYELIN_HUB_KEY`)
   * @throws MyelinError ERR_INVALID_ARGUMENT when CURVE is needed and the key is unknown or the
   *   host has no keys
   */
  connect(endpoint: string, serverKey: string | undefined, what: string): TransportSecurity | undefined {
    if (!this.usesCurve(endpoint)) return undefined;
    if (serverKey === undefined || serverKey === "") {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${endpoint} is a tcp link, which needs CURVE and the listener's public key: ${what}`,
      );
    }
    return { mode: "curve", ...this.hostKeys(endpoint), serverKey };
  }
}
