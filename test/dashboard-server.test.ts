/**
 * The dashboard's server without a browser: a hub process with the dashboard plugin, its token on
 * every path (page, actions, stream), the actions' errors (the CLI's codes and messages), HTTPS
 * with a certificate, `myelin dashboard`, and the live stream's first messages.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { startHubProcess } from "../src/hub/index.js";
import { createNode, std_msgs, std_srvs } from "../src/index.js";
import { dashboardPlugin } from "../src/web/index.js";
import { tempRuntime } from "./helpers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));
const TOKEN = "test-token-0123456789abcdef";

async function post(
  base: string,
  op: string,
  body: unknown,
  token = TOKEN,
): Promise<{ status: number; json: any }> {
  const r = await fetch(`${base}api/${op}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

test(
  "the dashboard wants its token everywhere and answers actions with the CLI's errors",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const proc = await startHubProcess({
      hub: { runtimeDir: rt.dir },
      plugins: [dashboardPlugin({ port: 0, token: TOKEN })],
    });
    try {
      const status = proc.plugins.get("dashboard")!.status!() as { url: string };
      const base = status.url;
      assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);

      // myelin dashboard prints the address with the token, from the runtime directory.
      const out = spawnSync(process.execPath, [CLI, "dashboard", "--runtime-dir", rt.dir], {
        encoding: "utf8",
      });
      assert.equal(out.status, 0, out.stderr);
      assert.equal(out.stdout.trim(), `${base}?token=${TOKEN}`);
      const file = JSON.parse(readFileSync(join(rt.dir, "dashboard.json"), "utf8")) as {
        token: string;
        pid: number;
      };
      assert.equal(file.pid, process.pid);

      // No token, a wrong one: 401 with the fix; the right one in the URL sets the cookie and drops it from the address.
      const none = await fetch(base);
      assert.equal(none.status, 401);
      assert.match(((await none.json()) as { error: { message: string } }).error.message, /needs its token/);
      assert.equal((await post(base, "publish", {}, "wrong")).status, 401);
      const first = await fetch(`${base}?token=${TOKEN}`, { redirect: "manual" });
      assert.equal(first.status, 303);
      assert.equal(first.headers.get("location"), "/");
      assert.match(
        first.headers.get("set-cookie") ?? "",
        /^myelin_dashboard=test-token-0123456789abcdef; Path=\/; HttpOnly; SameSite=Strict/,
      );
      const page = await fetch(base, { headers: { cookie: `myelin_dashboard=${TOKEN}` } });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<div id="app">/);
      // Paths outside the page's folder are not served (the page's index.html is, as for any route).
      const outside = await fetch(`${base}..%2F..%2Fpackage.json`, {
        headers: { cookie: `myelin_dashboard=${TOKEN}` },
      });
      assert.doesNotMatch(await outside.text(), /"name": "myelin"/);

      // Actions: the CLI's validation, unknown types with a hint, bad bodies, unknown actions.
      const bad = await post(base, "publish", { topic: "/t", type: "std_msgs/String", data: "{data: 5}" });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.json.error, {
        code: "ERR_VALIDATION",
        message: "DATA for std_msgs/String: invalid std_msgs/String: data: expected string, got number 5",
      });
      const unknown = await post(base, "publish", { topic: "/t", type: "std_msgs/Strin", data: "{}" });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error.code, "ERR_UNKNOWN_TYPE");
      const yaml = await post(base, "publish", { topic: "/t", type: "std_msgs/String", data: "{data: [" });
      assert.equal(yaml.json.error.code, "ERR_INVALID_ARGUMENT");
      assert.match(yaml.json.error.message, /DATA for std_msgs\/String is not valid JSON or YAML/);
      const noSuch = await post(base, "nope", {});
      assert.match(noSuch.json.error.message, /no such action; the actions are publish, call/);
      const form = await fetch(`${base}api/publish`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Bearer ${TOKEN}` },
        body: "topic=/t",
      });
      assert.equal(form.status, 400);
      const noServer = await post(base, "call", {
        service: "/nobody/home",
        type: "std_srvs/Trigger",
        request: "{}",
      });
      assert.equal(noServer.json.error.code, "ERR_NO_SERVER");
      const noSupervisor = await post(base, "process", { action: "restart", node: "x" });
      assert.equal(noSupervisor.status, 503);
      assert.match(noSupervisor.json.error.message, /without a supervisor/);

      // A good publish reaches a subscriber; a call gets the response.
      const node = await createNode({ name: "listener", runtimeDir: rt.dir });
      try {
        const got = new Promise<string>((resolve) => {
          void node.createSubscription("/chat", std_msgs.String, (m) => resolve(m.data));
        });
        await node.waitForGraph((g) => g.nodes.some((n) => n.subs.some((s) => s.topic === "/chat")), 5000);
        const ok = await post(base, "publish", {
          topic: "/chat",
          type: "std_msgs/String",
          data: '{"data": "hi"}',
        });
        assert.equal(ok.status, 200, JSON.stringify(ok.json));
        assert.equal(await got, "hi");
        await node.createService("/listener/ping", std_srvs.Trigger, () => ({
          success: true,
          message: "pong",
        }));
        // The dashboard finds the service's type in the graph: wait until the graph has it.
        await node.waitForGraph(
          (g) => g.nodes.some((n) => n.services.some((x) => x.service === "/listener/ping")),
          5000,
        );
        const called = await post(base, "call", { service: "/listener/ping", request: "{}" });
        assert.equal(called.status, 200, JSON.stringify(called.json));
        assert.deepEqual(called.json.response, { success: true, message: "pong" });
      } finally {
        await node.close();
      }

      // The live stream: refused without the token; with it, hello then the graph.
      const ws = new WebSocket(`${base.replace("http", "ws")}api/live`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const msgs: { t: string }[] = [];
      await new Promise<void>((resolve, reject) => {
        ws.on("message", (d: Buffer) => {
          msgs.push(JSON.parse(d.toString()) as { t: string });
          if (msgs.some((m) => m.t === "graph")) resolve();
        });
        ws.on("error", reject);
      });
      assert.equal(msgs[0]!.t, "hello");
      ws.close();
    } finally {
      await proc.close();
    }
    assert.equal(existsSync(join(rt.dir, "dashboard.json")), false);
  },
);

test(
  "with a certificate the dashboard serves HTTPS",
  { timeout: 30000, skip: existsSync("/usr/bin/openssl") ? false : "no openssl to make a certificate" },
  async () => {
    using rt = tempRuntime();
    const cert = join(rt.dir, "cert.pem");
    const key = join(rt.dir, "key.pem");
    execFileSync(
      "/usr/bin/openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    const proc = await startHubProcess({
      hub: { runtimeDir: rt.dir },
      plugins: [dashboardPlugin({ port: 0, token: TOKEN, tls: { certFile: cert, keyFile: key } })],
    });
    try {
      const base = (proc.plugins.get("dashboard")!.status!() as { url: string }).url;
      assert.match(base, /^https:\/\/127\.0\.0\.1:\d+\/$/);
      const get = (headers: Record<string, string>): Promise<{ status: number; cookie: string }> =>
        new Promise((resolve, reject) => {
          httpsGet(`${base}?token=${TOKEN}`, { ca: readFileSync(cert), headers }, (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0, cookie: String(res.headers["set-cookie"] ?? "") });
          }).on("error", reject);
        });
      const r = await get({});
      assert.equal(r.status, 303);
      assert.match(r.cookie, /; Secure/);
    } finally {
      await proc.close();
    }
  },
);
