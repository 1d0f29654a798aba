/**
 * How a hub logs in to NATS — the uplink (uplink-config.ts) and the NATS bridge (bridge-config.ts)
 * alike: user and password, a token, an nkey seed file or a `.creds` file (operator/JWT mode), and
 * TLS with a CA bundle and a client certificate. `natsLoginOptions` turns the settings into
 * nats.js connection options, reading and checking the files; `explainNatsConnectError` turns
 * what nats.js or Node's TLS says when a connection fails into a sentence that names the setting
 * to fix.
 */
import { access, readFile } from "node:fs/promises";
import { constants } from "node:fs";
import type { ConnectionOptions } from "nats";
import { natsLib } from "./libs.js";
import { MyelinError } from "../errors.js";

/** The login settings shared by the uplink's `nats:` and a NATS bridge. */
export interface NatsLogin {
  user?: string;
  pass?: string;
  /** Environment variable holding the password (instead of `pass`). */
  passEnv?: string;
  token?: string;
  /** Environment variable holding the token (instead of `token`). */
  tokenEnv?: string;
  /** A `.creds` file (user JWT and nkey seed), as `nsc` writes it. */
  credsFile?: string;
  /** A file holding an nkey seed (`SU…`). */
  nkeySeedFile?: string;
  /** TLS: CA bundle, client certificate and key (PEM files). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

/** Names a setting as the user wrote it, e.g. `nats.token` (uplink) or `token of bridge plant`. */
export type NatsField = (key: string) => string;

/** TLS errors of Node that mean the server's certificate is not trusted by the configured CA. */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
]);

async function readSecret(path: string, field: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `cannot read ${field} ${path} (${what}): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** The public key of an nkey seed, or undefined when the text is not a seed. */
function publicKeyOfSeed(seed: string): string | undefined {
  try {
    return natsLib().nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch {
    return undefined;
  }
}

/**
 * The nats.js options that log in as `login` says: user/pass, token, an authenticator for an
 * nkey or creds file, and TLS. Reads the files and the environment variables now.
 * @throws MyelinError ERR_BAD_CONFIG for an environment variable that is not set, or a file that
 *   cannot be read or does not hold what it should, naming the setting
 */
export async function natsLoginOptions(
  login: NatsLogin,
  field: NatsField,
): Promise<Pick<ConnectionOptions, "user" | "pass" | "token" | "authenticator" | "tls">> {
  const opts: Pick<ConnectionOptions, "user" | "pass" | "token" | "authenticator" | "tls"> = {};
  if (login.user !== undefined) opts.user = login.user;
  const pass = login.pass ?? (login.passEnv !== undefined ? process.env[login.passEnv] : undefined);
  if (login.passEnv !== undefined && pass === undefined) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `environment variable ${login.passEnv} (${field("passEnv")}) is not set: set it to the password of user ${login.user ?? "?"}`,
    );
  }
  if (pass !== undefined) opts.pass = pass;
  const token = login.token ?? (login.tokenEnv !== undefined ? process.env[login.tokenEnv] : undefined);
  if (login.tokenEnv !== undefined && token === undefined) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `environment variable ${login.tokenEnv} (${field("tokenEnv")}) is not set: set it to the NATS token`,
    );
  }
  if (token !== undefined) opts.token = token;
  if (login.credsFile !== undefined) {
    const creds = await readSecret(login.credsFile, field("credsFile"), "a NATS .creds file");
    const text = new TextDecoder().decode(creds);
    if (!/-----BEGIN NATS USER JWT-----/.test(text) || !/-----BEGIN USER NKEY SEED-----/.test(text)) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${field("credsFile")} ${login.credsFile} is not a NATS .creds file (it needs a USER JWT and a USER NKEY SEED block, as \`nsc generate creds\` writes)`,
      );
    }
    opts.authenticator = natsLib().credsAuthenticator(creds);
  }
  if (login.nkeySeedFile !== undefined) {
    const raw = await readSecret(login.nkeySeedFile, field("nkeySeedFile"), "an nkey seed");
    const seed = new TextDecoder().decode(raw).trim();
    if (!seed.startsWith("SU") || publicKeyOfSeed(seed) === undefined) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${field("nkeySeedFile")} ${login.nkeySeedFile} does not hold a user nkey seed (one line starting with SU, as \`nk -gen user\` writes)`,
      );
    }
    opts.authenticator = natsLib().nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (login.tls !== undefined) {
    const tls: NonNullable<ConnectionOptions["tls"]> = {};
    for (const k of ["caFile", "certFile", "keyFile"] as const) {
      const path = login.tls[k];
      if (path === undefined) continue;
      try {
        await access(path, constants.R_OK);
      } catch (err) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `cannot read ${field(`tls.${k}`)} ${path}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      tls[k] = path;
    }
    opts.tls = tls;
  }
  return opts;
}

/** The way `login` logs in, in words, with the settings to fix when the server refuses it. */
function loginRefused(login: NatsLogin, field: NatsField): string {
  if (login.credsFile !== undefined) {
    return `refused the user of ${field("credsFile")} (${login.credsFile}): the server does not trust the account that signed its JWT, or the user is revoked or expired; give a .creds file of an account the server's operator trusts`;
  }
  if (login.nkeySeedFile !== undefined) {
    return `refused the nkey of ${field("nkeySeedFile")} (${login.nkeySeedFile}): the server lists no user with its public key; give the seed of a listed user, or add the key to the server's authorization`;
  }
  if (login.token !== undefined || login.tokenEnv !== undefined) {
    const where =
      login.tokenEnv !== undefined ? `${field("tokenEnv")} (variable ${login.tokenEnv})` : field("token");
    return `refused the token of ${where}: fix ${where}`;
  }
  if (login.user !== undefined) {
    const pw =
      login.passEnv !== undefined ? `${field("passEnv")} (variable ${login.passEnv})` : field("pass");
    return `refused user '${login.user}' with the password of ${pw}: fix ${field("user")} or ${pw}`;
  }
  return `requires a login: give ${field("user")} and ${field("pass")}, ${field("token")}, ${field("nkeySeedFile")} or ${field("credsFile")}`;
}

