/**
 * ZeroMQ's authentication hook (ZAP, RFC 27) for this process: a REP socket bound on
 * `inproc://zeromq.zap.01` in the default context, which libzmq asks about every CURVE handshake
 * of every socket of that context. Each CURVE listener registers a ZAP domain of its own with the
 * check of its client keys; an unknown domain or mechanism is refused (fail closed). The socket
 * exists while at least one domain is registered, so it never keeps a process alive.
 */
import { Reply } from "zeromq";
import { MyelinError } from "../../errors.js";
import { processShared } from "../../process-shared.js";
import { z85Encode } from "../z85.js";

/** The ZAP endpoint libzmq asks (fixed by RFC 27). */
const ZAP_ENDPOINT = "inproc://zeromq.zap.01";

/** How often, and how far apart, binding the ZAP endpoint is retried while a closed socket frees it. */
const REBIND_ATTEMPTS = 100;
const REBIND_WAIT_MS = 20;

/** A domain's verdict on one handshake. */
export type ZapCheck = (address: string, publicKey: string) => { ok: true } | { ok: false; reason: string };

/** The ZAP responder's state: one per process, whichever copy of Myelin opens it. */
interface ZapState {
  /** The check of each registered domain. */
  readonly domains: Map<string, ZapCheck>;
  socket: Reply | undefined;
  loop: Promise<void> | undefined;
  nextDomain: number;
  /** Serializes the socket's opening and closing. */
  chain: Promise<void>;
}

/**
 * One per process (src/process-shared.ts): libzmq lets one socket bind the ZAP endpoint of the
 * one ZeroMQ context, so the bundle and the CLI's modules share the responder and its domains.
 */
const zap = processShared<ZapState>("transport.zap", () => ({
  domains: new Map(),
  socket: undefined,
  loop: undefined,
  nextDomain: 1,
  chain: Promise.resolve(),
}));
const domains = zap.domains;

async function serve(sock: Reply): Promise<void> {
  for (;;) {
    let req: Buffer[];
    try {
      req = await sock.receive();
    } catch {
      return; // closed
    }
    const [version, requestId, domain, address, , mechanism, key] = req;
    let status = "400";
    let text = "refused";
    const check = domain === undefined ? undefined : domains.get(domain.toString());
    if (version?.toString() !== "1.0") {
      text = "unsupported ZAP version";
    } else if (check === undefined) {
      text = "unknown ZAP domain";
    } else if (mechanism?.toString() !== "CURVE" || key === undefined || key.length !== 32) {
      text = "only CURVE is accepted";
    } else {
      const verdict = check(address?.toString() ?? "", z85Encode(key));
      if (verdict.ok) {
        status = "200";
        text = "OK";
      } else {
        text = verdict.reason;
      }
    }
    try {
      await sock.send(["1.0", requestId ?? "", status, text, "", ""]);
    } catch {
      return; // closed
    }
  }
}

/**
 * Registers a ZAP domain whose handshakes `check` decides; opens the ZAP socket if needed.
 * @returns the domain (set it as the listener's `zapDomain`) and its release
 * @throws MyelinError ERR_INVALID_ARGUMENT when another ZAP handler holds inproc://zeromq.zap.01
 */
export async function registerZapDomain(
  check: ZapCheck,
): Promise<{ domain: string; release: () => Promise<void> }> {
  const domain = `myelin-${process.pid}-${zap.nextDomain++}`;
  const opened = zap.chain.then(async () => {
    domains.set(domain, check);
    if (zap.socket !== undefined) return;
    let sock = new Reply({ linger: 0 });
    try {
      // A ZAP socket closed a moment ago frees its inproc name only once libzmq's reaper thread
      // has destroyed it: a listener opened right after the last one closed waits for that.
      for (let attempt = 0; ; attempt++) {
        try {
          await sock.bind(ZAP_ENDPOINT);
          break;
        } catch (err) {
          if (attempt >= REBIND_ATTEMPTS || !/in use/i.test((err as Error).message)) throw err;
          sock.close();
          await new Promise((r) => setTimeout(r, REBIND_WAIT_MS));
          sock = new Reply({ linger: 0 });
        }
      }
    } catch (err) {
      sock.close();
      domains.delete(domain);
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `cannot start the CURVE authentication handler on ${ZAP_ENDPOINT}: ${(err as Error).message}; another ZAP handler runs in this process`,
        { cause: err },
      );
    }
    zap.socket = sock;
    zap.loop = serve(sock);
  });
  zap.chain = opened.catch(() => {});
  await opened;
  let released = false;
  const release = (): Promise<void> => {
    if (released) return zap.chain;
    released = true;
    zap.chain = zap.chain.then(async () => {
      domains.delete(domain);
      if (domains.size > 0 || zap.socket === undefined) return;
      const sock = zap.socket;
      zap.socket = undefined;
      // Closed, not unbound first: unbinding an inproc endpoint tears down the pipes other
      // sockets' sessions hold to it, which aborts libzmq 4.3.5 (pipe.cpp:355) mid-handshake.
      sock.close();
      await zap.loop;
      zap.loop = undefined;
    });
    return zap.chain;
  };
  return { domain, release };
}
