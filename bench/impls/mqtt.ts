/**
 * MQTT.js clients through three MQTT brokers, at QoS 0 and QoS 1, so that the embedded Myelin
 * gateway is measured next to its peers in the same run:
 *
 * - `mosquitto`: a mosquitto (`/usr/sbin/mosquitto`, or `$MOSQUITTO`) the runner starts per case;
 *   MQTT.js sender → broker → MQTT.js receiver.
 * - `aedes`: a bare aedes 1.x broker in a child process (the engine the gateway embeds); same clients.
 * - `gateway`: `myelin hub --gateway-config` with one mapping rule (`bench/+` → `/bench/+`,
 *   `myelin_msgs/RawPayload`, JSON) — MQTT.js sender → gateway (JSON parsed, schema-validated,
 *   mapped) → a Myelin subscriber node (the receiver).
 *
 * Every broker carries the same bytes, as in the fan-out bench (`bench/mqtt-fanout.ts`): with the
 * gateway's JSON mapping (the default) the sender publishes the JSON form `{"data":"<base64>"}` of
 * the harness's bytes (~4/3 of them) to mosquitto and aedes too. Their MQTT.js receivers decode a
 * body up to 64 KiB (what the harness reads of a Twist is all of it); a larger one they do not (the
 * fan-out bench's subscribers do not either): they read the harness's tag from its first base64
 * characters and the payload's length from the body's, so that the broker, not the receiver, is
 * what is measured. The gateway decodes it (JSON, base64, schema validation): that is the
 * mapping's work. The raw mapping (`mqtt-gateway-raw-q0`) carries the harness's bytes as they are.
 *
 * `BENCH_MQTT_HUB_NODE_ARGS` (space-separated) is given to the node running the gateway's hub, e.g.
 * `--cpu-prof --cpu-prof-dir=DIR` to profile it while the bench runs.
 *
 * The sender keeps a window of unacknowledged publishes (QoS 1: PUBACKs; QoS 0: write callbacks)
 * and waits when it is full, as a careful MQTT.js user does.
 *
 * In `roundtrip-64` the pinger and the echo each hold one sender and one receiver, so a round trip
 * through mosquitto or aedes is four MQTT legs (pinger → broker → echo → broker → pinger), and
 * through the gateway two MQTT legs into the hub and two Myelin legs out of it (hub → echo's node,
 * hub → pinger's node, over the host's `ipc://` carrier, which `MYELIN_IPC_TRANSPORT` in the
 * environment of the run picks for every process: `unix` or `zeromq`). At QoS 0 the broker writes
 * nothing back on the senders' connections.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import mqtt, { type MqttClient } from "mqtt";
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

type Broker = "mosquitto" | "aedes" | "gateway";
const PORT_ENV = "BENCH_MQTT_PORT";
/** Node options for the gateway's hub, space-separated, e.g. `--cpu-prof --cpu-prof-dir=prof`. */
const HUB_ARGS_ENV = "BENCH_MQTT_HUB_NODE_ARGS";
const CLI = fileURLToPath(new URL("../../../bin/myelin", import.meta.url));
const AEDES_HOST = fileURLToPath(new URL("./aedes-host.js", import.meta.url));

function mosquittoBinary(): string | undefined {
  if (process.env["MOSQUITTO"] !== undefined) return process.env["MOSQUITTO"];
  for (const p of ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"])
    if (existsSync(p)) return p;
  const r = spawnSync("sh", ["-c", "command -v mosquitto"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() !== "" ? r.stdout.trim() : undefined;
}

function startChild(
  ctx: SetupContext,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; exited: () => string | undefined } {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], env });
  ctx.track(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  let exit: string | undefined;
  child.once(
    "exit",
    (code, signal) => (exit = `${path.basename(cmd)} exited (${code ?? signal}): ${stderr.trim()}`),
  );
  child.once("error", (err) => (exit = `${cmd} failed to start: ${err.message}`));
  return { child, exited: () => exit };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = once(child, "exit");
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 3000);
  await gone;
  clearTimeout(t);
}