/**
 * What a failed connection to `server` means, in a sentence that names the setting to fix: a
 * refused login, an untrusted or misnamed TLS certificate, TLS asked of a server without it.
 * Other errors keep nats.js's words.
 */
export function explainNatsConnectError(
  err: unknown,
  login: NatsLogin,
  field: NatsField,
  server: string,
): string {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  const msg = typeof e.message === "string" ? e.message : String(err);
  switch (code) {
    case "AUTHORIZATION_VIOLATION":
    case "AUTHENTICATION_EXPIRED":
    case "ACCOUNT_EXPIRED":
    case "AUTHENTICATION_TIMEOUT":
      return `the NATS server ${server} ${loginRefused(login, field)} (${msg})`;
    case "BAD_CREDS":
      return `${field("credsFile")} ${login.credsFile ?? ""} is not a NATS .creds file (${msg})`;
    case "SERVER_OPT_NA":
      if (/tls/i.test(msg)) {
        return `the NATS server ${server} does not offer TLS, but ${field("tls")} is set: enable TLS on the server, or remove ${field("tls")}`;
      }
      break;
    case "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE":
    case "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED":
    case "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA":
    case "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN":
      return login.tls?.certFile !== undefined
        ? `the NATS server ${server} refused this client's TLS certificate, ${field("tls.certFile")} (${login.tls.certFile}): it is not signed by a CA the server trusts (${code}); give a certificate its CA signed`
        : `the NATS server ${server} wants a TLS client certificate (${code}): set ${field("tls.certFile")} and ${field("tls.keyFile")} to a certificate its CA signed and its key`;
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `the TLS certificate of ${server} does not name the host it was reached at (${msg}): connect to a name or address the certificate lists`;
    case "CERT_HAS_EXPIRED":
    case "CERT_NOT_YET_VALID":
      return `the TLS certificate of ${server} is not valid now (${msg}): renew the server's certificate, or check this host's clock`;
  }
  if (UNTRUSTED.has(code)) {
    const ca = login.tls?.caFile;
    return ca !== undefined
      ? `the TLS certificate of ${server} is not signed by the CA of ${field("tls.caFile")} (${ca}): ${msg}; set ${field("tls.caFile")} to the CA that signed the server's certificate`
      : `the TLS certificate of ${server} is not trusted by this host (${msg}): set ${field("tls.caFile")} to the CA that signed it`;
  }
  return msg;
}
