/**
 * The dashboard's HTTP(S) server: the built page (static files from `dist/web`), the JSON actions
 * under `/api/`, and the live stream, one WebSocket per page at `/api/live`. Every request needs the
 * token (see auth.ts); a wrong or missing one gets 401 with how to get the right one.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import type { WebSocket, WebSocketServer } from "ws";
import { wsLib } from "../gateway/libs.js";
import { MyelinError, type ErrorCode } from "../errors.js";
import { Actions } from "./actions.js";
import { requestToken, tokenCookie, tokenMatches } from "./auth.js";
import type { FeedClient, LiveFeed } from "./live-feed.js";

/** Where `npm run build` puts the page. */
export const DEFAULT_STATIC_DIR = fileURLToPath(new URL("../../web/", import.meta.url));

/** Options of {@link DashboardServer.start}. */
export interface DashboardServerOptions {
  feed: LiveFeed;
  token: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (0: any free one). */
  port: number;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** Folder of the built page (default {@link DEFAULT_STATIC_DIR}). */
  staticDir?: string;
  log?: (line: string) => void;
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
};

/** HTTP status of an error code. */
function statusOf(code: ErrorCode | undefined): number {
  switch (code) {
    case "ERR_NOT_AUTHORIZED":
      return 401;
    case "ERR_UNKNOWN_TYPE":
    case "ERR_UNKNOWN_TOPIC":
    case "ERR_UNKNOWN_NODE":
      return 404;
    case "ERR_NO_SERVER":
    case "ERR_UNAVAILABLE":
    case "ERR_HUB_UNREACHABLE":
      return 503;
    case "ERR_TIMEOUT":
      return 504;
    case "ERR_SERVICE_FAILED":
    case "ERR_PROCESS_FAILED":
      return 502;
    default:
      return 400;
  }
}

/** Bytes a page may have waiting before figures and pictures are skipped for it. */
const MAX_BUFFERED = 4 * 1024 * 1024;
/** Largest request body, in bytes. */
const MAX_BODY = 16 * 1024 * 1024;

/** See the module comment. */
export class DashboardServer {
  readonly #opts: DashboardServerOptions;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #actions: Actions;
  readonly #staticDir: string;
  readonly #secure: boolean;
  #url = "";