function port(opts: EndpointOptions): number {
  const p = opts.env[PORT_ENV] ?? process.env[PORT_ENV];
  if (p === undefined) throw new Error(`${PORT_ENV} not set: the MQTT setup did not run`);
  return Number(p);
}

async function client(opts: EndpointOptions): Promise<MqttClient> {
  const c = mqtt.connect({
    host: "127.0.0.1",
    port: port(opts),
    protocolVersion: 4,
    reconnectPeriod: 0,
    clean: true,
  });
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
  });
  return c;
}

const toJsonBody = new WeakMap<Uint8Array, Buffer>();
function jsonBody(payload: Uint8Array): Buffer {
  let b = toJsonBody.get(payload);
  if (b === undefined) {
    b = Buffer.from(
      `{"data":"${Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("base64")}"}`,
    );
    toJsonBody.set(payload, b);
  }
  return b;
}

const JSON_OPEN = '{"data":"'.length;
const JSON_CLOSE = '"}'.length;

/** Bodies up to this size (bytes) are decoded by the peers' receivers; larger ones are not. */
const DECODE_MAX_BYTES = 64 * 1024;

/**
 * What the harness reads of a message an MQTT.js receiver got as `{"data":"<base64>"}`: up to
 * {@link DECODE_MAX_BYTES} the decoded payload; above, without decoding the body, a buffer as long
 * as the decoded payload whose first byte is the payload's (the harness's tag), reused while the
 * length stays the same (the rest of it is zeros).
 */
function tagView(): (body: Buffer) => Uint8Array {
  let view = new Uint8Array(0);
  return (body) => {
    if (body.length <= DECODE_MAX_BYTES)
      return Buffer.from(body.toString("latin1", JSON_OPEN, body.length - JSON_CLOSE), "base64");
    const b64 = body.length - JSON_OPEN - JSON_CLOSE;
    let pad = 0;
    while (pad < 2 && body[JSON_OPEN + b64 - 1 - pad] === 0x3d /* = */) pad++;
    const n = Math.floor(((b64 - pad) * 3) / 4);
    if (view.length !== n) view = new Uint8Array(n);
    view[0] = Buffer.from(body.toString("latin1", JSON_OPEN, JSON_OPEN + 4), "base64")[0] ?? 0;
    return view;
  };
}

/**
 * An MQTT benchmark implementation through `broker` at `qos`. `format` is the gateway mapping's
 * payload format, and what every broker carries: `json` (the sender sends `{"data":"<base64>"}`)
 * or `raw` (the bytes as they are, typed as myelin_msgs/RawPayload's `data` by the gateway).
 */
