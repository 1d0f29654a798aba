/**
 * The address of the hub's metrics endpoint, as `--metrics`, `MYELIN_METRICS` or a config file
 * give it: `PORT` (loopback), `ADDR:PORT`, `[IPV6]:PORT`. No I/O.
 */
import { isIP } from "node:net";
import { MyelinError } from "../errors.js";

/** Where the metrics endpoint listens. */
export interface MetricsAddress {
  /** An IP address or a host name; `127.0.0.1` when only a port was given. */
  host: string;
  /** The TCP port (0: any free port). */
  port: number;
}

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses `PORT`, `ADDR:PORT` or `[IPV6]:PORT`.
 * @param where names the source in errors, e.g. `--metrics` or `MYELIN_METRICS`
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the source, what is wrong and the expected form
 */
export function parseMetricsAddress(text: string, where = "--metrics"): MetricsAddress {
  const s = text.trim();
  const fail = (why: string): MyelinError =>
    new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where} '${text}': ${why}; give ADDR:PORT, e.g. 127.0.0.1:9464 (loopback only), 0.0.0.0:9464 (every interface), [::1]:9464, or a port alone for loopback`,
    );
  let host = "127.0.0.1";
  let portText = s;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") throw fail("an IPv6 address is written [ADDR]:PORT");
    host = s.slice(1, end);
    if (isIP(host) !== 6) throw fail(`'${host}' is not an IPv6 address`);
    portText = s.slice(end + 2);
  } else if (s.includes(":")) {
    const i = s.lastIndexOf(":");
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (host === "") throw fail("the address before ':' is missing");
    if (host.includes(":")) throw fail("write an IPv6 address in brackets, [ADDR]:PORT");
    if (isIP(host) === 0 && !HOST_NAME.test(host)) throw fail(`'${host}' is not an IP address or host name`);
  }
  if (!/^\d{1,5}$/.test(portText)) {
    throw fail(portText === "" ? "the port is missing" : `'${portText}' is not a port number`);
  }
  const port = Number(portText);
  if (port > 65535) throw fail(`port ${port} is above 65535`);
  return { host, port };
}

/** True for an address only this host can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
