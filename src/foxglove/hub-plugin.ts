/**
 * The Foxglove WebSocket server as a hub plugin (named `foxglove`). Messages are offered in the
 * recorder's channel encodings (src/record/channel-encoding.ts): images, compressed images and
 * point clouds as ROS 2 CDR, which the viewers' Image and 3D panels draw; every other type as JSON
 * with a JSON Schema. When no token is given, one is made at start, written to `foxglove.token`
 * in the runtime directory (mode 0600, removed at stop) and logged with the URL to open.
 */
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HubPlugin, RunningHubPlugin } from "../hub/index.js";
import { lookupType } from "../msgs/index.js";
import { runtimeDir } from "../node/index.js";
import { channelEncodingOf } from "../record/channel-encoding.js";
import { MyelinError } from "../errors.js";
import { isLoopback, type FoxgloveSettings } from "./config.js";
import { FoxgloveServer } from "./server.js";
import type { TopicEncoding } from "./topics.js";

/** The name of the token file the hub writes in its runtime directory when it makes the token. */
export const FOXGLOVE_TOKEN_FILE = "foxglove.token";

/** The running plugin: the server, and its status. */
export interface RunningFoxglovePlugin extends RunningHubPlugin {
  readonly server: FoxgloveServer;
  /** The token clients must give. */
  readonly token: string;
}

/**
 * The encoding of a topic of type `typeName` on a Foxglove channel: the recorder's.
 * @throws MyelinError ERR_UNKNOWN_TYPE when the type is not registered in the hub process
 */
export function foxgloveEncodingFor(typeName: string): TopicEncoding {
  const type = lookupType(typeName);
  if (type === undefined) {
    throw new MyelinError(
      "ERR_UNKNOWN_TYPE",
      `type ${typeName} is not known to the hub (start it with --import MODULE to load its definition)`,
    );
  }
  const enc = channelEncodingOf(type);
  return {
    encoding: enc.messageEncoding,
    schemaName: enc.schemaName,
    schemaEncoding: enc.schemaEncoding,
    schema: Buffer.from(enc.schemaData).toString("utf8"),
    encode: (msg) => enc.encode(msg),
  };
}

/** The Foxglove server plugin with `settings` (the rest are the defaults of FOXGLOVE_DEFAULTS). */
export function foxglovePlugin(settings: Partial<FoxgloveSettings> = {}): HubPlugin {
  return {
    name: "foxglove",
    async start(ctx): Promise<RunningFoxglovePlugin> {
      let token = settings.token;
      let tokenFile: string | undefined;
      if (token === undefined) {
        token = randomBytes(24).toString("base64url");
        tokenFile = join(runtimeDir(ctx.runtimeDir), FOXGLOVE_TOKEN_FILE);
        writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      }
      let server: FoxgloveServer;
      try {
        server = await FoxgloveServer.start({
          ...settings,
          token,
          encodingFor: foxgloveEncodingFor,
          log: ctx.log,
          ...(ctx.runtimeDir !== undefined ? { runtimeDir: ctx.runtimeDir } : {}),
        });
      } catch (err) {
        if (tokenFile !== undefined) rmSync(tokenFile, { force: true });
        throw err;
      }
      const host = settings.host ?? "127.0.0.1";
      ctx.log(
        `Foxglove: open ${server.url}/?token=${token} in Foxglove or Lichtblick (Open connection, Foxglove WebSocket)` +
          (tokenFile !== undefined ? `; the token is in ${tokenFile}` : ""),
      );
      if (!isLoopback(host) && settings.tls === undefined) {
        ctx.log(
          `Foxglove: listening on ${host} without TLS: the token crosses the network in clear; give tls in --foxglove-config`,
        );
      }
      return {
        server,
        token,
        close: async () => {
          await server.close();
          if (tokenFile !== undefined) rmSync(tokenFile, { force: true });
        },
        status: () => ({ ...server.status() }),
      };
    },
  };
}
