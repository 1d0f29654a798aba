/**
 * nats.js v2 through a local nats-server that the runner starts per case (on a free TCP port of
 * 127.0.0.1) and stops afterwards. Publish/subscribe on one subject per channel, callback
 * subscription, `flush()` at the end.
 *
 * nats.js `publish` has no backpressure: it buffers without bound while the socket is busy. To keep the
 * sender's memory bounded the sender awaits `nc.flush()` (a PING/PONG round trip) after every 4 MiB
 * published, which is what a careful nats.js user does for bulk publishing.
 */
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { connect, type NatsConnection } from "nats";
import { freePort, waitForPort } from "../net.js";
import type {
  EndpointOptions,
  Impl,
  Receiver,
  ReceiverOptions,
  Sender,
  SetupContext,
  SetupResult,
} from "../impl.js";

const FLUSH_EVERY_BYTES = 4 * 1024 * 1024;
const URL_ENV = "BENCH_NATS_URL";

function findServerBinary(): string | undefined {
  if (process.env["NATS_SERVER"] !== undefined) return process.env["NATS_SERVER"];
  for (const p of ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]) {
    if (existsSync(p)) return p;
  }
  const r = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" });
  const found = r.stdout.trim();
  return r.status === 0 && found !== "" ? found : undefined;
}

function serverUrl(opts: EndpointOptions): string {
  const url = opts.env[URL_ENV] ?? process.env[URL_ENV];
  if (url === undefined) throw new Error(`${URL_ENV} not set: nats setup did not run`);
  return url;
}

const impl: Impl = {
  name: "nats",
  description: "nats.js v2 via a local nats-server (TCP 127.0.0.1), callback subscription, flush per 4 MiB",

  async unavailable(): Promise<string | undefined> {
    return findServerBinary() === undefined ? "nats-server binary not found (set NATS_SERVER)" : undefined;
  },

  async setup(ctx: SetupContext): Promise<SetupResult> {
    const bin = findServerBinary();
    if (bin === undefined) throw new Error("nats-server not found");
    const port = await freePort();
    const conf = path.join(ctx.dir, "nats.conf");
    // max_payload above the 1 MiB case (plus nothing else: defaults otherwise).
    await writeFile(conf, `host: "127.0.0.1"\nport: ${port}\nmax_payload: 8MB\n`);
    const child = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    ctx.track(child);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    let exit: string | undefined;
    child.once("exit", (code, signal) => {
      exit = `nats-server exited (${code ?? signal}): ${stderr.trim()}`;
    });
    child.once("error", (err) => {
      exit = `nats-server failed to start: ${err.message}`;
    });
    await waitForPort(port, 5000, "nats-server", () => exit);
    return {
      env: { [URL_ENV]: `nats://127.0.0.1:${port}` },
      teardown: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = once(child, "exit");
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 2000);
        await gone;
        clearTimeout(t);
      },
    };
  },

  async createSender(opts: EndpointOptions): Promise<Sender> {
    const nc: NatsConnection = await connect({ servers: serverUrl(opts) });
    const subject = `bench.${opts.channel}`;
    let unflushed = 0;
    return {
      endpoint: subject,
      send(payload: Uint8Array): void | Promise<void> {
        nc.publish(subject, payload);
        unflushed += payload.length + 32;
        if (unflushed < FLUSH_EVERY_BYTES) return undefined;
        unflushed = 0;
        return nc.flush();
      },
      flush: () => nc.flush(),
      close: () => nc.close(),
    };
  },

  async createReceiver(opts: ReceiverOptions): Promise<Receiver> {
    const nc = await connect({ servers: serverUrl(opts) });
    let cb: (payload: Uint8Array) => void = () => undefined;
    nc.subscribe(opts.endpoint, {
      callback: (err, msg) => {
        if (err === null) cb(msg.data);
      },
    });
    await nc.flush(); // the server has the subscription once the PONG is back
    return {
      onMessage: (fn) => {
        cb = fn;
      },
      close: () => nc.close(),
    };
  },
};

export default impl;
