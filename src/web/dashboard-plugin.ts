/**
 * The dashboard as a hub plugin: `myelin hub --http-port 8080` serves it. It listens on loopback
 * unless told otherwise, always wants its token, and serves HTTPS when given a certificate. The
 * address with the token goes to the hub's log and to `<runtime dir>/dashboard.json` (mode 0600),
 * where `myelin dashboard` reads it.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import type { HubPlugin } from "../hub/index.js";
import { ensureRuntimeDir, runtimeDir as resolveRuntimeDir } from "../node/config.js";
import { newToken } from "./auth.js";
import { DashboardServer } from "./dashboard-server.js";
import { LiveFeed } from "./live-feed.js";

/** Options of {@link dashboardPlugin}. */
export interface DashboardOptions {
  /** TCP port (0: any free port). */
  port: number;
  /** Address to listen on (default 127.0.0.1; anything else should come with `tls`). */
  host?: string;
  /** The access token (default: a new random one each start; at least 16 characters). */
  token?: string;
  /** Paths of a PEM certificate and its key: serve HTTPS. */
  tls?: { certFile: string; keyFile: string };
  /** Folder of the built page (default: dist/web of this package). */
  staticDir?: string;
}

/** What `<runtime dir>/dashboard.json` holds. */
export interface DashboardFile {
  url: string;
  token: string;
  pid: number;
}

/** The file where a running dashboard leaves its address and token. */
export function dashboardFile(runtimeDir: string | undefined): string {
  return join(resolveRuntimeDir(runtimeDir), "dashboard.json");
}

/** True for an address only this host can reach. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/**
 * The dashboard plugin.
 * @throws MyelinError ERR_INVALID_ARGUMENT (at start) for a short token, unreadable TLS files or a busy port
 */
export function dashboardPlugin(opts: DashboardOptions): HubPlugin {
  return {
    name: "dashboard",
    async start(ctx) {
      const host = opts.host ?? "127.0.0.1";
      const token = opts.token ?? newToken();
      if (token.length < 16) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          "dashboard: the token must have at least 16 characters",
        );
      }
      let tls: { cert: Buffer; key: Buffer } | undefined;
      if (opts.tls !== undefined) {
        try {
          tls = { cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) };
        } catch (err) {
          throw new MyelinError(
            "ERR_INVALID_ARGUMENT",
            `dashboard: cannot read the TLS certificate or key: ${(err as Error).message}`,
            { cause: err },
          );
        }
      }
      const log = (line: string): void => ctx.log(line);
      const feed = await LiveFeed.start({ runtimeDir: ctx.runtimeDir, log });
      let server: DashboardServer;
      try {
        server = await DashboardServer.start({
          feed,
          token,
          host,
          port: opts.port,
          tls,
          ...(opts.staticDir !== undefined ? { staticDir: opts.staticDir } : {}),
          log,
        });
      } catch (err) {
        await feed.close();
        throw err;
      }
      if (!isLoopback(host) && tls === undefined) {
        ctx.log(
          `dashboard: listening on ${host} without TLS: the token crosses the network in clear; give a certificate`,
        );
      }
      const file = dashboardFile(ctx.runtimeDir);
      ensureRuntimeDir(resolveRuntimeDir(ctx.runtimeDir));
      const saved: DashboardFile = { url: server.urlWithToken, token, pid: process.pid };
      writeFileSync(file, JSON.stringify(saved) + "\n", { mode: 0o600 });
      ctx.log(`dashboard at ${server.urlWithToken}`);
      return {
        status: () => ({ url: server.url, pages: server.pages }),
        async close() {
          try {
            const now = JSON.parse(readFileSync(file, "utf8")) as DashboardFile;
            if (now.pid === process.pid) rmSync(file, { force: true });
          } catch {
            // gone already
          }
          await server.close();
          await feed.close();
        },
      };
    },
  };
}
