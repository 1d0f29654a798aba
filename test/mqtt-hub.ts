/**
 * A hub run by the CLI with its MQTT gateway on a free port, and MQTT 3.1.1 clients of it, for
 * tests that kill and restart the hub around MQTT sessions.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { Proc } from "./helpers.js";

/** The `myelin` CLI script. */
export const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

/** Runs `myelin ARGS` to completion (asynchronously: a hub in this process keeps answering). */
export function execCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 20000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) =>
        resolve({ code: (err as { code?: number } | null)?.code ?? 0, stdout, stderr }),
    ),
  );
}

/** Starts `myelin hub --mqtt-port PORT --no-store` and resolves once the gateway serves clients. */
export async function startGatewayHub(port: number, env: Record<string, string>): Promise<Proc> {
  const p = new Proc(CLI, ["hub", "--mqtt-port", String(port), "--no-store"], { ...env });
  try {
    await p.waitFor(
      (l) => l.event === "text" && /MQTT gateway: \d+ mapping rules/.test(String(l["text"])),
      20000,
      "the MQTT gateway to start",
    );
  } catch (err) {
    p.kill("SIGKILL");
    throw new Error(`${(err as Error).message}; hub stderr: ${p.stderr.slice(-5).join(" | ")}`);
  }
  return p;
}

/**
 * Connects an MQTT 3.1.1 client (no automatic reconnect); resolves with its CONNACK's return code
 * (0 accepted, or the refusal's code; -1 for another error) and session flag, never rejects.
 * `beforeConnack` gets the client before it reads anything: attach `message` listeners there, as
 * a resumed session's queued messages can come in the same read as the CONNACK and MQTT.js emits
 * them (one process.nextTick after another) before this promise's continuation runs.
 */
export function tryConnectMqtt(
  port: number,
  opts: IClientOptions,
  beforeConnack?: (client: MqttClient) => void,
): Promise<{ client: MqttClient; code: number; sessionPresent: boolean }> {
  const client = mqtt.connect({
    host: "127.0.0.1",
    port,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    ...opts,
  });
  beforeConnack?.(client);
  return new Promise((resolve) => {
    client.once("connect", (ack) => resolve({ client, code: 0, sessionPresent: ack.sessionPresent }));
    client.once("error", (e) =>
      resolve({ client, code: (e as { code?: number }).code ?? -1, sessionPresent: false }),
    );
  });
}

/** Connects an MQTT 3.1.1 client (see {@link tryConnectMqtt}); rejects when the connection is refused. */
export async function connectMqtt(
  port: number,
  opts: IClientOptions,
  beforeConnack?: (client: MqttClient) => void,
): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  const r = await tryConnectMqtt(port, opts, beforeConnack);
  if (r.code !== 0) {
    r.client.end(true);
    throw new Error(`MQTT connection to port ${port} refused (CONNACK or error code ${r.code})`);
  }
  return { client: r.client, sessionPresent: r.sessionPresent };
}
