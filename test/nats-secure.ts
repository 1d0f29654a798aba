/**
 * nats-server with logins and TLS, for the tests of the uplink's and the NATS bridge's
 * credentials: a server started from a config file the test writes (user/password, token, nkey,
 * operator/JWT mode with a memory resolver, TLS), the TLS certificates made with `openssl` in a
 * temporary directory, nkeys made with nats.js's `nkeys`, and operator, account and user JWTs
 * (with a `.creds` file) made with `@nats-io/jwt`. Everything is removed on dispose.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { nkeys } from "nats";
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from "@nats-io/jwt";
import { BrokerProcess, freePort, tempDir } from "./bridge-peers.js";

/** PEM files of a CA and a server certificate it signed (for 127.0.0.1 and localhost). */
export interface TestCerts {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCaFile: string;
  /** A client certificate and key the CA signed (for a server with `verify: true`). */
  clientCertFile: string;
  clientKeyFile: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** Makes a CA, a server certificate it signs, and another CA, in `dir` (openssl, EC P-256). */
export function makeCerts(dir: string): TestCerts {
  const ca = (name: string): void =>
    openssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"].concat(
        ["-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.pem`],
      ),
      dir,
    );
  ca("test-ca");
  ca("other-ca");
  // A key pair for `cn` and its certificate signed by test-ca, with the extensions in `ext`.
  const issue = (name: string, cn: string, ext: string): void => {
    openssl(
      ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${cn}`].concat([
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
      ]),
      dir,
    );
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    openssl(
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "test-ca.pem",
        "-CAkey",
        "test-ca.key",
        "-CAcreateserial",
      ].concat(["-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.pem`]),
      dir,
    );
  };
  issue("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost");
  issue("client", "site-client", "extendedKeyUsage=clientAuth");
  return {
    clientCertFile: join(dir, "client.pem"),
    clientKeyFile: join(dir, "client.key"),
    caFile: join(dir, "test-ca.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
    otherCaFile: join(dir, "other-ca.pem"),
  };
}

/** An nkey user: its seed (what the client keeps) and public key (what the server lists). */
export function makeNkeyUser(): { seed: string; publicKey: string } {
  const kp = nkeys.createUser();
  return { seed: new TextDecoder().decode(kp.getSeed()), publicKey: kp.getPublicKey() };
}

/**
 * Operator mode: an operator, an account with JetStream allowed, and a user of that account.
 * `serverConfig` is the part of nats-server's config that trusts them (memory resolver);
 * `creds` the user's `.creds` file, `strangerCreds` a user of an account the server does not know.
 */
export async function makeOperator(): Promise<{
  serverConfig: string;
  creds: string;
  strangerCreds: string;
}> {
  const op = createOperator();
  const sys = createAccount();
  const opJwt = await encodeOperator("myelin-test-op", op, { system_account: sys.getPublicKey() });
  const sysJwt = await encodeAccount("SYS", sys, {}, { signer: op });
  const acct = createAccount();
  const acctJwt = await encodeAccount(
    "SITES",
    acct,
    {
      limits: {
        mem_storage: -1,
        disk_storage: -1,
        streams: -1,
        consumer: -1,
        conn: -1,
        subs: -1,
        data: -1,
        payload: -1,
      },
    },
    { signer: op },
  );
  const user = createUser();
  const userJwt = await encodeUser("site", user, acct);
  const strangerAcct = createAccount();
  const stranger = createUser();
  const strangerJwt = await encodeUser("stranger", stranger, strangerAcct);
  return {
    serverConfig: [
      `operator: ${opJwt}`,
      "resolver: MEMORY",
      `system_account: ${sys.getPublicKey()}`,
      "resolver_preload: {",
      `  ${sys.getPublicKey()}: ${sysJwt}`,
      `  ${acct.getPublicKey()}: ${acctJwt}`,
      "}",
    ].join("\n"),
    creds: new TextDecoder().decode(fmtCreds(userJwt, user)),
    strangerCreds: new TextDecoder().decode(fmtCreds(strangerJwt, stranger)),
  };
}

/** A nats-server with JetStream started from `config` (the listen address and store are added). */
export class SecureNats {
  readonly #proc: BrokerProcess;
  readonly #tmp: { dir: string; [Symbol.dispose](): void };

  private constructor(
    readonly port: number,
    tmp: { dir: string; [Symbol.dispose](): void },
    config: string,
  ) {
    this.#tmp = tmp;
    const file = join(tmp.dir, "nats.conf");
    writeFileSync(
      file,
      [`listen: "127.0.0.1:${port}"`, `jetstream: { store_dir: "${join(tmp.dir, "js")}" }`, config, ""].join(
        "\n",
      ),
    );
    this.#proc = new BrokerProcess("nats-server", "/usr/sbin/nats-server", ["-c", file], /Server is ready/);
  }

  /** Starts nats-server on a free port with `config` (nats-server's config syntax). */
  static async start(config: string): Promise<SecureNats> {
    const n = new SecureNats(await freePort(), tempDir("wt-metrics-nats-"), config);
    await n.#proc.start();
    return n;
  }

  /** `nats://127.0.0.1:PORT`. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#proc.stop("SIGKILL");
    this.#tmp[Symbol.dispose]();
  }
}