  private constructor(opts: DashboardServerOptions) {
    this.#opts = opts;
    this.#secure = opts.tls !== undefined;
    this.#staticDir = opts.staticDir ?? DEFAULT_STATIC_DIR;
    this.#actions = new Actions(opts.feed);
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    };
    this.#server =
      opts.tls !== undefined ? createHttpsServer({ ...opts.tls }, handler) : createHttpServer(handler);
    this.#wss = new (wsLib().WebSocketServer)({ noServer: true, maxPayload: 1024 * 1024 });
    this.#server.on("upgrade", (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname !== "/api/live" || !tokenMatches(this.#opts.token, requestToken(req, url))) {
        socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onLive(ws));
    });
  }

  /**
   * Listens on host:port.
   * @throws MyelinError ERR_INVALID_ARGUMENT naming the address when it cannot listen (port in use)
   */
  static async start(opts: DashboardServerOptions): Promise<DashboardServer> {
    const s = new DashboardServer(opts);
    const host = opts.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      s.#server.once("error", (err: NodeJS.ErrnoException) =>
        reject(
          new MyelinError(
            "ERR_INVALID_ARGUMENT",
            `dashboard: cannot listen on ${host}:${opts.port}: ${err.code ?? err.message}; pick another --http-port (0: any free port)`,
            { cause: err },
          ),
        ),
      );
      s.#server.listen(opts.port, host, () => resolve());
    });
    const port = (s.#server.address() as AddressInfo).port;
    const shown = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
    s.#url = `${s.#secure ? "https" : "http"}://${shown}:${port}/`;
    return s;
  }

  /** The page's address, without the token. */
  get url(): string {
    return this.#url;
  }

  /** The page's address with the token, to open in a browser. */
  get urlWithToken(): string {
    return `${this.#url}?token=${encodeURIComponent(this.#opts.token)}`;
  }

  /** The port listened on. */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** How many pages are connected. */
  get pages(): number {
    return this.#wss.clients.size;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "no-referrer");
    const given = requestToken(req, url);
    if (!tokenMatches(this.#opts.token, given)) {
      throw new MyelinError(
        "ERR_NOT_AUTHORIZED",
        given === undefined
          ? "the dashboard needs its token: open the URL the hub printed (it ends in ?token=…), or print it with `myelin dashboard`"
          : "wrong token: open the URL the hub printed (it ends in ?token=…), or print it with `myelin dashboard`",
      );
    }
    if (url.searchParams.has("token") && req.method === "GET" && !url.pathname.startsWith("/api/")) {
      // Keep the token in an HttpOnly cookie and out of the address bar and history.
      url.searchParams.delete("token");
      res.writeHead(303, {
        "Set-Cookie": tokenCookie(this.#opts.token, this.#secure),
        Location: url.pathname + url.search,
      });
      res.end();
      return;
    }
    if (url.pathname.startsWith("/api/")) return this.#api(req, res, url.pathname.slice(5));
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${req.method} ${url.pathname}: only GET serves the page`,
      );
    }
    await this.#static(res, url.pathname);
  }

  async #static(res: ServerResponse, pathname: string): Promise<void> {
    const rel = normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, "");
    let file = join(this.#staticDir, rel);
    if (!file.startsWith(this.#staticDir.endsWith(sep) ? this.#staticDir : this.#staticDir + sep)) file = "";
    let found =
      file !== "" &&
      (await stat(file).then(
        (s) => s.isFile(),
        () => false,
      ));
    if (!found) {
      // The page routes itself: every other path gets index.html.
      file = join(this.#staticDir, "index.html");
      found = await stat(file).then(
        (s) => s.isFile(),
        () => false,
      );
      if (!found) {
        res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" });
        res.end(`the dashboard's page is not built (no ${file}); run \`npm run build\``);
        return;
      }
    }
    const body = await readFile(file);
    res.writeHead(200, {
      "Content-Type": MIME[extname(file)] ?? "application/octet-stream",
      "Cache-Control": file.includes(`${sep}assets${sep}`)
        ? "public, max-age=31536000, immutable"
        : "no-cache",
    });
    res.end(body);
  }

  async #api(req: IncomingMessage, res: ServerResponse, op: string): Promise<void> {
    const a = this.#actions;
    if (req.method === "GET") {
      if (op === "types") return json(res, 200, a.types());
      if (op === "status") {
        return json(res, 200, { pages: this.pages, alarms: this.#opts.feed.alarms.active() });
      }
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `GET /api/${op}: no such endpoint (GET types, status; POST the actions)`,
      );
    }
    if (req.method !== "POST")
      throw new MyelinError("ERR_INVALID_ARGUMENT", `${req.method} /api/${op}: use POST`);
    // A cross-site form cannot send JSON: requiring it stops such requests riding on the cookie.
    if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `POST /api/${op}: send the body as application/json`);
    }
    const body = await readJson(req, op);
    const actions: Record<string, (b: Record<string, unknown>) => unknown> = {
      publish: (b) => a.publish(b),
      call: (b) => a.call(b),
      template: (b) => a.template(b),
      parameters: (b) => a.parameters(b),
      "set-parameter": (b) => a.setParameter(b),
      process: (b) => a.process(b),
      twins: (b) => a.twins(b),
    };
    const fn = actions[op];
    if (fn === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `POST /api/${op}: no such action; the actions are ${Object.keys(actions).join(", ")}`,
      );
    }
    json(res, 200, await fn(body));
  }

  #fail(res: ServerResponse, err: unknown): void {
    const e = err as Partial<MyelinError> & Error;
    const code: ErrorCode | undefined = typeof e.code === "string" ? e.code : undefined;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const message = e.message ?? String(err);
    json(res, code === undefined ? 500 : statusOf(code), {
      error: code === undefined ? { message } : { code, message },
    });
  }

  #onLive(ws: WebSocket): void {
    const feed = this.#opts.feed;
    const client: FeedClient & { watch: Set<string> } = {
      watch: new Set(),
      sample: undefined,
      send(msg, droppable) {
        if (ws.readyState !== ws.OPEN) return;
        if (droppable && ws.bufferedAmount > MAX_BUFFERED) return;
        ws.send(JSON.stringify(msg));
      },
    };
    ws.on("message", (data) => {
      let m: { t?: unknown; topics?: unknown; sample?: unknown };
      try {
        m = JSON.parse(
          Buffer.isBuffer(data) ? data.toString("utf8") : Buffer.concat(data as Buffer[]).toString("utf8"),
        ) as typeof m;
      } catch {
        return;
      }
      if (m.t !== "watch") return;
      client.watch = new Set(
        Array.isArray(m.topics) ? m.topics.filter((x): x is string => typeof x === "string") : [],
      );
      client.sample = typeof m.sample === "string" ? m.sample : undefined;
      feed.watchChanged();
    });
    ws.on("close", () => feed.removeClient(client));
    ws.on("error", () => ws.terminate());
    feed.addClient(client);
  }

  /** Closes the pages' streams and stops listening. */
  async close(): Promise<void> {
    this.#actions.close();
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
    this.#server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" });
  res.end(text);
}

async function readJson(req: IncomingMessage, op: string): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY)
      throw new MyelinError("ERR_PAYLOAD_TOO_LARGE", `POST /api/${op}: body over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
  } catch (err) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `POST /api/${op}: the body is not JSON: ${(err as Error).message}`,
    );
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `POST /api/${op}: the body must be a JSON object`);
  }
  return v as Record<string, unknown>;
}