export function mqttImpl(broker: Broker, qos: 0 | 1, format: "json" | "raw" = "json"): Impl {
  const window = qos === 0 ? 1024 : 256;
  const json = format === "json";
  return {
    name: `mqtt-${broker}${broker === "gateway" && format === "raw" ? "-raw" : ""}-q${qos}`,
    description:
      broker === "gateway"
        ? `MQTT.js QoS ${qos} → Myelin MQTT gateway (${format === "json" ? "JSON" : "raw bytes"} mapped and schema-validated) → Myelin subscriber`
        : `MQTT.js QoS ${qos} → ${broker === "aedes" ? "bare aedes 1.x (child process)" : "mosquitto"} → MQTT.js QoS ${qos} subscriber${json ? ' (the JSON body {"data":"<base64>"} the gateway maps)' : ""}`,

    async unavailable() {
      if (broker === "mosquitto" && mosquittoBinary() === undefined)
        return "mosquitto not found (set MOSQUITTO)";
      return undefined;
    },

    async setup(ctx: SetupContext): Promise<SetupResult> {
      const p = await freePort();
      let started: { child: ChildProcess; exited: () => string | undefined };
      const env: Record<string, string> = { [PORT_ENV]: String(p) };
      if (broker === "mosquitto") {
        const conf = path.join(ctx.dir, "mosquitto.conf");
        await writeFile(conf, `listener ${p} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n`);
        started = startChild(ctx, mosquittoBinary()!, ["-c", conf], process.env);
      } else if (broker === "aedes") {
        started = startChild(ctx, process.execPath, [AEDES_HOST, String(p)], process.env);
      } else {
        const conf = path.join(ctx.dir, "gateway.yaml");
        await writeFile(
          conf,
          [
            "mapping:",
            `  - { myelin: /bench/+, external: bench/+, type: myelin_msgs/RawPayload, format: ${format}, direction: in }`,
            "limits: { maxMessageBytes: 8388608, maxConnectionsPerMinute: 100000 }",
            "",
          ].join("\n"),
        );
        env["MYELIN_RUNTIME_DIR"] = ctx.dir;
        started = startChild(
          ctx,
          process.execPath,
          [
            ...(process.env[HUB_ARGS_ENV]?.split(" ").filter((a) => a !== "") ?? []),
            CLI,
            "hub",
            "--no-store",
            "--mqtt-port",
            String(p),
            "--gateway-config",
            conf,
          ],
          {
            ...process.env,
            MYELIN_RUNTIME_DIR: ctx.dir,
            MYELIN_DATA_DIR: path.join(ctx.dir, "data"),
          },
        );
      }
      await waitForPort(p, 10000, "the broker", started.exited);
      return { env, teardown: () => stop(started.child) };
    },

    async createSender(opts: EndpointOptions): Promise<Sender> {
      const c = await client(opts);
      const topic = `bench/${opts.channel}`;
      let inflight = 0;
      let resume: (() => void) | undefined;
      let idle: (() => void)[] = [];
      const done = (): void => {
        inflight--;
        if (resume !== undefined && inflight <= window / 2) {
          const r = resume;
          resume = undefined;
          r();
        }
        if (inflight === 0) for (const w of idle.splice(0)) w();
      };
      const pubOpts = { qos } as const;
      return {
        endpoint: topic,
        send(payload: Uint8Array): void | Promise<void> {
          const body = json
            ? jsonBody(payload)
            : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
          if (qos === 0) {
            // QoS 0: no per-message callback; wait for the socket to drain past 1 MiB buffered.
            c.publish(topic, body, pubOpts);
            const stream = c.stream as unknown as {
              writableLength: number;
              once(e: "drain", f: () => void): void;
            };
            if (stream.writableLength < 1024 * 1024) return undefined;
            return new Promise<void>((r) => stream.once("drain", r));
          }
          inflight++;
          c.publish(topic, body, pubOpts, done);
          if (inflight < window) return undefined;
          return new Promise<void>((r) => (resume = r));
        },
        flush: () => {
          if (qos === 0) {
            const stream = c.stream as unknown as {
              writableLength: number;
              once(e: "drain", f: () => void): void;
            };
            return stream.writableLength === 0
              ? Promise.resolve()
              : new Promise<void>((r) => stream.once("drain", r));
          }
          return inflight === 0 ? Promise.resolve() : new Promise<void>((r) => idle.push(r));
        },
        close: async () => {
          idle = [];
          await c.endAsync();
        },
      };
    },

    async createReceiver(opts: ReceiverOptions): Promise<Receiver> {
      if (broker === "gateway") {
        const { createNode } = await import("../../src/node/index.js");
        const { myelin_msgs } = await import("../../src/msgs/index.js");
        const n = await createNode({
          name: `bench_${opts.channel.replace(/-/g, "_")}_rx`,
          runtimeDir: opts.dir,
        });
        let cb: (payload: Uint8Array) => void = () => undefined;
        await n.createSubscription(`/${opts.endpoint}`, myelin_msgs.RawPayload, (m) => cb(m.data));
        return {
          onMessage: (fn) => {
            cb = fn;
          },
          close: () => n.close(),
        };
      }
      const c = await client(opts);
      let cb: (payload: Uint8Array) => void = () => undefined;
      const read = json ? tagView() : (payload: Buffer): Uint8Array => payload;
      c.on("message", (_t, payload) => cb(read(payload)));
      await c.subscribeAsync(opts.endpoint, { qos });
      return {
        onMessage: (fn) => {
          cb = fn;
        },
        close: () => c.endAsync(),
      };
    },
  };
}
