/**
 * The Foxglove plugin in a hub process started here: TLS with the token, the token the hub makes
 * when none is given (a 0600 file in the runtime directory, removed at stop), and the cap on
 * clients.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { startHubProcess } from "../src/hub/index.js";
import { FOXGLOVE_TOKEN_FILE, foxglovePlugin, type RunningFoxglovePlugin } from "../src/foxglove/index.js";
import { createNode, std_msgs } from "../src/index.js";
import { tempRuntime } from "./helpers.js";
import { refusal, TestClient } from "./foxglove-client.js";

/** A self-signed certificate for 127.0.0.1 and localhost. */
function selfSigned(dir: string): { cert: Buffer; key: Buffer } {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "server.key",
      "-out",
      "server.crt",
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { cwd: dir, stdio: "ignore" },
  );
  return { cert: readFileSync(join(dir, "server.crt")), key: readFileSync(join(dir, "server.key")) };
}

test(
  "TLS: wss:// with the token works, plain ws:// and a wrong token do not",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    const tls = selfSigned(rt.dir);
    const token = "tls-token-0123456789abcdef";
    const proc = await startHubProcess({
      hub: { runtimeDir: rt.dir },
      plugins: [foxglovePlugin({ port: 0, token, tls })],
    });
    try {
      const fg = proc.plugins.get("foxglove") as RunningFoxglovePlugin;
      assert.match(fg.server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
      const node = await createNode({ name: "talker", runtimeDir: rt.dir });
      const pub = await node.createPublisher("/chatter", std_msgs.String);
      try {
        const ws = new WebSocket(`${fg.server.url}/?token=${token}`, ["foxglove.sdk.v1"], { ca: tls.cert });
        const c = await TestClient.attach(ws);
        try {
          await c.channel("/chatter");
        } finally {
          c.close();
        }
        const plain = new WebSocket(`${fg.server.url.replace("wss:", "ws:")}/?token=${token}`, [
          "foxglove.sdk.v1",
        ]);
        await new Promise<void>((resolve, reject) => {
          plain.on("open", () => reject(new Error("plain ws:// was accepted on the TLS port")));
          plain.on("error", () => resolve());
        });
        const wrong = await refusal(`${fg.server.url}/?token=not-the-token-0123456789`, ["foxglove.sdk.v1"], {
          ca: tls.cert,
        });
        assert.equal(wrong.status, 401);
      } finally {
        pub.close();
        await node.close();
      }
    } finally {
      await proc.close();
    }
  },
);

test(
  "without a token given, the hub makes one and keeps it in a 0600 file until it stops",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    const lines: string[] = [];
    const proc = await startHubProcess({
      hub: { runtimeDir: rt.dir },
      plugins: [foxglovePlugin({ port: 0, maxClients: 1 })],
      log: (l) => lines.push(l),
    });
    const file = join(rt.dir, FOXGLOVE_TOKEN_FILE);
    try {
      const fg = proc.plugins.get("foxglove") as RunningFoxglovePlugin;
      const token = readFileSync(file, "utf8").trim();
      assert.equal(token, fg.token);
      assert.ok(token.length >= 32);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.ok(
        lines.some((l) => l.includes(`${fg.server.url}/?token=${token}`)),
        lines.join("\n"),
      );
      const c = await TestClient.connect(`${fg.server.url}/?token=${token}`, "foxglove.websocket.v1");
      try {
        // maxClients 1: a second client is refused with 503, saying why.
        const busy = await refusal(`${fg.server.url}/?token=${token}`, ["foxglove.websocket.v1"]);
        assert.equal(busy.status, 503);
        assert.match(busy.body, /too many clients: 1 are connected already/);
      } finally {
        c.close();
      }
    } finally {
      await proc.close();
    }
    assert.equal(existsSync(file), false, "the token file is removed at stop");
  },
);
