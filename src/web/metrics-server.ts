/**
 * The HTTP server of the hub's metrics: `GET /metrics` in the Prometheus text format 0.0.4, or
 * OpenMetrics 1.0 when the scraper's `Accept` asks for `application/openmetrics-text` (Prometheus
 * does when it is set to). Everything else is 404 (405 for a method other than GET and HEAD).
 * Plain HTTP without authentication: it listens on loopback unless told otherwise.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { MyelinError } from "../errors.js";
import type { HubMetrics, MetricsFormat } from "./metrics-registry.js";
import type { MetricsAddress } from "./metrics-address.js";

/** The format a scraper's `Accept` header asks for. */
export function metricsFormatFor(accept: string | undefined): MetricsFormat {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept) ? "openmetrics" : "prometheus";
}

/** A running metrics endpoint. Start with {@link MetricsServer.start}; stop with `close()`. */
export class MetricsServer {
  readonly #http: Server;
  readonly #metrics: HubMetrics;
  readonly #log: (line: string) => void;
  #port = 0;

  private constructor(http: Server, metrics: HubMetrics, log: (line: string) => void) {
    this.#http = http;
    this.#metrics = metrics;
    this.#log = log;
  }

  /**
   * Listens on `address` and serves `metrics`.
   * @throws MyelinError ERR_INVALID_ARGUMENT when the address cannot be listened on (the port is in
   *   use, the address is not this host's), naming the address and the fix
   */
  static async start(
    address: MetricsAddress,
    metrics: HubMetrics,
    opts: { log?: (line: string) => void; where?: string } = {},
  ): Promise<MetricsServer> {
    const http = createServer();
    const server = new MetricsServer(http, metrics, opts.log ?? (() => {}));
    http.on("request", (req, res) => server.#serve(req, res));
    // A scraper keeps its connection open between scrapes; don't let a silent one hold a socket for ever.
    http.keepAliveTimeout = 65_000;
    http.requestTimeout = 30_000;
    const where = opts.where ?? "--metrics";
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const hint =
          err.code === "EADDRINUSE"
            ? `port ${address.port} is in use (another hub or exporter?); pick a free port with ${where} ADDR:PORT`
            : err.code === "EADDRNOTAVAIL"
              ? `${address.host} is not an address of this host; give one of its addresses, 127.0.0.1 or 0.0.0.0`
              : err.code === "EACCES"
                ? `ports below 1024 need privileges; pick a port such as 9464`
                : err.code === "ENOTFOUND" || err.code === "EAI_AGAIN"
                  ? `host name ${address.host} does not resolve; give an IP address`
                  : err.message;
        reject(
          new MyelinError(
            "ERR_INVALID_ARGUMENT",
            `the metrics endpoint cannot listen on ${fmtHostPort(address.host, address.port)}: ${hint}`,
            { cause: err },
          ),
        );
      };
      http.once("error", onError);
      http.listen(address.port, address.host, () => {
        http.off("error", onError);
        const a = http.address();
        server.#port = typeof a === "object" && a !== null ? a.port : address.port;
        resolve();
      });
    });
    http.on("error", (err) => server.#log(`metrics: ${err.message}`));
    return server;
  }

  /** The port it listens on (the one the system chose for port 0). */
  get port(): number {
    return this.#port;
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res
        .writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" })
        .end("only GET /metrics is served\n");
      return;
    }
    if (path === "/") {
      res
        .writeHead(200, { "content-type": "text/plain; charset=utf-8" })
        .end(
          "Myelin hub metrics: GET /metrics (Prometheus text 0.0.4, or OpenMetrics with Accept: application/openmetrics-text)\n",
        );
      return;
    }
    if (path !== "/metrics") {
      res
        .writeHead(404, { "content-type": "text/plain; charset=utf-8" })
        .end("not found: the metrics are at /metrics\n");
      return;
    }
    this.#metrics.scrape(metricsFormatFor(req.headers.accept)).then(
      ({ contentType, body }) => {
        res.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        this.#log(`metrics: a scrape failed: ${(err as Error).message}`);
        res
          .writeHead(500, { "content-type": "text/plain; charset=utf-8" })
          .end(`scrape failed: ${(err as Error).message}\n`);
      },
    );
  }

  /** Stops listening and closes the scrapers' connections. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#http.close(() => resolve());
      this.#http.closeAllConnections();
    });
  }
}

/** `host:port`, with brackets around an IPv6 address. */
export function fmtHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
